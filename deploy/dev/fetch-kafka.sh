#!/usr/bin/env bash
# Fetch the Apache Kafka broker (kafka_2.13) and its runtime dependencies from
# Maven Central into a cache dir, so tests can run a real KRaft broker without
# Docker or the Apache download mirrors (see shared/KAFKA.md).
#
#   KAFKA_VERSION   default 4.1.1
#   FUNDFLOW_CACHE  default $HOME/.cache/fundflow
#
# Result: $FUNDFLOW_CACHE/kafka-$KAFKA_VERSION/libs/*.jar and
#         $FUNDFLOW_CACHE/kafka-$KAFKA_VERSION/log4j2.properties
# Idempotent: returns at once when the jars are already there.
# Prints the libs dir path on stdout (and nothing else on stdout).
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
LOG4J_VERSION="${LOG4J_VERSION:-2.24.3}"
CACHE="${FUNDFLOW_CACHE:-$HOME/.cache/fundflow}"
DEST="$CACHE/kafka-$KAFKA_VERSION"
LIBS="$DEST/libs"
STAMP="$DEST/.complete"

write_log4j_config() {
    # Console only, INFO, with the chattiest loggers turned down.
    cat >"$DEST/log4j2.properties" <<'PROPS'
status = warn
name = fundflow-kafka
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c{1})%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = WARN
logger.raft.name = org.apache.kafka.raft
logger.raft.level = WARN
logger.metadata.name = org.apache.kafka.image
logger.metadata.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
logger.logcleaner.name = kafka.log.LogCleaner
logger.logcleaner.level = WARN
logger.zk.name = org.apache.zookeeper
logger.zk.level = WARN
logger.config.name = org.apache.kafka.common.config
logger.config.level = WARN
logger.utils.name = org.apache.kafka.common.utils
logger.utils.level = WARN
PROPS
}

if [[ -f "$STAMP" ]] && compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null; then
    [[ -f "$DEST/log4j2.properties" ]] || write_log4j_config
    echo "$LIBS"
    exit 0
fi

command -v mvn >/dev/null || { echo "fetch-kafka.sh: mvn not found (apt-get install maven)" >&2; exit 1; }

mkdir -p "$DEST"
# One fetch at a time per cache dir; a waiter finds the finished result.
if command -v flock >/dev/null; then
    exec 9>"$DEST/.lock"
    flock 9
    if [[ -f "$STAMP" ]] && compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null; then
        [[ -f "$DEST/log4j2.properties" ]] || write_log4j_config
        echo "$LIBS"
        exit 0
    fi
fi
WORK="$(mktemp -d "$DEST/.fetch.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

cat >"$WORK/pom.xml" <<POM
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 http://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>fundflow.dev</groupId>
  <artifactId>kafka-fetch</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>${KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>${LOG4J_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>${LOG4J_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-api</artifactId>
      <version>${LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
POM

echo "fetch-kafka.sh: resolving kafka_2.13 $KAFKA_VERSION from Maven Central ..." >&2
if ! mvn -q -B -Dstyle.color=never -f "$WORK/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$WORK/libs" >"$WORK/mvn.log" 2>&1; then
    sed 's/\x1b\[[0-9;]*m//g' "$WORK/mvn.log" | tail -40 >&2
    echo "fetch-kafka.sh: mvn failed (is Maven Central reachable? KAFKA_VERSION=$KAFKA_VERSION)" >&2
    exit 1
fi

compgen -G "$WORK/libs/kafka_2.13-*.jar" >/dev/null || {
    echo "fetch-kafka.sh: kafka_2.13 jar missing after mvn run" >&2; exit 1; }

# Swap in atomically enough for concurrent callers: the stamp is written last.
rm -rf "$LIBS"
mv "$WORK/libs" "$LIBS"
write_log4j_config
date -u +%FT%TZ >"$STAMP"
echo "fetch-kafka.sh: $(ls "$LIBS" | wc -l) jars in $LIBS" >&2
echo "$LIBS"
