"""What a consumer writes to `<topic>.dlq` for a message it cannot take: its headers and, for huge ones, a stub."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

REASON_HEADER: Final = "x-dlq-reason"
STUB_HEADER: Final = "x-dlq-stub"
ORIGINAL_TOPIC_HEADER: Final = "x-original-topic"
ORIGINAL_PARTITION_HEADER: Final = "x-original-partition"
ORIGINAL_OFFSET_HEADER: Final = "x-original-offset"
ORIGINAL_SIZE_HEADER: Final = "x-original-size"
CONSUMER_HEADER: Final = "x-consumer"

# Every header of a dead letter, what it holds, and whether every dead letter has it (else only stubs do).
# Header values are UTF-8 text; numbers are written in decimal.
HEADERS: Final[dict[str, tuple[str, bool]]] = {
    REASON_HEADER: ("why the message was refused: the contract violation, or the error applying it", True),
    ORIGINAL_TOPIC_HEADER: ("the topic the message was read from (with the deployment's topic prefix)", True),
    ORIGINAL_PARTITION_HEADER: ("its partition there, in decimal", True),
    ORIGINAL_OFFSET_HEADER: ("its offset there, in decimal", True),
    CONSUMER_HEADER: ("the name of the consumer that refused it", True),
    STUB_HEADER: ('"true" when the value is a DeadLetterStub rather than the original value', False),
    ORIGINAL_SIZE_HEADER: ("on a stub: the original value's size in bytes, in decimal", False),
    # Added by the publisher (FastStream) to every message it sends; nothing should rely on them.
    "content-type": ("empty: the value is passed on as bytes, of no declared type", True),
    "correlation_id": ("a fresh UUID for each dead letter", True),
}


class DeadLetterStub(BaseModel):
    """The value of a dead letter whose original was too large to copy with the headers: where to find it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dlq_stub: Literal[True] = True
    original_topic: str
    original_partition: int = Field(ge=0)
    original_offset: int = Field(ge=0)
    original_size: int = Field(ge=0, description="the original value's size in bytes")
    head_base64: str = Field(description="the original value's first 1024 bytes, base64")
