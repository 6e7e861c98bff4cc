#!/usr/bin/env bash
# Demo of amonitor_cluster: one redis-server, three nginx instances of two
# workers each (one agent between them), two example SDKs configured on
# instance 1 only (instances 2 and 3 learn them from Redis), and a panel
# on every instance.  It shows that each SDK has one agent connection in
# the whole cluster, which worker of which instance holds it, and that an action
# through any instance is acked.  Ctrl-C stops what it started, and
# nothing else: nginx and the SDKs run in sessions of their own (setsid),
# out of reach of the terminal's SIGINT, and the script stops the
# instances gracefully (nginx -s quit) before the SDKs.  It refuses to
# start, before it changes anything, when a port is in use or a cluster
# demo of the same directory still runs.  Everything lives under
# build/demo-cluster/.  redis-server: make demo-cluster installs it
# (scripts/deps.sh --cluster).
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

# wait up to $2 tenths of a second for the pids after it to exit
wait_gone() {
    local n=$1 i=0 pid alive
    shift
    while [ "$i" -lt "$n" ]; do
        alive=
        for pid in "$@"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        [ -z "$alive" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM HUP

    # the instances first, gracefully (panels get 1012, the SDK
    # connections 1001), then the SDKs and the panels
    if [ "${#NGINX_PIDS[@]}" -gt 0 ]; then
        say "stopping ${#NGINX_PIDS[@]} nginx instance(s) (nginx -s quit)"
        for pid in "${NGINX_PIDS[@]}"; do
            kill -QUIT "$pid" 2>/dev/null || true
        done
        wait_gone 50 "${NGINX_PIDS[@]}" || true
    fi
    for pid in ${PIDS[@]+"${PIDS[@]}"}; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    wait_gone 20 ${PIDS[@]+"${PIDS[@]}"} || true
    for pid in ${NGINX_PIDS[@]+"${NGINX_PIDS[@]}"} ${PIDS[@]+"${PIDS[@]}"}; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [ -n "$REDIS_STARTED" ]; then
        redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    fi
    wait 2>/dev/null || true
    if [ -n "$REDIS_STARTED" ]; then
        say "logs are in $PREFIX"
    fi
    exit "$rc"
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 129' HUP
trap 'exit 143' TERM

# start "$@" in the background in a session of its own (setsid execs it
# in place: $! is its pid), without the demo's lock (fd 9)
run_detached() {
    setsid "$@" 9>&- &
}

# true when the pid in file $1 runs and its command line has $2
pidfile_alive() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    case "$pid" in *[!0-9]* | '') return 1 ;; esac
    kill -0 "$pid" 2>/dev/null && grep -q "$2" "/proc/$pid/cmdline" 2>/dev/null
}

port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# established connections to an SDK's port, as the SDK sees them
sdk_connections() {
    ss -tnH state established "( sport = :$1 )" | wc -l
}

# --- refuse before anything is changed ------------------------------------

# one cluster demo per directory: the lock is held as long as this runs
mkdir -p "$PREFIX"
exec 9>"$PREFIX/demo.lock"
if ! flock -n 9; then
    say "a cluster demo of $PREFIX is running (it holds" \
        "$PREFIX/demo.lock): stop it (Ctrl-C), or set DEMO_PREFIX;" \
        "nothing was changed"
    exit 1
fi
# ... and what a cluster demo that was killed left running
for f in "$PREFIX"/instance-*/logs/nginx.pid "$PREFIX/redis.pid"; do
    case "$f" in *redis.pid) what=redis-server ;; *) what=nginx ;; esac
    if pidfile_alive "$f" "$what"; then
        say "$what of an earlier cluster demo still runs (pid $(cat "$f")," \
            "$f): stop it, or set DEMO_PREFIX; nothing was changed"
        exit 1
    fi
done

for port in "$REDIS_PORT" "$AGENT_PORT" $((AGENT_PORT + 1)) \
    $((AGENT_PORT + 2)) "$SDK_PORT" $((SDK_PORT + 1)); do
    if port_busy "$port"; then
        say "port $port is in use (set REDIS_PORT, AGENT_PORT or" \
            "SDK_START_PORT); nothing was changed"
        exit 1
    fi
done

if [ ! -x "$REDIS" ] || ! command -v redis-cli >/dev/null 2>&1; then
    say "missing $REDIS or redis-cli: the cluster demo needs Debian's" \
        "redis-server; make demo-cluster installs it (scripts/deps.sh" \
        "--cluster), or set REDIS"
    exit 1
fi
if [ ! -x "$NGINX" ]; then
    say "missing $NGINX (make deps), or set NGINX"
    exit 1
fi

if [ "${NO_BUILD:-}" != 1 ]; then
    say "building (make module tools build-sdk)"
    make -s -C "$ROOT" module tools build-sdk >&2 9>&-
fi

for f in "$MODULE" "$CLI" "$SDK"; do
    [ -e "$f" ] || { say "missing $f (make module tools build-sdk)"; exit 1; }
done

# the previous run's files (not the lock this run holds)
find "$PREFIX" -mindepth 1 -maxdepth 1 ! -name demo.lock -exec rm -rf {} +
mkdir -p "$PREFIX/logs"

# --- redis -------------------------------------------------------------

REDIS_STARTED=1
"$REDIS" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
    --appendonly no --daemonize yes --dir "$PREFIX" \
    --logfile "$PREFIX/logs/redis.log" --pidfile "$PREFIX/redis.pid" 9>&-
say "redis-server on 127.0.0.1:$REDIS_PORT"

# --- the SDKs (configured on instance 1 only) ----------------------------

run_detached "$SDK" --port "$SDK_PORT" --target-id cluster-a --interval 2 \
    --event-interval 5 >"$PREFIX/logs/sdk-cluster-a.log" 2>&1
PIDS+=($!)
run_detached "$SDK" --port $((SDK_PORT + 1)) --target-id cluster-b \
    --interval 2 >"$PREFIX/logs/sdk-cluster-b.log" 2>&1
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
    run_detached "$NGINX" -p "$dir/" -c nginx.conf -e logs/error.log
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
        >"$PREFIX/logs/panel-instance-$i.log" 2>&1 9>&- &
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
