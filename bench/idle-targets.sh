#!/usr/bin/env bash
# An idle worker with many configured targets: what it costs while
# nothing happens.  One worker, N targets (default 5000) at a port nobody
# listens on, amonitor_reconnect 1h (so after the first refused dial no
# target is tried again), no panel; after SETTLE seconds the worker's CPU
# time is read from /proc/PID/stat (utime + stime, clock ticks) and, when
# perf can attach, counted by perf stat (task-clock, user instructions)
# over SECONDS seconds.  What is left is the worker's timers: the
# registry reconcile (once a second) and nginx's own.
#
# Usage: bench/idle-targets.sh [N] [SECONDS]
# Knobs: SETTLE (5), NGINX (/usr/sbin/nginx), MODULE (this tree's
# build/nginx/ngx_http_amonitor_module.so), KEEP=1 keeps the prefix.
set -u

cd "$(dirname "$0")/.." || exit 2
. bench/lib.sh

n=${1:-5000}
secs=${2:-30}
settle=${SETTLE:-5}
nginx=${NGINX:-/usr/sbin/nginx}
module=${MODULE:-$PWD/build/nginx/ngx_http_amonitor_module.so}

case "$n$secs" in
    *[!0-9]*) echo "usage: $0 [N] [SECONDS]" >&2; exit 2 ;;
esac
bench_need_module "$module"

prefix=$(mktemp -d /tmp/amon-idle.XXXXXX)
port=$(bench_free_port)
dead=$(bench_free_port)
mkdir -p "$prefix/logs"

{
    echo "load_module $module;"
    echo "worker_processes 1;"
    echo "pid $prefix/nginx.pid;"
    echo "error_log $prefix/logs/error.log crit;"
    echo "events { worker_connections 1024; }"
    echo "http {"
    echo "    access_log off;"
    echo "    amonitor_zone amon 8m;"
    echo "    amonitor_reconnect 1h 1h;"
    i=1
    while [ "$i" -le "$n" ]; do
        echo "    amonitor_target t$i ws://127.0.0.1:$dead/t$i;"
        i=$((i + 1))
    done
    bench_panel_server "$port"
    echo "}"
} > "$prefix/nginx.conf"

"$nginx" -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log" \
    || exit 1

cleanup() {
    "$nginx" -p "$prefix" -c "$prefix/nginx.conf" \
        -e "$prefix/logs/error.log" -s stop 2>/dev/null
    sleep 0.5
    [ "${KEEP:-0}" = 1 ] || rm -rf "$prefix"
}
trap cleanup EXIT

sleep "$settle"
worker=$(bench_worker "$prefix/nginx.pid") || exit 1

echo "idle worker, $n targets, ${secs} s, module $module"
bench_idle_cpu "$worker" "$secs" "$prefix/perf.txt"
