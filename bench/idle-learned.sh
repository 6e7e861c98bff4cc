#!/usr/bin/env bash
# An idle worker with many learned targets, all connected: what it costs
# while nothing happens.  One worker, one configured SDK
# (bench/idle-learned-sdk.py) that registers N others (default 10000),
# all served by that one process and silent once connected; pings off.
# After SETTLE seconds (the worker connected to every one) the worker's
# CPU time is read from /proc/PID/stat and, when perf can attach,
# counted by perf stat over SECONDS seconds.  What is left is the
# reconcile timer (once a second: a touch of each open learned target,
# the expiry, a look at the registry's change log) and nginx's own.
#
# Usage: bench/idle-learned.sh [N] [SECONDS]
# Knobs: SETTLE (20), LOG_LEVEL (crit), NGINX (/usr/sbin/nginx), MODULE (this tree's
# build/nginx/ngx_http_amonitor_module.so), KEEP=1 keeps the prefix.
# N above 64 needs amonitor_learned_limit (written then, unless
# LEARNED_LIMIT=0: a build from before the directive, with its fixed
# limit of 64 raised at compile time, for a comparison).
set -u

cd "$(dirname "$0")/.." || exit 2

n=${1:-10000}
secs=${2:-30}
settle=${SETTLE:-20}
nginx=${NGINX:-/usr/sbin/nginx}
module=${MODULE:-$PWD/build/nginx/ngx_http_amonitor_module.so}

case "$n$secs" in
    *[!0-9]*) echo "usage: $0 [N] [SECONDS]" >&2; exit 2 ;;
esac
if [ ! -f "$module" ]; then
    echo "bench: no module at $module (make module)" >&2
    exit 2
fi

prefix=$(mktemp -d /tmp/amon-learned.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sdk=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$prefix/logs"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

{
    echo "load_module $module;"
    echo "worker_processes 1;"
    echo "worker_rlimit_nofile $((2 * n + 1024));"
    echo "pid $prefix/nginx.pid;"
    echo "error_log $prefix/logs/error.log ${LOG_LEVEL:-crit};"
    echo "events { worker_connections $((n + 1024)); }"
    echo "http {"
    echo "    access_log off;"
    echo "    amonitor_zone amon 32m;"
    echo "    amonitor_ping 0;"
    echo "    amonitor_connect_timeout 60s;"
    echo "    amonitor_target hub ws://127.0.0.1:$sdk/hub;"
    echo "    amonitor_allow_url ws://127.0.0.1:$sdk/sdk/*;"
    [ "$n" -gt 64 ] && [ "${LEARNED_LIMIT:-1}" != 0 ] \
        && echo "    amonitor_learned_limit $n;"
    echo "    server {"
    echo "        listen 127.0.0.1:$port;"
    echo "        location = /ws/panel { amonitor_panel on; }"
    echo "    }"
    echo "}"
} > "$prefix/nginx.conf"

python3 bench/idle-learned-sdk.py "$sdk" "$n" 2> "$prefix/sdk.log" &
sdk_pid=$!
sleep 0.5

"$nginx" -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log" \
    || { kill "$sdk_pid"; exit 1; }

cleanup() {
    "$nginx" -p "$prefix" -c "$prefix/nginx.conf" \
        -e "$prefix/logs/error.log" -s stop 2>/dev/null
    sleep 0.5
    kill "$sdk_pid" 2>/dev/null
    [ "${KEEP:-0}" = 1 ] || rm -rf "$prefix"
}
trap cleanup EXIT

sleep "$settle"
master=$(cat "$prefix/nginx.pid")
worker=$(pgrep -P "$master" | head -n 1)
if [ -z "$worker" ]; then
    echo "bench: no worker" >&2
    exit 1
fi
kill -USR1 "$sdk_pid"
sleep 0.2
conns=$(tail -n 1 "$prefix/sdk.log")

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

t0=$(ticks "$worker")
if perf stat -x, -e task-clock,instructions:u -p "$worker" \
    -o "$prefix/perf.txt" -- sleep "$secs" 2>/dev/null
then
    perf=1
else
    perf=0
    sleep "$secs"
fi
t1=$(ticks "$worker")

echo "idle worker, $n learned targets ($conns open at the SDK side," \
    "the hub's included), ${secs} s, module $module"
echo "cpu ticks (utime+stime, $(getconf CLK_TCK)/s): $((t1 - t0))"
if [ "$perf" = 1 ]; then
    awk -F, '/task-clock/ { printf "task-clock: %.2f ms\n", $1 }
        /instructions/ { printf "instructions (user): %d\n", $1 }' \
        "$prefix/perf.txt"
fi
