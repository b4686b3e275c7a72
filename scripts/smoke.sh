#!/usr/bin/env bash
# Smoke test of the order flow against a deployed eventshop API, over its public HTTP API only
# (api/openapi.yaml). The deploy job runs it after the rollout (.github/workflows/ci.yml) and
# rolls the roles back when it fails.
#
#   SMOKE_ADMIN_EMAIL=... SMOKE_ADMIN_PASSWORD=... scripts/smoke.sh https://api.example.com
#
#   1. the admin logs in                                  POST /v1/auth/token
#   2. a vendor registers, the admin approves it, the vendor logs in
#                                                         POST /v1/users, GET /v1/users/{id},
#                                                         POST /v1/vendors/{id}/approval
#   3. the vendor lists a product, prices it and receives stock
#                                                         POST /v1/products, PUT /v1/prices/{sku},
#                                                         POST /v1/inventory/{sku}/receipts
#   4. a customer registers, logs in and orders one unit  POST /v1/orders
#   5. within SMOKE_TIMEOUT seconds the order is confirmed (or already shipped or delivered) and
#      its payment captured                               GET /v1/orders/{id}
# Then, passed or failed, it tidies up (warnings only): cancels the order while that is still
# allowed (the saga releases the stock and refunds; 409 once its dispatch is approved: give prod
# a cancellation window, EVENTSHOP_ORDER_DISPATCH_HOLD_MS, or void that shipment by hand),
# delists the product and forgets both users (crypto-shredding: no mail reaches a forgotten user).
#
# Exit 0: the order was confirmed and paid. 1: a step failed, named on stderr as
# "smoke: FAIL <step>: <why>" with the HTTP status and the API's problem (type, title, detail).
# 2: usage. Commands go with `Prefer: wait=20` and an Idempotency-Key, so the retries of a lost
# answer or a 502/503/504 are the same command; a 202 is followed to its outcome.
#
# Tokens and passwords reach neither the output nor a command line (ps): curl reads the
# Authorization header and the bodies from files in a private (umask 077) directory, jq takes
# the passwords from its environment, and no token-bearing answer is ever shown.
# Needs bash, curl and jq. Settings: SMOKE_TIMEOUT (seconds, 180), SMOKE_POLL (seconds between
# two reads of a command or the order, 2), SMOKE_EMAIL_DOMAIN (of the smoke users' addresses,
# example.com), SMOKE_CURRENCY (EUR).
set -uo pipefail

usage() {
    echo "usage: SMOKE_ADMIN_EMAIL=... SMOKE_ADMIN_PASSWORD=... $0 <API base URL>" >&2
    exit 2
}
[ $# -eq 1 ] && [ -n "$1" ] || usage
[ -n "${SMOKE_ADMIN_EMAIL:-}" ] && [ -n "${SMOKE_ADMIN_PASSWORD:-}" ] || {
    echo "smoke: SMOKE_ADMIN_EMAIL and SMOKE_ADMIN_PASSWORD must be set" >&2
    usage
}
for tool in curl jq; do
    command -v "$tool" >/dev/null || { echo "smoke: $tool is needed" >&2; exit 2; }
done
base=${1%/}
timeout=${SMOKE_TIMEOUT:-180}
poll=${SMOKE_POLL:-2}
domain=${SMOKE_EMAIL_DOMAIN:-example.com}
currency=${SMOKE_CURRENCY:-EUR}
case $timeout in '' | *[!0-9]*) echo "smoke: SMOKE_TIMEOUT must be a number of seconds" >&2; exit 2 ;; esac
case $poll in '' | *[!0-9.]*) echo "smoke: SMOKE_POLL must be a number of seconds" >&2; exit 2 ;; esac

umask 077
dir=$(mktemp -d) || exit 1
run=$(date -u +%Y%m%d%H%M%S)-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
status=000
step=start
# what the tidy-up undoes, as it gets made
vendor_id='' customer_id='' sku='' order_id='' user_id='' created='' seen=''

say() { echo "smoke: $*"; }
# shellcheck disable=SC2329 # warn and tidy run from the EXIT trap
warn() { echo "smoke: WARNING $*" >&2; }
fail() { # why: names the failed step, then exit 1 (the EXIT trap tidies up)
    echo "smoke: FAIL $step: $*" >&2
    exit 1
}
secret() { head -c 24 /dev/urandom | base64 | tr -d '\n/+='; }
newkey() { echo "smoke-$run-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"; }

# the last answer's problem, for a message: never the body itself (a login's holds a token)
problem() {
    jq -r '[.type, .title, .detail, (if .field then "field " + .field else empty end)]
           | map(select(. != null and . != "")) | join(": ")' "$dir/body" 2>/dev/null |
        head -c 400
}
answer() {
    local p
    p=$(problem)
    echo "HTTP $status${p:+ $p}"
}
field() { jq -r "$1 // empty" "$dir/body" 2>/dev/null; }
header() { # the value of a header of the last answer
    tr -d '\r' <"$dir/headers" | awk -v h="$1" \
        'index(tolower($0), tolower(h) ": ") == 1 { sub(/^[^:]*: */, ""); v = $0 } END { print v }'
}
accepted() { [ "$status" = 200 ] || [ "$status" = 201 ]; }

# http WHO METHOD PATH [BODY-FILE [curl args...]]: one request; WHO is admin, vendor, customer
# or - (no token). Sets $status (000: no answer), the body in $dir/body, headers in $dir/headers.
http() {
    local who=$1 method=$2 path=$3 body=${4:-}
    shift 3
    [ $# -eq 0 ] || shift
    local args=(-sS --max-time 40 -X "$method" -o "$dir/body" -D "$dir/headers" -w '%{http_code}'
        -H 'Accept: application/json')
    [ "$who" = - ] || args+=(-H "@$dir/auth-$who")
    [ -z "$body" ] || args+=(-H 'Content-Type: application/json' --data-binary "@$body")
    : >"$dir/body"
    : >"$dir/headers"
    status=$(curl "${args[@]}" "$@" "$base$path" 2>"$dir/curl.err") || status=000
    if [ "$status" = 000 ]; then
        head -c 300 "$dir/curl.err" | jq -Rs '{title: "no answer", detail: .}' >"$dir/body"
    fi
}

# http_retry ...: http, again on no answer or 502/503/504 (the ingress, a pod not ready yet, a
# read model not at X-Min-Position yet), 6 tries over about 30 s
http_retry() {
    local i
    for i in 1 2 3 4 5 6; do
        http "$@"
        case $status in
        000 | 502 | 503 | 504) [ "$i" -eq 6 ] || sleep 5 ;;
        *) return 0 ;;
        esac
    done
}

# command WHO METHOD PATH [BODY-FILE [REASON...]]: a command; on return $status and $dir/body
# are its outcome (200/201 accepted, or the rejection; $created: what a 202 said it creates). A rejection whose problem type ends in
# a REASON (another context's view of the catalog not there yet) is sent again, as a new
# command, for up to 60 s.
command_() {
    local who=$1 method=$2 path=$3 body=${4:-} loc reason type t0=$SECONDS
    created=''
    shift 3
    [ $# -eq 0 ] || shift
    while :; do
        http_retry "$who" "$method" "$path" "$body" -H 'Prefer: wait=20' -H "Idempotency-Key: $(newkey)"
        if [ "$status" = 202 ]; then # not decided within 20 s: follow the command
            created=$(field '.order_id // .user_id // .sku')
            loc=$(header Location)
            case $loc in http://* | https://*) loc=/${loc#*://*/} ;; esac
            [ -n "$loc" ] || return 0
            while [ $((SECONDS - t0)) -lt 120 ]; do
                sleep "$poll"
                # its sender or an admin reads it; the sender of a registration has no token
                if [ "$who" = - ]; then http admin GET "$loc"; else http "$who" GET "$loc"; fi
                case $status in 202 | 404 | 000 | 502 | 503 | 504) ;; *) break ;; esac
            done
        fi
        accepted && return 0
        type=$(field .type)
        for reason in "$@"; do
            if [ "${type##*:}" = "$reason" ] && [ $((SECONDS - t0)) -lt 60 ]; then
                say "$step: $reason, again in 3 s"
                sleep 3
                continue 2
            fi
        done
        return 0
    done
}

# login WHO EMAIL PASSWORD: writes WHO's Authorization header file from a token
login() {
    local who=$1
    SMOKE_E=$2 SMOKE_P=$3 jq -n '{email: env.SMOKE_E, password: env.SMOKE_P}' >"$dir/req"
    http_retry - POST /v1/auth/token "$dir/req"
    rm -f "$dir/req"
    [ "$status" = 200 ] || fail "$(answer)"
    jq -r '"Authorization: Bearer " + (.access_token // "")' "$dir/body" >"$dir/auth-$who"
    : >"$dir/body"
    [ "$(wc -c <"$dir/auth-$who")" -gt 30 ] || fail "no access_token in the answer"
}

# user_at ID [POSITION]: the user as the admin reads it, once the read model has POSITION
# (the user in $dir/body)
user_at() {
    http_retry admin GET "/v1/users/$1" "" ${2:+-H "X-Min-Position: $2"}
    [ "$status" = 200 ] || fail "user $1 at position ${2:-?}: $(answer)"
}

# register ROLE EMAIL PASSWORD: sets $user_id to the new user, once the users read model has it
register() {
    SMOKE_E=$2 SMOKE_P=$3 SMOKE_ROLE=$1 SMOKE_NAME="eventshop smoke $1 $run" jq -n \
        '{email: env.SMOKE_E, password: env.SMOKE_P, name: env.SMOKE_NAME, role: env.SMOKE_ROLE}' \
        >"$dir/req"
    command_ - POST /v1/users "$dir/req"
    rm -f "$dir/req"
    accepted || fail "$(answer)"
    user_id=$(field '.user_id // .aggregate_id')
    [ -n "$user_id" ] || fail "no user_id in the outcome"
    local pos
    pos=$(field .position)
    user_at "$user_id" "$pos"
}

# shellcheck disable=SC2329
tidy() {
    local rc=$? id forgotten=" "
    trap - EXIT
    # best effort and short: the API may be why the smoke failed
    if [ -n "$order_id" ] && [ -s "$dir/auth-customer" ] && [[ $seen != cancelled* ]]; then
        http customer POST "/v1/orders/$order_id/cancel" "" --max-time 15 -H 'Prefer: wait=10' \
            -H "Idempotency-Key: $(newkey)"
        case $status in
        200 | 201 | 202) say "tidy: order $order_id cancelled (the saga releases its stock and refunds it)" ;;
        409) warn "tidy: order $order_id not cancelled: $(answer) (its dispatch was approved: void the shipment by hand)" ;;
        *) warn "tidy: cancel of order $order_id: $(answer)" ;;
        esac
    fi
    if [ -n "$sku" ] && [ -s "$dir/auth-vendor" ]; then
        http vendor DELETE "/v1/products/$sku" "" --max-time 15 -H 'Prefer: wait=10' \
            -H "Idempotency-Key: $(newkey)"
        case $status in 200 | 201 | 202) ;; *) warn "tidy: delisting $sku: $(answer)" ;; esac
    fi
    # user_id: also a user registered by a step that failed after the registration
    for id in "$customer_id" "$vendor_id" "$user_id"; do
        [ -n "$id" ] && [ -s "$dir/auth-admin" ] && [[ $forgotten != *" $id "* ]] || continue
        forgotten+="$id "
        http admin DELETE "/v1/users/$id" "" --max-time 15 -H 'Prefer: wait=10' \
            -H "Idempotency-Key: $(newkey)"
        case $status in 200 | 201 | 202) ;; *) warn "tidy: forgetting user $id: $(answer)" ;; esac
    done
    rm -rf "$dir"
    [ "$rc" -ne 0 ] || say "PASS the order flow on $base"
    exit "$rc"
}
trap tidy EXIT
trap 'exit 1' INT TERM

say "run $run against $base"

step="admin login"
login admin "$SMOKE_ADMIN_EMAIL" "$SMOKE_ADMIN_PASSWORD"

step="vendor registration"
vendor_email="smoke-$run-vendor@$domain" vendor_password=$(secret)
register vendor "$vendor_email" "$vendor_password"
vendor_id=$user_id
step="vendor approval"
command_ admin POST "/v1/vendors/$vendor_id/approval"
accepted || fail "$(answer)"
pos=$(field .position)
for i in $(seq 1 15); do
    user_at "$vendor_id" "$pos"
    [ "$(field .status)" = active ] && break
    [ "$i" -lt 15 ] || fail "vendor $vendor_id is $(field .status), not active, 30 s after its approval"
    sleep 2
done
step="vendor login"
login vendor "$vendor_email" "$vendor_password"
say "vendor $vendor_id approved and logged in"

step="product listing"
jq -n --arg sku "SMOKE-$run" --arg c "$currency" \
    '{sku: $sku, name: "eventshop smoke test", category: "smoke-test", currency: $c}' >"$dir/req"
command_ vendor POST /v1/products "$dir/req"
accepted || fail "$(answer)"
sku="SMOKE-$run"
step="list price"
jq -n --arg c "$currency" '{amount_minor: 100, currency: $c}' >"$dir/req"
command_ vendor PUT "/v1/prices/$sku" "$dir/req" unknown_sku
accepted || fail "$(answer)"
step="stock receipt"
jq -n '{quantity: 1}' >"$dir/req"
command_ vendor POST "/v1/inventory/$sku/receipts" "$dir/req" unknown_sku
accepted || fail "$(answer)"
say "product $sku listed, priced and in stock"

step="customer registration"
customer_email="smoke-$run-customer@$domain" customer_password=$(secret)
register customer "$customer_email" "$customer_password"
customer_id=$user_id
step="customer login"
login customer "$customer_email" "$customer_password"
say "customer $customer_id registered and logged in"

step="order"
jq -n --arg sku "$sku" --arg run "$run" \
    '{lines: [{sku: $sku, quantity: 1}],
      shipping_address: {name: "eventshop smoke test: do not ship", line1: $run,
                         city: "Nowhere", postal_code: "00000", country: "GB"}}' >"$dir/req"
command_ customer POST /v1/orders "$dir/req" unknown_sku no_price
accepted || { order_id=$created; fail "$(answer)"; } # a pending order is cancelled all the same
order_id=$(field '.order_id // .aggregate_id')
pos=$(field .position)
[ -n "$order_id" ] || fail "no order_id in the outcome"
say "order $order_id placed"

step="order $order_id confirmed and paid within $timeout s"
t0=$SECONDS
while :; do
    http customer GET "/v1/orders/$order_id" "" ${pos:+-H "X-Min-Position: $pos"}
    case $status in
    200)
        now=$(jq -r '"\(.status) \(.payment_status // "none")"' "$dir/body")
        [ "$now" = "$seen" ] || say "order $order_id: ${now% *}, payment ${now#* }"
        seen=$now
        case $now in
        "confirmed captured" | "shipped captured" | "delivered captured") break ;;
        cancelled*) fail "the order was cancelled: $(field .cancel_reason)" ;;
        *" declined" | *" refund"*) fail "payment ${now#* }" ;;
        esac
        ;;
    404 | 504 | 000 | 502 | 503) ;; # not in the read model yet, or a blip
    *) fail "$(answer)" ;;
    esac
    [ $((SECONDS - t0)) -lt "$timeout" ] || fail "last seen: ${seen:-no order ($(answer))}"
    sleep "$poll"
done
exit 0
