# Two images from one Dockerfile (built with the classic builder: no parser directive here):
#   default target (the last stage, `runtime`): every role and every operator tool
#     roles  eventshop-registry, eventshop-handler, eventshop-projector, eventshop-api,
#            eventshop-subscriber; the role is the command, e.g. `eventshop-handler catalog`
#     tools  eventshop-admin (topics), eventshop-users (bootstrap-admin: the first admin),
#            eventshop-token (mints a bearer token), eventshop-avro (decodes a framed message),
#            eventshop-history (export of the event log to Avro files, as-of, show, projections;
#            deploy/jobs runs its export as a Kubernetes Job)
#   target `test`: the stand-ins eventshop-test-gateway and eventshop-test-carrier (tests/stand-ins/),
#     for the local compose run only (docker-compose.yml's test-gateway and test-carrier), never in
#     production
# In neither: eventshop-bench-raw and eventshop-bench-raw-consume (bench/, `make bench`) and the
# unit-test executables (tests/).
# tests/deploy/test_image.py checks these lists against every add_executable of the CMake files.
#   docker build -t eventshop:dev .
#   docker build --target test -t eventshop-test:dev .
FROM debian:12-slim AS build
ENV DEBIAN_FRONTEND=noninteractive
# Debian 12 stable only takes security fixes: pinning exact versions would break on each of them;
# the upgrade brings in those published after the base image was made
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get upgrade -y \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      librdkafka-dev libavro-dev libmariadb-dev libh2o-evloop-dev libjansson-dev libjwt-dev liblmdb-dev libjemalloc-dev \
      libcriterion-dev libssl-dev libcurl4-openssl-dev uuid-dev libargon2-dev libsodium-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# only the shipped executables are built (not the unit tests); /out/bin goes into the default
# image, /out/test into the test image
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
 && cmake --build /build -j"$(nproc)" --target \
      eventshop-registry eventshop-handler eventshop-projector eventshop-api eventshop-subscriber \
      eventshop-admin eventshop-users eventshop-token eventshop-avro eventshop-history \
      eventshop-test-gateway eventshop-test-carrier \
 && install -d /out/bin /out/test \
 && install -m 0755 -t /out/bin \
      /build/schema-registry/eventshop-registry /build/command-handlers/eventshop-handler \
      /build/projections/eventshop-projector /build/api/eventshop-api \
      /build/subscribers/eventshop-subscriber /build/runtime/eventshop-admin \
      /build/api/eventshop-users /build/api/eventshop-token /build/events/eventshop-avro \
      /build/history/eventshop-history \
 && install -m 0755 -t /out/test \
      /build/tests/stand-ins/eventshop-test-gateway /build/tests/stand-ins/eventshop-test-carrier \
 && strip --strip-debug /out/bin/* /out/test/*

# what both images share: the linked libraries, the schemas, the user, the healthcheck
FROM debian:12-slim AS base
ENV DEBIAN_FRONTEND=noninteractive
# only the shared libraries the executables link (ldd), CA certificates, and curl for the healthcheck
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get upgrade -y \
 && apt-get install -y --no-install-recommends \
      ca-certificates curl \
      librdkafka1 libavro23 libmariadb3 libh2o-evloop0.13 libjansson4 libjwt0 liblmdb0 libjemalloc2 \
      libssl3 libcurl4 libuuid1 libargon2-1 libsodium23 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 eventshop \
 && useradd --system --uid 10001 --gid eventshop --no-create-home --shell /usr/sbin/nologin eventshop
COPY events/schemas/ /usr/share/eventshop/schemas/
ENV EVENTSHOP_SCHEMA_DIR=/usr/share/eventshop/schemas \
    EVENTSHOP_METRICS_ADDR=0.0.0.0:9100 \
    EVENTSHOP_HEALTH_URL=http://127.0.0.1:9100/readyz
USER 10001:10001
EXPOSE 8080 8081 9100
# every role answers on its health URL (the API, the registry and the stand-ins override
# EVENTSHOP_HEALTH_URL)
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["sh", "-c", "curl -fsS -o /dev/null \"$EVENTSHOP_HEALTH_URL\""]

# the stand-ins for the outside world (compose only): docker build --target test
FROM base AS test
COPY --from=build /out/test/ /usr/local/bin/
CMD ["eventshop-test-gateway"]

# the production image: the default target, so it must stay the last stage; the pages the API
# serves (/shop/, /console/) are the files of web/
FROM base AS runtime
COPY --from=build /out/bin/ /usr/local/bin/
COPY web/ /usr/share/eventshop/web/
ENV EVENTSHOP_WEB_DIR=/usr/share/eventshop/web
CMD ["eventshop-api"]
