#!/bin/sh
# Runs a Kafka main class on the image's classpath. The tools (short-lived, run often by healthchecks and
# create-topics.sh) start fastest with the serial collector and the client compiler; the broker sets its own.
exec java ${KAFKA_HEAP_OPTS:--Xmx256m} ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1} \
    ${KAFKA_OPTS:-} -Dlog4j2.configurationFile="${KAFKA_LOG4J_CONFIG:-/opt/kafka/config/tools-log4j2.properties}" \
    -cp '/opt/kafka/libs/*' "$@"
