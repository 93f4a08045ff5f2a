#!/bin/sh
# Runs a Kafka main class on the image's classpath, with the tools' heap and logging unless told otherwise.
exec java ${KAFKA_HEAP_OPTS:--Xmx256m} ${KAFKA_OPTS:-} \
    -Dlog4j2.configurationFile="${KAFKA_LOG4J_CONFIG:-/opt/kafka/config/tools-log4j2.properties}" \
    -cp '/opt/kafka/libs/*' "$@"
