#!/bin/sh
# Creates every contract topic and its <topic>.dlq with the partitions and retention the contract needs.
# Idempotent: a missing topic is created; an existing one keeps its data and gets its configs re-applied;
# a topic whose partition count differs is an error (keys would land elsewhere), never altered silently.
# Runs in the apache/kafka image (compose one-shot service, Kubernetes Job).
#
# Env: BOOTSTRAP (host:port), TOPICS (space-separated, without .dlq), PARTITIONS, RETENTION_MS,
#      DLQ_RETENTION_MS, REPLICATION_FACTOR (default 1), MIN_INSYNC_REPLICAS (optional)
#      A secured Kafka: the RF_KAFKA_* settings the services read (docs/operations.md), turned into a client
#      properties file for --command-config: RF_KAFKA_SECURITY_PROTOCOL (default PLAINTEXT),
#      RF_KAFKA_SASL_MECHANISM, RF_KAFKA_SASL_USERNAME, RF_KAFKA_SASL_PASSWORD_FILE, RF_KAFKA_SSL_CA_FILE,
#      RF_KAFKA_SSL_CERT_FILE, RF_KAFKA_SSL_KEY_FILE (PKCS#8 PEM), RF_KAFKA_SSL_KEY_PASSWORD_FILE.
set -eu

KAFKA_BIN="${KAFKA_BIN:-/opt/kafka/bin}"
: "${BOOTSTRAP:?}" "${TOPICS:?}" "${PARTITIONS:?}" "${RETENTION_MS:?}" "${DLQ_RETENTION_MS:?}"
REPLICATION_FACTOR="${REPLICATION_FACTOR:-1}"

PROTOCOL="${RF_KAFKA_SECURITY_PROTOCOL:-PLAINTEXT}"
WORK="${TMPDIR:-/tmp}"

# A value inside a JAAS option's double quotes, then inside a .properties file (both escape with backslashes).
jaas_value() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | sed 's/\\/\\\\/g'; }
properties_value() { printf '%s' "$1" | sed 's/\\/\\\\/g'; }

client_properties() {
    echo "security.protocol=$PROTOCOL"
    case "$PROTOCOL" in
    SASL_PLAINTEXT | SASL_SSL)
        : "${RF_KAFKA_SASL_MECHANISM:?} ${RF_KAFKA_SASL_USERNAME:?} ${RF_KAFKA_SASL_PASSWORD_FILE:?}"
        case "$RF_KAFKA_SASL_MECHANISM" in
        PLAIN) module=org.apache.kafka.common.security.plain.PlainLoginModule ;;
        SCRAM-SHA-256 | SCRAM-SHA-512) module=org.apache.kafka.common.security.scram.ScramLoginModule ;;
        *)
            echo "RF_KAFKA_SASL_MECHANISM=$RF_KAFKA_SASL_MECHANISM: not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512" >&2
            exit 1
            ;;
        esac
        # $(cat) drops the trailing newline a mounted Secret may carry, as the services do.
        password="$(cat "$RF_KAFKA_SASL_PASSWORD_FILE")"
        echo "sasl.mechanism=$RF_KAFKA_SASL_MECHANISM"
        # printf, not echo: some shells' echo would interpret the escaping backslashes.
        printf 'sasl.jaas.config=%s required username="%s" password="%s";\n' \
            "$module" "$(jaas_value "$RF_KAFKA_SASL_USERNAME")" "$(jaas_value "$password")"
        ;;
    SSL) ;;
    *)
        echo "RF_KAFKA_SECURITY_PROTOCOL=$PROTOCOL: not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL" >&2
        exit 1
        ;;
    esac
    case "$PROTOCOL" in
    *SSL)
        # Without a CA file the JVM's own trust store verifies the broker, as for the services.
        if [ -n "${RF_KAFKA_SSL_CA_FILE:-}" ]; then
            echo "ssl.truststore.type=PEM"
            echo "ssl.truststore.location=$RF_KAFKA_SSL_CA_FILE"
        fi
        if [ -n "${RF_KAFKA_SSL_CERT_FILE:-}" ]; then
            # Kafka's PEM keystore is one file: the private key, then the certificate chain.
            keystore="$WORK/rf-kafka-keystore.pem"
            cat "${RF_KAFKA_SSL_KEY_FILE:?}" "$RF_KAFKA_SSL_CERT_FILE" >"$keystore"
            echo "ssl.keystore.type=PEM"
            echo "ssl.keystore.location=$keystore"
            if [ -n "${RF_KAFKA_SSL_KEY_PASSWORD_FILE:-}" ]; then
                printf 'ssl.key.password=%s\n' "$(properties_value "$(cat "$RF_KAFKA_SSL_KEY_PASSWORD_FILE")")"
            fi
        fi
        ;;
    esac
}

COMMAND_CONFIG=""
if [ "$PROTOCOL" != "PLAINTEXT" ]; then
    COMMAND_CONFIG="$WORK/rf-kafka-client.properties"
    # The file holds the password: readable by this user only.
    (umask 077 && client_properties >"$COMMAND_CONFIG")
fi

with_config() {
    if [ -n "$COMMAND_CONFIG" ]; then
        "$@" --command-config "$COMMAND_CONFIG"
    else
        "$@"
    fi
}

# A call that fails is tried again a few times: the broker's name can stop resolving for a moment after it first
# did (Podman's network DNS while other containers start, a Service endpoint being replaced), and every call here is
# safe to repeat (--if-not-exists, configs set to the same values, a describe).
CALL_ATTEMPTS="${CALL_ATTEMPTS:-5}"
retried() {
    tries=1
    until "$@"; do
        if [ "$tries" -ge "$CALL_ATTEMPTS" ]; then
            echo "gave up after $tries attempts" >&2
            return 1
        fi
        tries=$((tries + 1))
        echo "attempt $tries of $CALL_ATTEMPTS in 2 s" >&2
        sleep 2
    done
}

topics_cmd() { retried with_config "$KAFKA_BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" "$@"; }

echo "waiting for Kafka at $BOOTSTRAP ($PROTOCOL)"
attempt=0
until existing="$(with_config "$KAFKA_BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --list \
    2>"$WORK/rf-kafka-list.err")"; do
    attempt=$((attempt + 1))
    if [ "$attempt" -ge 60 ]; then
        echo "Kafka at $BOOTSTRAP did not answer:" >&2
        tail -n 20 "$WORK/rf-kafka-list.err" >&2
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
        retried with_config "$KAFKA_BIN/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --alter \
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
