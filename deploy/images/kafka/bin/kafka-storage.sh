#!/bin/sh
# The kafka-storage tool, as Kafka's own bin script runs it.
exec /opt/kafka/bin/kafka-run-class.sh kafka.tools.StorageTool "$@"
