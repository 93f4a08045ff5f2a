#!/bin/sh
# The kafka-broker-api-versions tool, as Kafka's own bin script runs it.
exec /opt/kafka/bin/kafka-run-class.sh org.apache.kafka.tools.BrokerApiVersionsCommand "$@"
