#!/usr/bin/env bash
# What a heartbeat costs the worker on its way to a panel that received a
# snapshot of many targets.  One worker, N configured targets (default
# 5000): N - 1 at a port nobody listens on, the last one ("bench-0") the
# fake SDK of bench/agent/amon-load, which sends RATE heartbeats a second
# (default 20000) for SECONDS seconds (default 10) to one panel; the
# panel connects with the snapshot on, so it first gets a target_status
# of every target.  Printed: heartbeats delivered and the worker's CPU
# time while they flowed (perf stat task-clock, else /proc ticks), per
# heartbeat.
#
# Usage: bench/snapshot-delivery.sh [N] [RATE] [SECONDS]
# Knobs: NGINX (/usr/sbin/nginx), MODULE (this tree's module), KEEP=1.
set -u

cd "$(dirname "$0")/.." || exit 2
. bench/lib.sh

n=${1:-5000}
rate=${2:-20000}
secs=${3:-10}
nginx=${NGINX:-/usr/sbin/nginx}
module=${MODULE:-$PWD/build/nginx/ngx_http_amonitor_module.so}
load=$PWD/build/bench/amon-load

case "$n$rate$secs" in
    *[!0-9]*) echo "usage: $0 [N] [RATE] [SECONDS]" >&2; exit 2 ;;
esac
if [ ! -f build/libamon_core.a ] || [ ! -f build/libamon_posix.a ] \
    || [ ! -f "$module" ] || [ ! -x build/amonitor ]; then
    echo "bench: build the core, the module and the CLI first:" \
        "make core module tools" >&2
    exit 2
fi

bench_build_load || exit 2

prefix=$(mktemp -d /tmp/amon-delivery.XXXXXX)
port=$(bench_free_port)
sdk=$(bench_free_port)
dead=$(bench_free_port)
mkdir -p "$prefix/logs"

{
    echo "load_module $module;"
    echo "worker_processes 1;"
    echo "pid $prefix/nginx.pid;"
    echo "error_log $prefix/logs/error.log crit;"
    echo "events { worker_connections 4096; }"
    echo "http {"
    echo "    access_log off;"
    echo "    amonitor_zone amon 16m;"
    echo "    amonitor_reconnect 1h 1h;"
    i=1
    while [ "$i" -lt "$n" ]; do
        echo "    amonitor_target t$i ws://127.0.0.1:$dead/t$i;"
        i=$((i + 1))
    done
    echo "    amonitor_target bench-0 ws://127.0.0.1:$sdk/;"
    bench_panel_server "$port"
    echo "}"
} > "$prefix/nginx.conf"

stop_nginx() {
    "$nginx" -p "$prefix" -c "$prefix/nginx.conf" \
        -e "$prefix/logs/error.log" -s stop 2>/dev/null
    sleep 0.5
}

cleanup() {
    stop_nginx
    [ "${KEEP:-0}" = 1 ] || rm -rf "$prefix"
}
trap cleanup EXIT

# nginx first: every target is refused and waits out an hour of backoff;
# then the load generator (its fake SDK listens, its panel connects and
# gets the snapshot), and an action for bench-0 (the CLI) makes the
# worker dial it at once.  The worker's CPU is counted over SECONDS once
# the heartbeats flow.
run() {
    local r=$1 lpid master worker
    "$nginx" -p "$prefix" -c "$prefix/nginx.conf" \
        -e "$prefix/logs/error.log" || exit 1
    sleep 2
    "$load" --quiet --duration $((secs + 6)) --warmup 1 --sdk-port "$sdk" \
        --sdk-conns 1 --panel-url "ws://127.0.0.1:$port/ws/panel" \
        --mode fanout --panels 1 --rate "$r" > "$prefix/load.txt" 2>&1 &
    lpid=$!
    sleep 0.5
    build/amonitor send --url "ws://127.0.0.1:$port/ws/panel" \
        --target-id bench-0 --timeout 5 > /dev/null
    sleep 3
    master=$(cat "$prefix/nginx.pid")
    worker=$(pgrep -P "$master" | head -n 1)
    perf stat -x, -e task-clock -p "$worker" -o "$prefix/perf.txt" -- \
        sleep "$secs"
    ms=$(awk -F, '/task-clock/ { printf "%.1f", $1 }' "$prefix/perf.txt")
    wait "$lpid"
    out=$(cat "$prefix/load.txt")
    stop_nginx
}

run 1
base_ms=$ms
run "$rate"
per_s=$(echo "$out" | sed -n 's/.*delivered_per_s=\([0-9]*\).*/\1/p')
echo "$n targets, 1 panel after the snapshot, $rate heartbeats/s," \
    "worker CPU over $secs s; module $module"
echo "load: $out"
echo "worker CPU: $ms ms with heartbeats, $base_ms ms at 1/s"
if [ -n "$per_s" ] && [ "$per_s" -gt 0 ]; then
    awk -v a="$ms" -v b="$base_ms" -v r="$per_s" -v s="$secs" 'BEGIN {
        printf "per heartbeat: %.2f us of worker CPU\n",
            (a - b) * 1000 / (r * s) }'
fi
