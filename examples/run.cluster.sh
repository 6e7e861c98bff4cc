#!/usr/bin/env bash
# Demo of amonitor_cluster: one redis-server, three nginx instances of two
# workers each (one agent between them), two example SDKs configured on
# instance 1 only (instances 2 and 3 learn them from Redis), and a panel
# on every instance.  It shows that each SDK has one agent connection in
# the whole cluster, which worker of which instance holds it, and that an action
# through any instance is acked.  Ctrl-C stops what it started, and
# nothing else; everything lives under build/demo-cluster/.
#
# Environment: REDIS_PORT (6390), AGENT_PORT (8081: the instances listen
# on AGENT_PORT, +1, +2), SDK_START_PORT (8765: two SDKs), DEMO_DURATION
# (seconds; default: until Ctrl-C), NGINX (/usr/sbin/nginx), NO_BUILD=1.

set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=$ROOT/build
PREFIX=${DEMO_PREFIX:-$BUILD/demo-cluster}
NGINX=${NGINX:-/usr/sbin/nginx}
REDIS=${REDIS:-/usr/bin/redis-server}
MODULE=$BUILD/ngx_http_amonitor_module.so
CLI=$BUILD/amonitor
SDK=$BUILD/sdk/amonitor-sdk-example
REDIS_PORT=${REDIS_PORT:-6390}
AGENT_PORT=${AGENT_PORT:-8081}
SDK_PORT=${SDK_START_PORT:-8765}

PIDS=()
NGINX_PIDS=()
REDIS_STARTED=

say() {
    printf 'demo-cluster: %s\n' "$*" >&2
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM

    for pid in "${NGINX_PIDS[@]}"; do
        kill -QUIT "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    sleep 1
    for pid in "${NGINX_PIDS[@]}" "${PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [ -n "$REDIS_STARTED" ]; then
        redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    fi
    wait 2>/dev/null || true
    say "logs are in $PREFIX"
    exit "$rc"
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# established connections to an SDK's port, as the SDK sees them
sdk_connections() {
    ss -tnH state established "( sport = :$1 )" | wc -l
}

if [ "${NO_BUILD:-}" != 1 ]; then
    say "building (make module tools build-sdk)"
    make -s -C "$ROOT" module tools build-sdk >&2
fi

for f in "$MODULE" "$CLI" "$SDK" "$NGINX" "$REDIS"; do
    [ -e "$f" ] || { say "missing $f (make deps; make)"; exit 1; }
done

for port in "$REDIS_PORT" "$AGENT_PORT" $((AGENT_PORT + 1)) \
    $((AGENT_PORT + 2)) "$SDK_PORT" $((SDK_PORT + 1)); do
    if port_busy "$port"; then
        say "port $port is in use (set REDIS_PORT, AGENT_PORT or" \
            "SDK_START_PORT)"
        exit 1
    fi
done

rm -rf "$PREFIX"
mkdir -p "$PREFIX/logs"

# --- redis -------------------------------------------------------------

"$REDIS" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
    --appendonly no --daemonize yes --dir "$PREFIX" \
    --logfile "$PREFIX/logs/redis.log" --pidfile "$PREFIX/redis.pid"
REDIS_STARTED=1
say "redis-server on 127.0.0.1:$REDIS_PORT"

# --- the SDKs (configured on instance 1 only) ----------------------------

"$SDK" --port "$SDK_PORT" --target-id cluster-a --interval 2 \
    --event-interval 5 >"$PREFIX/logs/sdk-cluster-a.log" 2>&1 &
PIDS+=($!)
"$SDK" --port $((SDK_PORT + 1)) --target-id cluster-b --interval 2 \
    >"$PREFIX/logs/sdk-cluster-b.log" 2>&1 &
PIDS+=($!)

# --- three instances ---------------------------------------------------

for i in 1 2 3; do
    dir=$PREFIX/instance-$i
    mkdir -p "$dir/logs"
    port=$((AGENT_PORT + i - 1))
    targets=
    if [ "$i" = 1 ]; then
        targets="amonitor_target cluster-a ws://127.0.0.1:$SDK_PORT/;
    amonitor_target cluster-b ws://127.0.0.1:$((SDK_PORT + 1))/;"
    fi
    cat >"$dir/nginx.conf" <<EOF
load_module $MODULE;
worker_processes 2;
error_log logs/error.log info;
pid logs/nginx.pid;
daemon off;

events {
    worker_connections 1024;
}

http {
    access_log off;
    amonitor_zone amonitor 4m;
    amonitor_redis 127.0.0.1:$REDIS_PORT prefix=demo:;
    amonitor_cluster on;
    amonitor_instance_id instance-$i;
    $targets
    amonitor_allow_url ws://127.0.0.1:*;

    server {
        listen 127.0.0.1:$port;
        location = /ws/panel { amonitor_panel on; }
        location = /amonitor/status { amonitor_status; }
    }
}
EOF
    "$NGINX" -p "$dir/" -c nginx.conf -e logs/error.log &
    NGINX_PIDS+=($!)
    say "instance-$i: nginx on 127.0.0.1:$port (logs in $dir/logs)"
done

sleep 3

say "agent connections per SDK (the whole cluster):"
for p in "$SDK_PORT" $((SDK_PORT + 1)); do
    say "  SDK on :$p: $(sdk_connections "$p")"
done
say "who holds each target (instance:pid:random):"
for t in cluster-a cluster-b; do
    say "  $t: $(redis-cli -p "$REDIS_PORT" GET "demo:lease:$t")"
done

# --- a panel per instance ----------------------------------------------

for i in 1 2 3; do
    url=ws://127.0.0.1:$((AGENT_PORT + i - 1))/ws/panel
    for t in cluster-a cluster-b; do
        say "instance-$i: action to $t"
        "$CLI" send --url "$url" --target-id "$t" --timeout 5 >&2 || true
    done
done

for i in 1 2 3; do
    url=ws://127.0.0.1:$((AGENT_PORT + i - 1))/ws/panel
    "$CLI" watch --url "$url" --status-url none --json \
        >"$PREFIX/logs/panel-instance-$i.log" 2>&1 &
    PIDS+=($!)
done

say "panels on every instance write to $PREFIX/logs/panel-instance-N.log"
say "try: kill -9 the instance holding cluster-a (its pid is in" \
    "$PREFIX/instance-N/logs/nginx.pid); another takes over within 3 s"
say "Ctrl-C stops everything"

if [ -n "${DEMO_DURATION:-}" ]; then
    sleep "$DEMO_DURATION"
    for p in "$SDK_PORT" $((SDK_PORT + 1)); do
        say "SDK on :$p: $(sdk_connections "$p") agent connection(s)"
    done
else
    while :; do
        sleep 10
        say "agent connections: cluster-a $(sdk_connections "$SDK_PORT")," \
            "cluster-b $(sdk_connections $((SDK_PORT + 1)))"
    done
fi
