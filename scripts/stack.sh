#!/usr/bin/env bash
# The local stack: a private MariaDB, a single-node KRaft Kafka 3.9 (Apache's jars from Maven
# Central, see scripts/setup.sh) and every eventshop role, all on loopback, all state under
# $ES_STATE. Used by `make up/down` (state .state/dev, default ports) and by `make test`
# (state .state/test, ports + 10000), so both can run side by side.
#
#   stack.sh infra-up      MariaDB + Kafka + topics + databases/users + keys, then writes $ES_STATE/env
#   stack.sh up            infra-up (starts MariaDB and Kafka only if they are not running), then
#                          every role that is not running, then the supervisor (below); returns
#                          once all are healthy
#   stack.sh down          stops everything (data is kept); returns once every process has exited
#   stack.sh status        per process: state, pid, ready (/readyz), restarts, lag (projectors)
#   stack.sh role-start|role-stop|role-kill|role-wait ROLE    (ROLE: registry, api,
#                          handler-<ctx>, projector-<ctx>, subscriber-<name>, stand-ins;
#                          ROLE@N: another replica of ROLE, on ROLE's port + 200 × (N - 1));
#                          role-kill sends SIGKILL; role-stop/role-kill hold the role: the
#                          supervisor leaves it down until the next role-start; role-hold
#                          holds a running role, so that it stays down once it exits. role-start
#                          hands its environment on (EVENTSHOP_FAULTS=p arms fault p in that
#                          role) and honours ES_ROLE_BUILD and ES_ROLE_WRAPPER
#   stack.sh roles         one line per role: name and base URL of its /metrics and probes
#   stack.sh endpoints     prints the endpoints
#   stack.sh infra-kill mariadb|kafka|registry    SIGKILL of one piece of infrastructure (tests)
#   stack.sh infra-start   starts whatever of MariaDB, Kafka and the registry is not running,
#                          leaves running parts alone; returns once all three are ready
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
ES_STATE=${ES_STATE:-$top/.state/dev}
ES_BUILD=${ES_BUILD:-$top/build}
ES_PORT_OFFSET=${ES_PORT_OFFSET:-0}
API_PORT=$((8080 + ES_PORT_OFFSET))
REGISTRY_PORT=$((8081 + ES_PORT_OFFSET))
KAFKA_PORT=$((9092 + ES_PORT_OFFSET))
CONTROLLER_PORT=$((9093 + ES_PORT_OFFSET))
MYSQL_PORT=$((3306 + ES_PORT_OFFSET))
METRICS_BASE=$((9100 + ES_PORT_OFFSET))
# the bounded contexts the stack runs (a handler and a projector each); ES_CONTEXTS overrides
read -r -a CONTEXTS <<<"${ES_CONTEXTS:-catalog inventory pricing users orders payments shipping}"
ROLES=(registry)
for c in "${CONTEXTS[@]}"; do ROLES+=("handler-$c" "projector-$c"); done
ROLES+=(api)
# event subscribers (DESIGN.md §4) and the local stand-ins for the outside world they call
read -r -a SUBSCRIBERS <<<"${ES_SUBSCRIBERS-order-saga payments notifications shipping}"
for sb in "${SUBSCRIBERS[@]}"; do ROLES+=("subscriber-$sb"); done
[ ${#SUBSCRIBERS[@]} -eq 0 ] || ROLES+=(test-gateway test-carrier smtp-capture)
KAFKA_LIBS=$top/.cache/kafka/libs
STOP_TIMEOUT=${ES_STOP_TIMEOUT:-20} # seconds from TERM to KILL (Kafka and MariaDB: 3 times that)

mkdir -p "$ES_STATE"/{run,logs,secrets}
chmod 700 "$ES_STATE/secrets"

die() { [ -z "$STEP_OPEN" ] || echo; echo "stack: $*" >&2; exit 1; }
# `up` prints one line per step, "what ... result (N s)"; the other subcommands print no steps
PROGRESS= STEP_OPEN= STEP_T0=0
step_begin() { [ -n "$PROGRESS" ] || return 0; printf '%s ... ' "$*"; STEP_OPEN=1 STEP_T0=$SECONDS; }
step_end() { [ -n "$PROGRESS" ] || return 0; echo "$* ($((SECONDS - STEP_T0)) s)"; STEP_OPEN=; }
count() { [ "$1" -eq 1 ] && echo "1 $2" || echo "$1 ${3:-${2}s}"; } # count 3 handler: "3 handlers"
# A process is alive unless gone or a zombie: our parent (the container's pid 1) reaps orphans
# only now and then, and kill -0 succeeds on a zombie. Builtins only (the supervisor calls it).
pid_alive() {
    local st
    [ -n "$1" ] && read -r st 2>/dev/null <"/proc/$1/stat" || return 1
    st=${st##*) }
    case ${st%% *} in
        # a zombie leader whose other threads still exit keeps its sockets (a role's port)
        Z | X) local t=("/proc/$1/task/"*); [ "${#t[@]}" -gt 1 ] || return 1 ;;
    esac
}
pidof_role() {
    local f=$ES_STATE/run/$1.pid pid
    [ -f "$f" ] && read -r pid <"$f" && pid_alive "$pid" && echo "$pid"
}
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_until() { # seconds description command...
    local secs=$1 what=$2; shift 2
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.2
    done
}
need_port() { # name port: a clear error when someone else holds it (after a few seconds, so
    # that a process that has just exited lets go of it)
    if port_busy "$2" && ! wait_until 10 "$1" port_free "$2"; then
        die "port $2 (for $1) is in use by another process; stop it or set ES_PORT_OFFSET"
    fi
}
port_free() { ! port_busy "$1"; }

metrics_port() {
    case $1 in
        *@*) # a replica ROLE@N (bench/replica_bench.py): its role's port + 200 per extra replica
            local n=${1##*@}; echo $(($(metrics_port "${1%@*}") + 200 * (n - 1))) ;;
        registry) echo $REGISTRY_PORT ;;
        api) echo $API_PORT ;;
        test-gateway) echo $((8090 + ES_PORT_OFFSET)) ;;
        test-carrier) echo $((8091 + ES_PORT_OFFSET)) ;;
        smtp-capture) echo $((2525 + ES_PORT_OFFSET)) ;;
        *) local i=1 r; for r in "${ROLES[@]}"; do [ "$r" = "$1" ] && { echo $((METRICS_BASE + i)); return; }; i=$((i + 1)); done ;;
    esac
}

# ---------------------------------------------------------------- MariaDB
mysql_sock() { echo "$ES_STATE/mysql/mysqld.sock"; }
mysql_root() { mariadb --socket="$(mysql_sock)" -uroot "$@"; }
mysql_up() {
    if [ -n "$(pidof_role mariadb || true)" ]; then return 0; fi
    need_port mariadb $MYSQL_PORT
    local d=$ES_STATE/mysql
    if [ ! -d "$d/mysql" ]; then
        mkdir -p "$d"; chown mysql:mysql "$d"
        mariadb-install-db --user=mysql --datadir="$d" --auth-root-authentication-method=socket \
            --skip-test-db >"$ES_STATE/logs/mariadb-install.log" 2>&1 || die "mariadb-install-db failed, see $ES_STATE/logs/mariadb-install.log"
    fi
    mariadbd --no-defaults --user=mysql --datadir="$d" --socket="$(mysql_sock)" --port=$MYSQL_PORT \
        --bind-address=127.0.0.1 --pid-file="$d/mariadbd.pid" --log-error="$d/mariadb.err" \
        --innodb-buffer-pool-size=128M --max-connections=500 --skip-name-resolve >>"$d/mariadb.err" 2>&1 &
    echo $! >"$ES_STATE/run/mariadb.pid"
    wait_until 60 mariadb mariadb-admin --socket="$(mysql_sock)" ping || die "mariadb did not start, see $ES_STATE/mysql/mariadb.err"
}
mysql_users() {
    local ctx pw_rw pw_ro
    for ctx in "${CONTEXTS[@]}"; do
        for kind in rw ro; do
            local f=$ES_STATE/secrets/mysql-$ctx-$kind.password
            [ -f "$f" ] || (umask 077; openssl rand -hex 24 >"$f")
        done
        pw_rw=$(cat "$ES_STATE/secrets/mysql-$ctx-rw.password")
        pw_ro=$(cat "$ES_STATE/secrets/mysql-$ctx-ro.password")
        # least privilege: the projector owns its database, the API only reads it
        mysql_root <<SQL
CREATE DATABASE IF NOT EXISTS eventshop_$ctx CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER IF NOT EXISTS 'eventshop_${ctx}_rw'@'127.0.0.1' IDENTIFIED BY '$pw_rw';
CREATE USER IF NOT EXISTS 'eventshop_${ctx}_ro'@'127.0.0.1' IDENTIFIED BY '$pw_ro';
CREATE USER IF NOT EXISTS 'eventshop_${ctx}_rw'@'localhost' IDENTIFIED BY '$pw_rw';
CREATE USER IF NOT EXISTS 'eventshop_${ctx}_ro'@'localhost' IDENTIFIED BY '$pw_ro';
GRANT ALL ON eventshop_$ctx.* TO 'eventshop_${ctx}_rw'@'127.0.0.1', 'eventshop_${ctx}_rw'@'localhost';
GRANT SELECT ON eventshop_$ctx.* TO 'eventshop_${ctx}_ro'@'127.0.0.1', 'eventshop_${ctx}_ro'@'localhost';
SQL
    done
    history_user
}
# eventshop-history as-of builds read models into databases of its own: user eventshop_history
# may create and fill the databases asof_* and no other (password secrets/mysql-history.password)
history_user() {
    local f=$ES_STATE/secrets/mysql-history.password pw
    [ -f "$f" ] || (umask 077; openssl rand -hex 24 >"$f")
    pw=$(cat "$f")
    mysql_root <<SQL
CREATE USER IF NOT EXISTS 'eventshop_history'@'127.0.0.1' IDENTIFIED BY '$pw';
CREATE USER IF NOT EXISTS 'eventshop_history'@'localhost' IDENTIFIED BY '$pw';
GRANT ALL ON \`asof\\_%\`.* TO 'eventshop_history'@'127.0.0.1', 'eventshop_history'@'localhost';
SQL
}

# ---------------------------------------------------------------- Kafka (KRaft, one node)
kafka_up() {
    if [ -n "$(pidof_role kafka || true)" ]; then return 0; fi
    [ -f "$top/.cache/kafka/.done" ] || die "Kafka jars missing: run scripts/setup.sh"
    need_port kafka $KAFKA_PORT
    need_port kafka-controller $CONTROLLER_PORT
    local d=$ES_STATE/kafka
    mkdir -p "$d/data"
    cat >"$d/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$d/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.cleaner.enable=true
PROPS
    cat >"$d/log4j.properties" <<'PROPS'
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
PROPS
    local java_opts=(-Xms256m -Xmx768m -XX:+UseG1GC -Dlog4j.configuration="file:$d/log4j.properties"
                     -Djava.awt.headless=true)
    if [ ! -f "$d/data/meta.properties" ]; then
        # a new Kafka: the handlers' state stores reflect the topics of the old one
        rm -rf "$ES_STATE/handler-state"
        local id; id=$(java -cp "$KAFKA_LIBS/*" "${java_opts[@]}" kafka.tools.StorageTool random-uuid)
        java -cp "$KAFKA_LIBS/*" "${java_opts[@]}" kafka.tools.StorageTool format -t "$id" \
            -c "$d/server.properties" >"$ES_STATE/logs/kafka-format.log" 2>&1 || die "kafka storage format failed, see $ES_STATE/logs/kafka-format.log"
    fi
    java -cp "$KAFKA_LIBS/*" "${java_opts[@]}" kafka.Kafka "$d/server.properties" >"$ES_STATE/logs/kafka.log" 2>&1 &
    echo $! >"$ES_STATE/run/kafka.pid"
}

keys_up() {
    local s=$ES_STATE/secrets
    [ -f "$s/gateway.key" ] || (umask 077; echo "sk_test_$(openssl rand -hex 16)" >"$s/gateway.key")
    if [ ! -f "$s/jwt-private.pem" ]; then
        (umask 077; openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$s/jwt-private.pem" 2>/dev/null)
        openssl pkey -in "$s/jwt-private.pem" -pubout -out "$s/jwt-public.pem"
    fi
}

write_env() {
    cat >"$ES_STATE/env" <<ENV
export ES_STATE=$ES_STATE
export ES_BUILD=$ES_BUILD
export ES_PORT_OFFSET=$ES_PORT_OFFSET
export EVENTSHOP_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
export EVENTSHOP_REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT
export EVENTSHOP_API_URL=http://127.0.0.1:$API_PORT
export EVENTSHOP_PARTITIONS=${EVENTSHOP_PARTITIONS:-4}
export EVENTSHOP_SCHEMA_DIR=$top/events/schemas
export EVENTSHOP_WEB_DIR=$top/web
export EVENTSHOP_MYSQL_HOST=127.0.0.1
export EVENTSHOP_MYSQL_PORT=$MYSQL_PORT
export EVENTSHOP_MYSQL_ROOT_SOCKET=$(mysql_sock)
export ES_CONTEXTS="${CONTEXTS[*]}"
$(for c in "${CONTEXTS[@]}"; do
    C=$(echo "$c" | tr a-z A-Z)
    echo "export EVENTSHOP_MYSQL_${C}_USER=eventshop_${c}_rw"
    echo "export EVENTSHOP_MYSQL_${C}_PASSWORD_FILE=$ES_STATE/secrets/mysql-$c-rw.password"
done)
export EVENTSHOP_MYSQL_HISTORY_USER=eventshop_history
export EVENTSHOP_MYSQL_HISTORY_PASSWORD_FILE=$ES_STATE/secrets/mysql-history.password
export ES_SUBSCRIBERS="${SUBSCRIBERS[*]}"
export EVENTSHOP_PAYMENTS_GATEWAY_URL=http://127.0.0.1:$((8090 + ES_PORT_OFFSET))
export EVENTSHOP_PAYMENTS_SECRET_KEY_FILE=$ES_STATE/secrets/gateway.key
export EVENTSHOP_CARRIER_URL=http://127.0.0.1:$((8091 + ES_PORT_OFFSET))
export EVENTSHOP_SMS_WEBHOOK_URL=http://127.0.0.1:$((8091 + ES_PORT_OFFSET))/sms
export EVENTSHOP_SMTP_URL=smtp://127.0.0.1:$((2525 + ES_PORT_OFFSET))
export EVENTSHOP_MAIL_CAPTURE_DIR=$ES_STATE/mail
export EVENTSHOP_JWT_ALG=RS256
export EVENTSHOP_JWT_PUBLIC_KEY_FILE=$ES_STATE/secrets/jwt-public.pem
export EVENTSHOP_JWT_PRIVATE_KEY_FILE=$ES_STATE/secrets/jwt-private.pem
export EVENTSHOP_JWT_ISSUER=eventshop
export EVENTSHOP_JWT_AUDIENCE=eventshop-api
ENV
}

infra_up() {
    step_begin "infrastructure: MariaDB 127.0.0.1:$MYSQL_PORT, databases, users and keys"
    mysql_up
    mysql_users
    kafka_up
    keys_up
    write_env
    users_infra_up
    notifications_infra_up
    saga_infra_up
    step_end ready
    step_begin "topics: Kafka 127.0.0.1:$KAFKA_PORT"
    # shellcheck disable=SC1091
    . "$ES_STATE/env"
    "$ES_BUILD/runtime/eventshop-admin" topics "${CONTEXTS[@]}" operations ||
        die "kafka did not come up, see $ES_STATE/logs/kafka.log"
    notifications_topics || die "cannot create the notifications topics"
    step_end ready
}

# ---------------------------------------------------------------- roles
role_cmd() {
    set -- "${1%@*}" # a replica runs its role's command
    case $1 in
        registry) echo "$ES_BUILD/schema-registry/eventshop-registry" ;;
        api) echo "$ES_BUILD/api/eventshop-api" ;;
        handler-*) echo "$ES_BUILD/command-handlers/eventshop-handler ${1#handler-}" ;;
        projector-*) echo "$ES_BUILD/projections/eventshop-projector ${1#projector-}" ;;
        subscriber-*) echo "$ES_BUILD/subscribers/eventshop-subscriber ${1#subscriber-}" ;;
        test-gateway) echo "$ES_BUILD/tests/stand-ins/eventshop-test-gateway" ;;
        test-carrier) echo "$ES_BUILD/tests/stand-ins/eventshop-test-carrier" ;;
        smtp-capture) echo "$top/.cache/venv/bin/python $top/tests/tools/smtp_capture.py" ;;
        *) die "unknown role '$1'" ;;
    esac
}
role_health_url() {
    case $1 in
        registry) echo "http://127.0.0.1:$REGISTRY_PORT/" ;;
        test-gateway | test-carrier) echo "http://127.0.0.1:$(metrics_port "$1")/healthz" ;;
        smtp-capture) echo "" ;;
        *) echo "http://127.0.0.1:$(metrics_port "$1")/readyz" ;;
    esac
}
role_start() {
    local role=$1
    [ -z "$(pidof_role "$role" || true)" ] || return 0
    # for this start only: ES_ROLE_BUILD, another build tree (e.g. build-tsan); ES_ROLE_WRAPPER,
    # a command the role runs under (e.g. valgrind); the caller's other variables pass through
    local build=${ES_ROLE_BUILD:-} wrapper=${ES_ROLE_WRAPPER:-}
    # shellcheck disable=SC1091
    . "$ES_STATE/env"
    [ -z "$build" ] || ES_BUILD=$build
    local port; port=$(metrics_port "$role")
    need_port "$role" "$port"
    local cmd; cmd=$(role_cmd "$role")
    (
        export EVENTSHOP_METRICS_ADDR=127.0.0.1:$port
        export EVENTSHOP_INSTANCE_ID=${EVENTSHOP_INSTANCE_ID:-local}
        # a replica ROLE@N runs as ROLE with an instance id (its transactional ids) of its own
        [[ $role != *@* ]] || EVENTSHOP_INSTANCE_ID=$EVENTSHOP_INSTANCE_ID-${role##*@}
        case ${role%@*} in
            registry) export EVENTSHOP_REGISTRY_ADDR=127.0.0.1:$REGISTRY_PORT ;;
            # the state store of a handler (or of its replica): a cache of its changelog
            handler-*) export EVENTSHOP_HANDLER_STATE_DIR=${EVENTSHOP_HANDLER_STATE_DIR:-$ES_STATE/handler-state/$role} ;;
            test-gateway | test-carrier) export EVENTSHOP_FAKE_ADDR=127.0.0.1:$port ;;
            subscriber-notifications) notifications_env ;;
            subscriber-order-saga) saga_env ;;
            smtp-capture) export EVENTSHOP_SMTP_CAPTURE_ADDR=127.0.0.1:$port EVENTSHOP_SMTP_CAPTURE_DIR=$ES_STATE/mail ;;
            api)
                export EVENTSHOP_API_ADDR=127.0.0.1:$port
                users_api_env
                saga_api_env
                # the API only reads the read models
                for c in "${CONTEXTS[@]}"; do
                    C=$(echo "$c" | tr a-z A-Z)
                    export "EVENTSHOP_MYSQL_${C}_USER=eventshop_${c}_ro"
                    export "EVENTSHOP_MYSQL_${C}_PASSWORD_FILE=$ES_STATE/secrets/mysql-$c-ro.password"
                done ;;
        esac
        close_inherited_fds
        # shellcheck disable=SC2086
        exec $wrapper $cmd >>"$ES_STATE/logs/$role.log" 2>&1
    ) &
    echo $! >"$ES_STATE/run/$role.pid"
}
role_wait() {
    local url; url=$(role_health_url "$1")
    if [ -z "$url" ]; then # a plain TCP service: up when its port answers
        wait_until "${2:-60}" "$1" port_busy "$(metrics_port "$1")" || die "$1 did not open its port"
        return 0
    fi
    local end=$((SECONDS + ${2:-60}))
    until curl -fsS -o /dev/null "$url" 2>/dev/null; do
        [ -n "$(pidof_role "$1" || true)" ] || die "$1 exited; last lines of $ES_STATE/logs/$1.log:
$(tail -n 15 "$ES_STATE/logs/$1.log" 2>/dev/null)"
        [ $SECONDS -lt $end ] || die "$1 not healthy after ${2:-60} s; see $ES_STATE/logs/$1.log"
        sleep 0.2
    done
}
role_signal() { # role signal [seconds before KILL]: returns once the process has exited
    local pid; pid=$(pidof_role "$1" || true)
    [ -n "$pid" ] || { rm -f "$ES_STATE/run/$1.pid"; return 0; }
    kill -"$2" "$pid" 2>/dev/null || true
    local end=$((SECONDS + ${3:-$STOP_TIMEOUT}))
    while pid_alive "$pid"; do
        if [ $SECONDS -ge $end ]; then kill -KILL "$pid" 2>/dev/null || true; fi
        sleep 0.1
    done
    rm -f "$ES_STATE/run/$1.pid"
}

endpoints() { # one line each: "  name  where"; tests read the roles' /metrics from it
    local r w=16 shown=()
    for r in "${ROLES[@]}"; do
        case $r in registry | api | test-* | smtp-*) ;; *) shown+=("$r"); [ ${#r} -lt $w ] || w=$((${#r} + 1)) ;; esac
    done
    local row="  %-${w}s %s\n" st=
    [ "$ES_STATE" = "$top/.state/dev" ] || st="ES_STATE=${ES_STATE#"$top"/} "
    echo "eventshop is up (state in $ES_STATE)"
    printf "$row" API "http://127.0.0.1:$API_PORT  (metrics http://127.0.0.1:$API_PORT/metrics)" \
        "schema registry" "http://127.0.0.1:$REGISTRY_PORT  (metrics http://127.0.0.1:$REGISTRY_PORT/metrics)" \
        Kafka "127.0.0.1:$KAFKA_PORT" MariaDB "127.0.0.1:$MYSQL_PORT (socket $(mysql_sock))"
    for r in "${shown[@]}"; do printf "$row" "$r" "http://127.0.0.1:$(metrics_port "$r")/metrics"; done
    printf "$row" token "${st}make token ROLE=vendor SUB=alice VENDOR=acme"
    ! has_users || printf "$row" admin "${EVENTSHOP_ADMIN_EMAIL:-admin@eventshop.local}, password in $ES_STATE/secrets/admin.password"
}

down() {
    sup_stop
    # every process that has a pid file, not only today's ROLES: a stack brought up with other
    # ES_CONTEXTS/ES_SUBSCRIBERS still has its roles and stand-ins. The API first (no new
    # commands), then the rest at once; each role_signal returns only once its process is gone.
    role_signal api TERM
    local f r
    for f in "$ES_STATE"/run/*.pid; do
        [ -e "$f" ] || continue
        r=${f##*/}; r=${r%.pid}
        case $r in api | kafka | mariadb | supervisor) ;; *) role_signal "$r" TERM & ;; esac
    done
    wait
    role_signal kafka TERM $((3 * STOP_TIMEOUT))
    if [ -n "$(pidof_role mariadb || true)" ]; then
        mariadb-admin --socket="$(mysql_sock)" shutdown 2>/dev/null || true
        role_signal mariadb TERM $((3 * STOP_TIMEOUT))
    fi
    rm -f "$ES_STATE"/run/*.held "$ES_STATE"/run/*.restarts
}


# ---------------------------------------------------------------- users context (crypto-shredding)
# Only when "users" is in ES_CONTEXTS. The per-user keys live outside Kafka in their own database
# eventshop_keys (table user_keys), reached only by the API and the eventshop-users tool with a
# user that may SELECT, INSERT and DELETE on that one table. Secrets under $ES_STATE/secrets:
# mysql-keys.password, users-index.key (the e-mail blind-index HMAC key, 64 hex digits) and
# admin.password (the first admin's, made once), users-open.secret (the notifications' credential
# for the users context's open call, POST /internal/users/{id}/contact: users_open_secret). The
# API gets them by users_api_env, not through $ES_STATE/env, so handlers and projectors never see
# them.
has_users() { local c; for c in "${CONTEXTS[@]}"; do [ "$c" = users ] && return 0; done; return 1; }
users_infra_up() {
    has_users || return 0
    local s=$ES_STATE/secrets
    [ -f "$s/mysql-keys.password" ] || (umask 077; openssl rand -hex 24 >"$s/mysql-keys.password")
    [ -f "$s/users-index.key" ] || (umask 077; openssl rand -hex 32 >"$s/users-index.key")
    [ -f "$s/admin.password" ] || (umask 077; openssl rand -base64 24 >"$s/admin.password")
    users_open_secret
    local pw; pw=$(cat "$s/mysql-keys.password")
    mysql_root <<SQL
CREATE DATABASE IF NOT EXISTS eventshop_keys CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE TABLE IF NOT EXISTS eventshop_keys.user_keys (user_id CHAR(36) NOT NULL PRIMARY KEY,
  key_material VARBINARY(32) NOT NULL, created_at DATETIME NOT NULL) ENGINE=InnoDB;
CREATE USER IF NOT EXISTS 'eventshop_keys'@'127.0.0.1' IDENTIFIED BY '$pw';
CREATE USER IF NOT EXISTS 'eventshop_keys'@'localhost' IDENTIFIED BY '$pw';
GRANT SELECT, INSERT, DELETE ON eventshop_keys.user_keys TO 'eventshop_keys'@'127.0.0.1', 'eventshop_keys'@'localhost';
SQL
}
# the open call's credential, shared by the API (the users context) and the notifications
users_open_secret() {
    local f=$ES_STATE/secrets/users-open.secret
    [ -f "$f" ] || (umask 077; openssl rand -hex 32 >"$f")
}
users_api_env() {
    has_users || return 0
    export EVENTSHOP_MYSQL_KEYS_USER=eventshop_keys
    export EVENTSHOP_MYSQL_KEYS_PASSWORD_FILE=$ES_STATE/secrets/mysql-keys.password
    export EVENTSHOP_USERS_INDEX_KEY_FILE=$ES_STATE/secrets/users-index.key
    export EVENTSHOP_USERS_OPEN_SECRET_FILE=$ES_STATE/secrets/users-open.secret
}
# the first admin (idempotent): e-mail EVENTSHOP_ADMIN_EMAIL, password in secrets/admin.password
users_bootstrap_admin() {
    has_users || return 0
    [ -x "$ES_BUILD/api/eventshop-users" ] || die "missing binary eventshop-users: build first"
    (
        . "$ES_STATE/env"
        users_api_env
        "$ES_BUILD/api/eventshop-users" bootstrap-admin --email "${EVENTSHOP_ADMIN_EMAIL:-admin@eventshop.local}" \
            --password-file "$ES_STATE/secrets/admin.password" >"$ES_STATE/run/admin.user_id"
    ) || die "bootstrap-admin failed"
}

# ---------------------------------------------------------------- notifications subscriber
# Only when "notifications" is in ES_SUBSCRIBERS. It has no handler nor projector, so it is not a
# context of ES_CONTEXTS: its database eventshop_notifications (sent records) and its user are
# made here, and topics notifications.* by eventshop-admin. It reads no other context's database:
# its contacts come from users.events (sealed) and are opened by the API's users open call
# (EVENTSHOP_USERS_OPEN_URL, credential secrets/users-open.secret). Password in
# secrets/mysql-notifications.password; the role gets both by notifications_env only.
has_subscriber() { local s; for s in "${SUBSCRIBERS[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
notifications_infra_up() {
    has_subscriber notifications || return 0
    local s=$ES_STATE/secrets
    [ -f "$s/mysql-notifications.password" ] || (umask 077; openssl rand -hex 24 >"$s/mysql-notifications.password")
    users_open_secret
    local pw; pw=$(cat "$s/mysql-notifications.password")
    mysql_root <<SQL
CREATE DATABASE IF NOT EXISTS eventshop_notifications CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER IF NOT EXISTS 'eventshop_notifications'@'127.0.0.1' IDENTIFIED BY '$pw';
CREATE USER IF NOT EXISTS 'eventshop_notifications'@'localhost' IDENTIFIED BY '$pw';
GRANT ALL ON eventshop_notifications.* TO 'eventshop_notifications'@'127.0.0.1', 'eventshop_notifications'@'localhost';
SQL
}
notifications_topics() {
    has_subscriber notifications || return 0
    "$ES_BUILD/runtime/eventshop-admin" topics notifications
}
notifications_env() {
    export EVENTSHOP_MYSQL_NOTIFICATIONS_USER=eventshop_notifications
    export EVENTSHOP_MYSQL_NOTIFICATIONS_PASSWORD_FILE=$ES_STATE/secrets/mysql-notifications.password
    export EVENTSHOP_USERS_OPEN_URL=http://127.0.0.1:$API_PORT
    export EVENTSHOP_USERS_OPEN_SECRET_FILE=$ES_STATE/secrets/users-open.secret
}

# ---------------------------------------------------------------- supervision (make up)
# `up` starts one supervisor per stack (`stack.sh supervise`: pid in run/supervisor.pid, log in
# logs/supervisor.log); `down` stops it first. Once a second (a blocking read with a timeout on
# its own fifo, builtins only: it costs nothing) it looks at every role's pid; a role that died
# is started again after a capped exponential backoff (1, 2, 4 … 30 s; back to 1 s once a run
# lasted a minute), with a log line here and in the role's log, and run/<role>.restarts counts
# its restarts (reset by `down`). Kafka and MariaDB are not supervised: `up` starts whichever
# is missing and leaves running parts alone.
# The contract with tests: a role stopped on purpose (role-stop, role-kill), or started with
# EVENTSHOP_FAULTS armed (its crash is the test's), is "held" (run/<role>.held) and left alone
# until a plain role-start or `up` starts it. Start, stop, kill and the supervisor's restart of
# a role each hold the role's lock (run/<role>.lock), so they never cross.
CLOSE_FDS=()
close_inherited_fds() { # in a role's subshell: a role must not hold our locks or fifo
    local fd
    for fd in "${CLOSE_FDS[@]}"; do exec {fd}>&-; done
}
role_locked() { # role command...: runs the command holding the role's lock
    local fd rc
    exec {fd}>"$ES_STATE/run/$1.lock"
    CLOSE_FDS+=("$fd")
    flock "$fd"
    "${@:2}"
    rc=$?
    exec {fd}>&-
    unset 'CLOSE_FDS[-1]'
    return $rc
}
role_held() { [ -f "$ES_STATE/run/$1.held" ]; }
role_start_cmd() { # role-start and up: start the role, held only while fault points are armed
    role_start "$1"
    if [ -n "${EVENTSHOP_FAULTS:-}" ]; then : >"$ES_STATE/run/$1.held"; else rm -f "$ES_STATE/run/$1.held"; fi
}
role_stop_cmd() { # role signal: role-stop and role-kill, held so that nobody restarts it
    : >"$ES_STATE/run/$1.held"
    role_signal "$1" "$2"
}
sup_log() { printf '%(%Y-%m-%dT%H:%M:%S)T supervisor: %s\n' -1 "$*"; }
declare -A SUP_PIDS=()
sup_alive() { # role: true when its process is alive, pid in SUP_PID. One stat a turn: the pid
    # file is read again only once the known pid is gone; a zombie has no /proc/<pid>/exe
    SUP_PID=${SUP_PIDS[$1]:-}
    [ -n "$SUP_PID" ] && [ -e "/proc/$SUP_PID/exe" ] && return 0
    local f=$ES_STATE/run/$1.pid
    SUP_PID=
    [ -f "$f" ] && read -r SUP_PID <"$f"
    SUP_PIDS[$1]=$SUP_PID
    [ -n "$SUP_PID" ] && [ -e "/proc/$SUP_PID/exe" ]
}
sup_restart() { # role, holding its lock: start it unless someone held or started it meanwhile
    role_held "$1" && { sup_log "$1 is held: not restarted"; return 0; }
    sup_alive "$1" && return 0
    role_start "$1"
    local n=0 f=$ES_STATE/run/$1.restarts
    [ -f "$f" ] && read -r n <"$f"
    n=$((n + 1))
    echo "$n" >"$f"
    sup_log "$1 restarted (pid $(cat "$ES_STATE/run/$1.pid"), restart $n)"
    echo "stack: restarted by the supervisor (restart $n)" >>"$ES_STATE/logs/$1.log"
}
supervise() {
    set +e
    local fifo=$ES_STATE/run/supervisor.fifo r n delay now stop=0 fd
    local -A since=() fails=() due=() told=()
    rm -f "$fifo"
    mkfifo -m 600 "$fifo" || die "cannot make $fifo"
    exec {fd}<>"$fifo"
    CLOSE_FDS+=("$fd")
    echo "$BASHPID" >"$ES_STATE/run/supervisor.pid"
    trap 'stop=1' TERM INT
    trap '' HUP
    sup_log "watching ${ROLES[*]}"
    while [ $stop -eq 0 ]; do
        # the stack's state was removed under us (rm -rf of $ES_STATE): nothing left to watch
        [ -f "$ES_STATE/run/supervisor.pid" ] || { sup_log "run/supervisor.pid is gone: exiting"; exit 0; }
        now=$SECONDS
        for r in "${ROLES[@]}"; do
            if role_held "$r"; then # said once, so a test can wait for it
                unset "due[$r]"
                if sup_alive "$r"; then
                    unset "told[$r]"
                elif [ -z "${told[$r]:-}" ]; then
                    told[$r]=1
                    sup_log "$r is held (stopped on purpose or fault points armed): not restarted"
                fi
                continue
            fi
            unset "told[$r]"
            if sup_alive "$r"; then
                unset "due[$r]"
                # a run of a minute or more ends the backoff
                [ -n "${since[$r]:-}" ] && [ $((now - ${since[$r]})) -ge 60 ] && fails[$r]=0
                continue
            fi
            [ -n "$SUP_PID" ] || continue # never started, or stopped through this script
            if [ -z "${due[$r]:-}" ]; then
                n=${fails[$r]:-0}; [ "$n" -le 5 ] || n=5
                delay=$((1 << n)); [ $delay -le 30 ] || delay=30
                due[$r]=$((now + delay))
                sup_log "$r is not running (pid ${SUP_PID:-none}): restart in $delay s"
                continue
            fi
            [ "$now" -ge "${due[$r]}" ] || continue
            unset "due[$r]"
            fails[$r]=$((${fails[$r]:-0} + 1))
            since[$r]=$SECONDS
            # a subshell: role_start dies on a busy port, and the supervisor must not
            (role_locked "$r" sup_restart "$r") || sup_log "restart of $r failed; will retry"
        done
        read -r -t 1 -u "$fd" && [ "$REPLY" = stop ] && stop=1
    done
    sup_log "stopped"
    rm -f "$fifo" "$ES_STATE/run/supervisor.pid"
}
sup_start() {
    [ -z "$(pidof_role supervisor || true)" ] || return 0
    rm -f "$ES_STATE/run/supervisor.pid"
    ES_STATE=$ES_STATE ES_BUILD=$ES_BUILD ES_PORT_OFFSET=$ES_PORT_OFFSET ES_CONTEXTS="${CONTEXTS[*]}" \
        ES_SUBSCRIBERS="${SUBSCRIBERS[*]}" setsid "$top/scripts/stack.sh" supervise </dev/null >>"$ES_STATE/logs/supervisor.log" 2>&1 &
    wait_until 10 supervisor pidof_role supervisor || die "the supervisor did not start, see $ES_STATE/logs/supervisor.log"
}
sup_stop() { # returns once the supervisor has exited (it may be finishing a restart)
    local pid; pid=$(pidof_role supervisor || true)
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        local end=$((SECONDS + 30))
        while pid_alive "$pid"; do
            if [ $SECONDS -ge $end ]; then kill -KILL "$pid" 2>/dev/null || true; fi
            sleep 0.1
        done
    fi
    rm -f "$ES_STATE/run/supervisor.pid" "$ES_STATE/run/supervisor.fifo"
}

# ---------------------------------------------------------------- status
probe() { # url: the HTTP status, 000 when nothing answers
    curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true
}
role_ready() { # role: yes/no from its /readyz (its /healthz where it has no /readyz)
    local port; port=$(metrics_port "$1")
    local code; code=$(probe "http://127.0.0.1:$port/readyz")
    [ "$code" != 404 ] || code=$(probe "http://127.0.0.1:$port/healthz")
    case $1 in smtp-capture) port_busy "$port" && code=200 ;; esac
    [ "$code" = 200 ] && echo yes || echo no
}
role_lag() { # role: the sum of a projector's lag gauges, else -
    case $1 in projector-*) ;; *) echo -; return ;; esac
    curl -s -m 2 "http://127.0.0.1:$(metrics_port "$1")/metrics" 2>/dev/null |
        awk '/^eventshop_projector_lag[{ ]/ {s += $NF; n++} END {print n ? s : "?"}'
}
status() {
    local r pid state ready restarts lag
    printf '%-26s %-8s %-8s %-6s %-9s %s\n' PROCESS STATE PID READY RESTARTS LAG
    for r in mariadb kafka supervisor "${ROLES[@]}"; do
        pid=$(pidof_role "$r" || true)
        state=running; [ -n "$pid" ] || state=stopped
        role_held "$r" && state=held
        ready=- restarts=- lag=-
        case $r in
            mariadb) [ -z "$pid" ] || { mariadb-admin --socket="$(mysql_sock)" ping >/dev/null 2>&1 && ready=yes || ready=no; } ;;
            kafka) [ -z "$pid" ] || { port_busy $KAFKA_PORT && ready=yes || ready=no; } ;;
            supervisor) ;;
            *)
                restarts=0; [ -f "$ES_STATE/run/$r.restarts" ] && restarts=$(cat "$ES_STATE/run/$r.restarts")
                if [ -n "$pid" ]; then ready=$(role_ready "$r"); lag=$(role_lag "$r"); else ready=no; fi ;;
        esac
        printf '%-26s %-8s %-8s %-6s %-9s %s\n' "$r" "$state" "${pid:--}" "$ready" "$restarts" "$lag"
    done
}
roles() { # one line per role: name and the base URL of its /metrics, /healthz, /readyz
    local r
    for r in "${ROLES[@]}"; do echo "$r http://127.0.0.1:$(metrics_port "$r")"; done
}

# ---------------------------------------------------------------- order saga
# Only when "order-saga" is in ES_SUBSCRIBERS: its deadline table (open orders per orders.events
# partition and the progress folded, subscribers/saga.c) lives in its own database
# eventshop_order_saga with its own user, which may touch nothing else. Password in
# secrets/mysql-order-saga.password; the role gets it by saga_env only (tests that start a second
# saga instance read the same two names).
saga_infra_up() {
    has_subscriber order-saga || return 0
    local s=$ES_STATE/secrets
    [ -f "$s/mysql-order-saga.password" ] || (umask 077; openssl rand -hex 24 >"$s/mysql-order-saga.password")
    [ -f "$s/mysql-order-saga-ro.password" ] || (umask 077; openssl rand -hex 24 >"$s/mysql-order-saga-ro.password")
    local pw; pw=$(cat "$s/mysql-order-saga.password")
    local pw_ro; pw_ro=$(cat "$s/mysql-order-saga-ro.password")
    mysql_root <<SQL
CREATE DATABASE IF NOT EXISTS eventshop_order_saga CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER IF NOT EXISTS 'eventshop_order_saga'@'127.0.0.1' IDENTIFIED BY '$pw';
CREATE USER IF NOT EXISTS 'eventshop_order_saga'@'localhost' IDENTIFIED BY '$pw';
GRANT ALL ON eventshop_order_saga.* TO 'eventshop_order_saga'@'127.0.0.1', 'eventshop_order_saga'@'localhost';
CREATE USER IF NOT EXISTS 'eventshop_order_saga_ro'@'127.0.0.1' IDENTIFIED BY '$pw_ro';
CREATE USER IF NOT EXISTS 'eventshop_order_saga_ro'@'localhost' IDENTIFIED BY '$pw_ro';
GRANT SELECT ON eventshop_order_saga.* TO 'eventshop_order_saga_ro'@'127.0.0.1', 'eventshop_order_saga_ro'@'localhost';
SQL
}
# the API lists the open orders (GET /v1/admin/sagas) with a user that may only read them
saga_api_env() {
    has_subscriber order-saga || return 0
    export EVENTSHOP_MYSQL_ORDER_SAGA_USER=eventshop_order_saga_ro
    export EVENTSHOP_MYSQL_ORDER_SAGA_PASSWORD_FILE=$ES_STATE/secrets/mysql-order-saga-ro.password
}
saga_env() {
    export EVENTSHOP_MYSQL_ORDER_SAGA_USER=eventshop_order_saga
    export EVENTSHOP_MYSQL_ORDER_SAGA_PASSWORD_FILE=$ES_STATE/secrets/mysql-order-saga.password
}

# ---------------------------------------------------------------- infrastructure faults (tests)
infra_kill() { # mariadb|kafka|registry: a crash, not a shutdown
    case ${1:-} in
        mariadb | kafka | registry) role_signal "$1" KILL ;;
        *) die "infra-kill: '${1:-}' is not one of mariadb, kafka, registry" ;;
    esac
}
infra_start() {
    [ -f "$ES_STATE/env" ] || die "infra-start: no $ES_STATE/env: run stack.sh up first"
    mysql_up
    kafka_up
    # shellcheck disable=SC1091
    . "$ES_STATE/env"
    # waits up to 60 s for the broker; the topics exist already
    "$ES_BUILD/runtime/eventshop-admin" topics "${CONTEXTS[@]}" operations >/dev/null ||
        die "kafka did not come up, see $ES_STATE/logs/kafka.log"
    role_start registry
    role_wait registry 90
}

case ${1:-} in
    infra-up) infra_up ;;
    infra-kill) infra_kill "${2:-}" ;;
    infra-start) infra_start ;;
    up)
        for r in "${ROLES[@]}"; do [ -x "$(role_cmd "$r" | cut -d' ' -f1)" ] || die "missing binary for $r: build first (make build)"; done
        for r in "${ROLES[@]}"; do [ -n "$(pidof_role "$r" || true)" ] || need_port "$r" "$(metrics_port "$r")"; done
        PROGRESS=1
        infra_up
        step_begin "schema registry: http://127.0.0.1:$REGISTRY_PORT"
        role_locked registry role_start_cmd registry; role_wait registry
        step_end ready
        n=0; for r in "${ROLES[@]}"; do [ -n "$(pidof_role "$r" || true)" ] || n=$((n + 1)); done
        step_begin "roles: api, $(count ${#CONTEXTS[@]} handler), $(count ${#CONTEXTS[@]} projector), $(count ${#SUBSCRIBERS[@]} subscriber)$([ ${#SUBSCRIBERS[@]} -eq 0 ] || echo ", 3 stand-ins")"
        for r in "${ROLES[@]}"; do [ "$r" = registry ] || role_locked "$r" role_start_cmd "$r"; done
        for r in "${ROLES[@]}"; do role_wait "$r" 90; done
        users_bootstrap_admin
        step_end "$n started, all $((${#ROLES[@]} - 1)) ready"
        sup_start
        echo "supervisor: running (restarts a role that dies; log $ES_STATE/logs/supervisor.log)"
        endpoints ;;
    down)
        n=0; for f in "$ES_STATE"/run/*.pid; do r=${f##*/}; [ -z "$(pidof_role "${r%.pid}" || true)" ] || n=$((n + 1)); done
        t0=$SECONDS
        down
        if [ $n -eq 0 ]; then echo "eventshop is down: nothing was running (data kept in $ES_STATE)"
        else echo "eventshop is down: $(count $n process processes) stopped in $((SECONDS - t0)) s (data kept in $ES_STATE)"; fi ;;
    status) status ;;
    roles) roles ;;
    supervise) supervise; exit 0 ;; # never read on: the file may have changed meanwhile
    endpoints) endpoints ;;
    role-start) role_locked "$2" role_start_cmd "$2" ;;
    role-wait) role_wait "$2" "${3:-60}" ;;
    role-stop) role_locked "$2" role_stop_cmd "$2" TERM ;;
    role-kill) role_locked "$2" role_stop_cmd "$2" KILL ;;
    role-hold) role_locked "$2" touch "$ES_STATE/run/$2.held" ;;
    *) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" >&2; exit 2 ;; # the header above, whole
esac
