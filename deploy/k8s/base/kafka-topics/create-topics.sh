#!/bin/sh
# Creates every contract topic and its <topic>.dlq with the partitions and retention the contract needs.
# Idempotent: a missing topic is created; an existing one keeps its data and gets its configs re-applied;
# a topic whose partition count differs is an error (keys would land elsewhere), never altered silently.
# Runs in the apache/kafka image (compose one-shot service, Kubernetes Job).
#
# Env: BOOTSTRAP (host:port), TOPICS (space-separated, without .dlq), PARTITIONS, RETENTION_MS,
#      DLQ_RETENTION_MS, REPLICATION_FACTOR (default 1), MIN_INSYNC_REPLICAS (optional)
set -eu

KAFKA_BIN="${KAFKA_BIN:-/opt/kafka/bin}"
: "${BOOTSTRAP:?}" "${TOPICS:?}" "${PARTITIONS:?}" "${RETENTION_MS:?}" "${DLQ_RETENTION_MS:?}"
REPLICATION_FACTOR="${REPLICATION_FACTOR:-1}"

topics_cmd() { "$KAFKA_BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" "$@"; }

echo "waiting for Kafka at $BOOTSTRAP"
attempt=0
until existing="$(topics_cmd --list 2>/dev/null)"; do
    attempt=$((attempt + 1))
    if [ "$attempt" -ge 60 ]; then
        echo "Kafka at $BOOTSTRAP did not answer" >&2
        exit 1
    fi
    sleep 2
done

# POSIX sh has no local variables: the function's names must not clash with the caller's loop variable.
ensure_topic() {
    name="$1"
    configs="retention.ms=$2"
    if [ -n "${MIN_INSYNC_REPLICAS:-}" ]; then
        configs="$configs,min.insync.replicas=$MIN_INSYNC_REPLICAS"
    fi
    if printf '%s\n' "$existing" | grep -qxF "$name"; then
        "$KAFKA_BIN/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --alter \
            --entity-type topics --entity-name "$name" --add-config "$configs" >/dev/null
        echo "topic $name: exists, $configs"
    else
        # shellcheck disable=SC2046 # one --config per setting
        topics_cmd --create --if-not-exists --topic "$name" --partitions "$PARTITIONS" \
            --replication-factor "$REPLICATION_FACTOR" $(printf ' --config %s' $(echo "$configs" | tr ',' ' ')) \
            >/dev/null
        echo "topic $name: created, $PARTITIONS partitions, $configs"
    fi
}

wanted=""
for topic in $TOPICS; do
    ensure_topic "$topic" "$RETENTION_MS"
    ensure_topic "$topic.dlq" "$DLQ_RETENTION_MS"
    wanted="$wanted $topic $topic.dlq"
done

# One describe for all: each topic's summary line carries its PartitionCount.
counts="$(topics_cmd --describe --exclude-internal \
    | sed -n 's/^Topic: *\([^[:space:]]*\).*PartitionCount: *\([0-9][0-9]*\).*/\1 \2/p')"
status=0
for topic in $wanted; do
    actual="$(printf '%s\n' "$counts" | awk -v t="$topic" '$1 == t { print $2 }')"
    if [ "$actual" != "$PARTITIONS" ]; then
        echo "topic $topic has ${actual:-no} partitions, the contract needs $PARTITIONS: fix it by hand" >&2
        status=1
    fi
done
[ "$status" -eq 0 ] && echo "all topics ready"
exit "$status"
