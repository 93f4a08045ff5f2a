#!/bin/sh
# The kafka-configs tool, as Kafka's own bin script runs it.
exec /opt/kafka/bin/kafka-run-class.sh kafka.admin.ConfigCommand "$@"
