# syntax=docker/dockerfile:1
# One image, every role: eventshop-{registry,handler,projector,api,admin,token,subscriber}, plus
# the stand-ins eventshop-test-{gateway,carrier} (compose, tests). The role is the
# command, e.g. `eventshop-handler catalog`. Build: docker build -t eventshop:dev .
FROM debian:12-slim AS build
ENV DEBIAN_FRONTEND=noninteractive
# Debian 12 stable only takes security fixes: pinning exact versions would break on each of them
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      librdkafka-dev libavro-dev libmariadb-dev libh2o-evloop-dev libjansson-dev libjwt-dev \
      libcriterion-dev libssl-dev libcurl4-openssl-dev uuid-dev libargon2-dev libsodium-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
 && cmake --build /build -j"$(nproc)" \
 && mkdir -p /out/bin \
 && cp /build/schema-registry/eventshop-registry /build/command-handlers/eventshop-handler \
       /build/projections/eventshop-projector /build/api/eventshop-api /build/api/eventshop-token \
       /build/runtime/eventshop-admin /build/subscribers/eventshop-subscriber \
       /build/subscribers/eventshop-test-gateway /build/subscribers/eventshop-test-carrier /out/bin/ \
 && strip --strip-debug /out/bin/*

FROM debian:12-slim AS runtime
ENV DEBIAN_FRONTEND=noninteractive
# only the shared libraries the roles link (ldd), CA certificates, and curl for the healthcheck
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates curl \
      librdkafka1 libavro23 libmariadb3 libh2o-evloop0.13 libjansson4 libjwt0 \
      libssl3 libcurl4 libuuid1 libargon2-1 libsodium23 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 eventshop \
 && useradd --system --uid 10001 --gid eventshop --no-create-home --shell /usr/sbin/nologin eventshop
COPY --from=build /out/bin/ /usr/local/bin/
COPY events/schemas/ /usr/share/eventshop/schemas/
ENV EVENTSHOP_SCHEMA_DIR=/usr/share/eventshop/schemas \
    EVENTSHOP_METRICS_ADDR=0.0.0.0:9100 \
    EVENTSHOP_HEALTH_URL=http://127.0.0.1:9100/readyz
USER 10001:10001
EXPOSE 8080 8081 9100
# every role answers on its health URL (the API and the registry override EVENTSHOP_HEALTH_URL)
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["sh", "-c", "curl -fsS -o /dev/null \"$EVENTSHOP_HEALTH_URL\""]
CMD ["eventshop-api"]
