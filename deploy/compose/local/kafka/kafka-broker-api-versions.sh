#!/bin/sh
# the tool of the same name in Kafka's distribution (the healthcheck of docker-compose.yml runs it)
exec java -Xmx128m -XX:TieredStopAtLevel=1 -Dlog4j.rootLogger=ERROR -cp '/opt/kafka/libs/*' \
    kafka.admin.BrokerApiVersionsCommand "$@"
