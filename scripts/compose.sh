#!/usr/bin/env bash
# The shipped artifacts, run for real: the Dockerfile's two images and docker-compose.yml.
#   compose.sh images   start dockerd if none answers; build the Debian 12 base (mmdebstrap |
#                       docker import, tagged debian:12-slim, remade after 7 days), the image
#                       eventshop and its `test` target, and the stand-ins of deploy/compose/local.yml;
#                       each tagged by a hash of its inputs and built only when that tag is missing
#                       (ES_COMPOSE_BUILD_CPUS=N: each build on at most N cores, see build())
#   compose.sh up       images, secrets (deploy/compose/make-secrets.sh), then every service of
#                       docker-compose.yml + deploy/compose/local.yml but grafana, until healthy
#   compose.sh test     up, tests/compose (a whole order, containers recreated), down
#   compose.sh down     stop and remove the project's containers and volumes
# Project eventshop-compose-<ES_PORT_OFFSET>; host ports 8780/8781/9790/8725 + ES_PORT_OFFSET.
# The image's size and the time to a healthy engine are printed.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
off=${ES_PORT_OFFSET:-0}
state=$top/.state/compose-$off
project=eventshop-compose-$off
export EVENTSHOP_API_PORT=$((8780 + off)) EVENTSHOP_REGISTRY_PORT=$((8781 + off))
export EVENTSHOP_PROMETHEUS_PORT=$((9790 + off)) EVENTSHOP_MAIL_UI_PORT=$((8725 + off))
export EVENTSHOP_GRAFANA_PORT=$((3700 + off))
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
mkdir -p "$state"
log() { echo "compose: $*"; }
die() { echo "compose: $*" >&2; exit 1; }

dockerd_up() {
    docker info >/dev/null 2>&1 && return 0
    command -v dockerd >/dev/null || die "no dockerd: run scripts/setup.sh (Debian's docker.io)"
    # a dockerd that was killed leaves its pid file, and a new one then refuses to start ("pid
    # file found") while that pid lives, whatever it now is (here once a thread of another
    # program): the file is dropped unless its pid is a dockerd
    local pidf=/var/run/docker.pid pid
    pid=$(cat "$pidf" 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != dockerd ]; then
        log "dropping the stale $pidf (pid $pid is no dockerd)"
        rm -f "$pidf"
    fi
    log "starting dockerd (log: $state/dockerd.log)"
    setsid dockerd >"$state/dockerd.log" 2>&1 </dev/null &
    local i
    for i in $(seq 60); do docker info >/dev/null 2>&1 && return 0; sleep 1; done
    tail -n 20 "$state/dockerd.log" >&2
    die "dockerd did not answer within 60 s"
}

# the Debian 12 base every image starts FROM: no registry is reachable, so it is made here
base_image() {
    local created age
    created=$(docker image inspect -f '{{.Created}}' debian:12-slim 2>/dev/null || true)
    if [ -n "$created" ]; then
        age=$(($(date +%s) - $(date -d "$created" +%s)))
        [ $age -gt $((7 * 86400)) ] || return 0
        log "base image is $((age / 86400)) days old: remaking it (security updates)"
    fi
    log "making the Debian 12 base image (mmdebstrap)"
    nice -n 19 mmdebstrap --variant=minbase --quiet bookworm - \
        "deb http://deb.debian.org/debian bookworm main" \
        "deb http://deb.debian.org/debian bookworm-updates main" \
        "deb http://deb.debian.org/debian-security bookworm-security main" |
        docker import - debian:12-slim >/dev/null
}

# a hash of files' names and contents (stdin: one path per line)
hash_files() { sort | while read -r f; do [ -f "$f" ] && { echo "$f"; sha256sum <"$f"; }; done | sha256sum | cut -c1-16; }

# build TAG CONTEXT [docker build options]: unless TAG exists. ES_COMPOSE_BUILD_CPUS=N (e.g.
# 0.5): the build's steps get at most N cores (a CFS quota on their cgroup: dockerd runs them,
# so the caller's nice does not reach them), for a build beside other work (scripts/test.sh)
build() {
    local tag=$1 ctx=$2; shift 2
    if docker image inspect "$tag" >/dev/null 2>&1; then return 0; fi
    local limit=()
    [ -z "${ES_COMPOSE_BUILD_CPUS:-}" ] ||
        limit=(--cpu-period 100000 --cpu-quota "$(awk -v c="$ES_COMPOSE_BUILD_CPUS" 'BEGIN {printf "%d", c * 100000}')")
    log "building $tag${ES_COMPOSE_BUILD_CPUS:+ (at most $ES_COMPOSE_BUILD_CPUS cores)}"
    if ! docker build -q -t "$tag" "${limit[@]}" "$@" "$ctx" >"$state/build.log" 2>&1; then
        tail -n 40 "$state/build.log" >&2
        die "building $tag failed (log: $state/build.log)"
    fi
    # older builds of the same repository are dropped
    local repo=${tag%:*} old
    for old in $(docker images "$repo" --format '{{.Repository}}:{{.Tag}}' | grep -vxF "$tag" || true); do
        docker rmi "$old" >/dev/null 2>&1 || true
    done
}

images() {
    dockerd_up
    base_image
    local h
    # the build context of the Dockerfile: what git sees, but for what cannot change a binary
    # (tests/stand-ins/ does: the test image is built from it)
    h=$( (git ls-files -co --exclude-standard | grep -vE '^(docs/|deploy/|tests/(integration|compose|deploy|chaos)/|.*\.md$|docker-compose\.yml$)'; echo Dockerfile; echo .dockerignore) | hash_files)
    build "eventshop:$h" . -f Dockerfile
    build "eventshop-test:$h" . -f Dockerfile --target test
    echo "$h" >"$state/tag"
    local ctx=$state/ctx name
    for name in kafka mariadb prometheus smtp; do
        rm -rf "$ctx"; mkdir -p "$ctx"
        cp -p deploy/compose/local/$name/* "$ctx/"
        case $name in
            kafka) [ -f .cache/kafka/.done ] || die "Kafka jars missing: run scripts/setup.sh"
                   cp -rl .cache/kafka/libs "$ctx/libs" 2>/dev/null || cp -r .cache/kafka/libs "$ctx/libs" ;;
            smtp) cp -p tests/tools/smtp_capture.py "$ctx/" ;;
        esac
        h=$( (cd "$ctx" && find . -type f) | (cd "$ctx" && hash_files))
        build "eventshop-local/$name:$h" "$ctx"
        # the tag deploy/compose/local.yml names
        docker tag "eventshop-local/$name:$h" "$(sed -n "s|^    image: \(eventshop-local/$name:.*\)|\1|p" deploy/compose/local.yml | head -n 1)"
    done
    rm -rf "$ctx"
    log "image eventshop:$(cat "$state/tag"): $(($(docker image inspect -f '{{.Size}}' "eventshop:$(cat "$state/tag")") / 1000000)) MB"
}

dc() { EVENTSHOP_TAG=$(cat "$state/tag") docker-compose -p "$project" -f docker-compose.yml -f deploy/compose/local.yml "$@"; }

services() { dc config --services | grep -vx grafana; }

up() {
    images
    deploy/compose/make-secrets.sh >/dev/null
    local t0=$SECONDS
    dc up -d $(services) >"$state/up.log" 2>&1 || { cat "$state/up.log" >&2; die "docker-compose up failed"; }
    wait_healthy 300 || die "the engine did not become healthy"
    log "engine healthy $((SECONDS - t0)) s after docker-compose up; API on http://127.0.0.1:$EVENTSHOP_API_PORT"
}

# every running service with a healthcheck is healthy, the one-shot jobs exited 0
wait_healthy() {
    local limit=$1 t0=$SECONDS bad
    while :; do
        bad=$(docker ps -a --filter "label=com.docker.compose.project=$project" \
            --format '{{.Names}} {{.Status}}' | grep -vE ' \(healthy\)| Exited \(0\)' || true)
        [ -z "$bad" ] && return 0
        if [ $((SECONDS - t0)) -ge "$limit" ]; then
            echo "$bad" >&2
            return 1
        fi
        sleep 2
    done
}

down() {
    docker info >/dev/null 2>&1 || return 0
    [ -f "$state/tag" ] || echo none >"$state/tag"
    dc down -v --remove-orphans >/dev/null 2>&1 || true
}

run_tests() {
    local rc=0
    up
    export ES_COMPOSE_PROJECT=$project ES_COMPOSE_TAG=$(cat "$state/tag") ES_COMPOSE_STATE=$state
    "$top/.cache/venv/bin/python" -m pytest -q -p no:cacheprovider tests/compose || rc=$?
    if [ $rc -ne 0 ]; then
        dc ps >&2 || true
        dc logs --no-color --tail=30 >"$state/logs.txt" 2>&1 || true
        log "container logs: $state/logs.txt"
    fi
    down
    return $rc
}

case ${1:-} in
    images) images ;;
    up) up ;;
    down) down ;;
    test) run_tests ;;
    *) echo "usage: compose.sh images|up|test|down" >&2; exit 2 ;;
esac
