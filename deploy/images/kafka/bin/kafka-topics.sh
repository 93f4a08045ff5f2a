#!/bin/sh
# The kafka-topics tool, as Kafka's own bin script runs it.
exec /opt/kafka/bin/kafka-run-class.sh org.apache.kafka.tools.TopicCommand "$@"
