#!/bin/sh
# the tool of the same name in Kafka's distribution: end offsets of topic-partitions
exec java -Xmx128m -XX:TieredStopAtLevel=1 -cp '/opt/kafka/libs/*' org.apache.kafka.tools.GetOffsetShell "$@"
