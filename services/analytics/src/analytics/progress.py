"""How far a consumer group is behind the end of its topics (for the rebuild, tests, benchmarks, operators)."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from rfkit.kafka import KafkaConnection


class OffsetProbe:
    """Reads end offsets of topics and committed offsets of groups over one pair of connections."""

    def __init__(self, kafka: str | KafkaConnection, topics: Sequence[str]) -> None:
        self.topics = list(topics)
        client = KafkaConnection.of(kafka).client_kwargs()
        self._consumer = AIOKafkaConsumer(**client, group_id=None, enable_auto_commit=False)
        self._admin = AIOKafkaAdminClient(**client)
        self._partitions: list[TopicPartition] = []

    async def __aenter__(self) -> OffsetProbe:
        await self._consumer.start()
        await self._admin.start()
        for described in await self._admin.describe_topics(self.topics):
            if described["error_code"] == 0:  # a topic that does not exist (yet) has no offsets
                for part in sorted(p["partition"] for p in described["partitions"]):
                    self._partitions.append(TopicPartition(described["topic"], part))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._admin.close()
        await self._consumer.stop()

    @property
    def partitions(self) -> list[TopicPartition]:
        return list(self._partitions)

    async def end_offsets(self) -> dict[TopicPartition, int]:
        return dict(await self._consumer.end_offsets(self._partitions))

    async def committed(self, group: str) -> dict[TopicPartition, int]:
        offsets = await self._admin.list_consumer_group_offsets(group, partitions=self._partitions)
        return {tp: (meta.offset if meta is not None and meta.offset >= 0 else 0) for tp, meta in offsets.items()}

    async def lag(self, group: str) -> int:
        """Messages of the topics that the group has not committed yet."""
        ends = await self.end_offsets()
        committed = await self.committed(group)
        return sum(max(0, end - committed.get(tp, 0)) for tp, end in ends.items())
