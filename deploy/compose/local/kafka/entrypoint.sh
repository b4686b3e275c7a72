#!/bin/sh
# apache/kafka's convention: every KAFKA_<NAME> (but the JVM's KAFKA_*_OPTS) is the property
# <name> lower-cased, "___" -> "-", "__" -> "_", "_" -> "."; the storage is formatted once
# with CLUSTER_ID (that image's fixed default unless set).
set -eu
conf=/opt/kafka/config/server.properties
: >"$conf"
env | while IFS='=' read -r name value; do
    case $name in
        KAFKA_HEAP_OPTS | KAFKA_JVM_PERFORMANCE_OPTS | KAFKA_OPTS | KAFKA_LOG4J_OPTS | KAFKA_JMX_OPTS) ;;
        KAFKA_*)
            prop=$(printf '%s' "${name#KAFKA_}" | tr 'A-Z' 'a-z' | sed -e 's/___/-/g' -e 's/__/@/g' -e 's/_/./g' -e 's/@/_/g')
            printf '%s=%s\n' "$prop" "$value" >>"$conf" ;;
    esac
done
cat >/opt/kafka/config/log4j.properties <<'PROPS'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=WARN
log4j.logger.org.apache.kafka=WARN
log4j.logger.kafka.server.KafkaServer=INFO
PROPS
# shellcheck disable=SC2086
set -- ${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G} -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j.configuration=file:/opt/kafka/config/log4j.properties -cp '/opt/kafka/libs/*'
java "$@" kafka.tools.StorageTool format --ignore-formatted \
    -t "${CLUSTER_ID:-5L6g3nShT-eMCtK--X86sw}" -c "$conf"
exec java "$@" kafka.Kafka "$conf"
