#!/bin/sh
# The broker in the foreground with the given server.properties (Kafka's own defaults for heap and collector).
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G}" \
KAFKA_JVM_PERFORMANCE_OPTS="${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35}" \
KAFKA_LOG4J_CONFIG=/opt/kafka/config/log4j2.properties \
    exec /opt/kafka/bin/kafka-run-class.sh kafka.Kafka "$@"
