#!/usr/bin/env bash
# Cluster benchmark (amonitor_cluster): one redis-server, three nginx
# instances with the module (WORKERS workers each), one example SDK
# (build/sdk/amonitor-sdk-example) that sends a heartbeat every second and
# EVENT_RATE events per second.  Measured with the CLI (`amonitor bench`):
#
#   - actions through the instance holding the SDK's connection (local)
#     and through another one (cross-instance): acks/s, p50/p99 round trip;
#   - events per second a panel receives on the owner and on another
#     instance (through Redis pub/sub);
#   - agent connections the SDK sees, with and without amonitor_cluster.
#
#   BENCH_SECONDS (5), BENCH_RATE actions/s (5000), EVENT_RATE (1000),
#   WORKERS (1; 2 for the connection count), NGINX, REDIS
set -eu

cd "$(dirname "$0")/../.."
ROOT=$(pwd)

NGINX=${NGINX:-/usr/sbin/nginx}
REDIS=${REDIS:-/usr/bin/redis-server}
MODULE=${MODULE:-$ROOT/build/ngx_http_amonitor_module.so}
CLI=$ROOT/build/amonitor
SDK=$ROOT/build/sdk/amonitor-sdk-example
SECS=${BENCH_SECONDS:-5}
RATE=${BENCH_RATE:-5000}
EVENT_RATE=${EVENT_RATE:-1000}
WORKERS=${WORKERS:-1}

for f in "$MODULE" "$CLI" "$SDK" "$NGINX" "$REDIS"; do
    [ -e "$f" ] || {
        echo "run.sh: missing $f (make module tools build-sdk)" >&2
        exit 2
    }
done

PREFIX=$(mktemp -d /tmp/amon-cbench-XXXXXX)
chmod 755 "$PREFIX"
PIDS=()

port() {
    local p
    while :; do
        p=$((30000 + RANDOM % 20000))
        if ! ss -Htln "sport = :$p" | grep -q .; then
            echo "$p"
            return
        fi
    done
}

REDIS_PORT=$(port)
SDK_PORT=$(port)
PORTS=($(port) $(port) $(port))

stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -QUIT "$pid" 2>/dev/null || true
    done
    sleep 1
    for pid in "${PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    PIDS=()
}

cleanup() {
    stop_all
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$PREFIX"
}
trap cleanup EXIT

"$REDIS" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --dir "$PREFIX" --logfile "$PREFIX/redis.log"
sleep 0.5

# start instance $1 (0..2), cluster on (1) or off (0), $3 workers
start_instance() {
    local i=$1 cluster=$2 workers=$3 dir=$PREFIX/i$1 lines=""
    mkdir -p "$dir"
    if [ "$cluster" = 1 ]; then
        lines="amonitor_redis 127.0.0.1:$REDIS_PORT prefix=bench:;
    amonitor_cluster on;
    amonitor_instance_id i$i;"
    fi
    cat > "$dir/nginx.conf" <<EOF
load_module $MODULE;
worker_processes $workers;
worker_rlimit_nofile 65536;
error_log $dir/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 16384; }
http {
    access_log off;
    amonitor_zone amon 16m;
    $lines
    amonitor_target bench-0 ws://127.0.0.1:$SDK_PORT/;
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_reconnect 50ms 200ms;
    amonitor_ack_timeout 10s;
    server {
        listen 127.0.0.1:${PORTS[$i]};
        location = /ws/panel { amonitor_panel on; }
    }
}
EOF
    "$NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log"
    sleep 0.3
    PIDS+=("$(cat "$dir/nginx.pid")")
}

sdk_connections() {
    ss -tnH state established "( sport = :$SDK_PORT )" | wc -l
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo \
    | sed 's/.*: //'), $("$NGINX" -v 2>&1 | sed 's/.*: //'),\
 redis $("$REDIS" --version | cut -d' ' -f3 | sed 's/v=//')"
echo "per case: $SECS s; actions at $RATE/s; SDK events at $EVENT_RATE/s"

"$SDK" --port "$SDK_PORT" --target-id bench-0 --interval 1 \
    --event-interval "$(echo "scale=6; 1 / $EVENT_RATE" | bc)" --quiet \
    > "$PREFIX/sdk.log" 2>&1 &
SDK_PID=$!
trap 'kill $SDK_PID 2>/dev/null || true; cleanup' EXIT
sleep 0.3

# --- connections the SDK sees ----------------------------------------------

for i in 0 1 2; do start_instance "$i" 0 2; done
sleep 2
echo "SDK agent connections, 3 instances x 2 workers, no cluster:" \
    "$(sdk_connections)"
stop_all
for i in 0 1 2; do start_instance "$i" 1 2; done
sleep 3
echo "SDK agent connections, 3 instances x 2 workers, amonitor_cluster on:" \
    "$(sdk_connections)"
stop_all
redis-cli -p "$REDIS_PORT" flushall >/dev/null
sleep 2.5

# --- actions and events ----------------------------------------------------

for i in 0 1 2; do start_instance "$i" 1 "$WORKERS"; done
sleep 3
owner=$(redis-cli -p "$REDIS_PORT" GET bench:lease:bench-0 \
    | sed 's/^i\([0-9]\):.*/\1/')
other=$(( (owner + 1) % 3 ))
echo "owner: instance $owner; another: instance $other"

bench() {
    local label=$1 url=$2 rate=$3 out
    out=$("$CLI" bench --url "$url" --target-id bench-0 --rate "$rate" \
        --duration "$SECS" --json | grep bench_summary) || true
    echo "$label: $out"
}

local_url=ws://127.0.0.1:${PORTS[$owner]}/ws/panel
cross_url=ws://127.0.0.1:${PORTS[$other]}/ws/panel
for r in "$RATE" 200; do
    bench "cluster local actions $r/s" "$local_url" "$r"
    bench "cluster cross-instance actions $r/s" "$cross_url" "$r"
done
bench "cluster events on the owner (1 action/s)" "$local_url" 1
bench "cluster events on another instance (1 action/s)" "$cross_url" 1
stop_all

start_instance 0 0 "$WORKERS"
sleep 1
for r in "$RATE" 200; do
    bench "no cluster, one instance, actions $r/s" \
        "ws://127.0.0.1:${PORTS[0]}/ws/panel" "$r"
done
bench "no cluster, events" "ws://127.0.0.1:${PORTS[0]}/ws/panel" 1
stop_all
