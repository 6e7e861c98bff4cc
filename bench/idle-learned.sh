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
# HOLD=1 measures instead how long the zone's mutex is held while a
# worker reads the registry whole: SECONDS seconds around a reload (its
# new workers have never read it), with perf's probes on the module's
# ngx_http_amonitor_registry_changes and nginx's ngx_shmtx_lock (its
# return) and ngx_shmtx_unlock; prints each read longer than 100 us,
# its holds of the mutex and the longest.  Needs root and perf with
# uprobes.
#
# Usage: bench/idle-learned.sh [N] [SECONDS]
# Knobs: SETTLE (20), LOG_LEVEL (crit), NGINX (/usr/sbin/nginx), MODULE (this tree's
# build/nginx/ngx_http_amonitor_module.so), KEEP=1 keeps the prefix, WORKERS (1).
# N above 64 needs amonitor_learned_limit (written then, unless
# LEARNED_LIMIT=0: a build from before the directive, with its fixed
# limit of 64 raised at compile time, for a comparison).
set -u

cd "$(dirname "$0")/.." || exit 2
. bench/lib.sh

n=${1:-10000}
secs=${2:-30}
settle=${SETTLE:-20}
nginx=${NGINX:-/usr/sbin/nginx}
module=${MODULE:-$PWD/build/nginx/ngx_http_amonitor_module.so}

case "$n$secs" in
    *[!0-9]*) echo "usage: $0 [N] [SECONDS]" >&2; exit 2 ;;
esac
bench_need_module "$module"

prefix=$(mktemp -d /tmp/amon-learned.XXXXXX)
port=$(bench_free_port)
sdk=$(bench_free_port)
mkdir -p "$prefix/logs"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

{
    echo "load_module $module;"
    echo "worker_processes ${WORKERS:-1};"
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
    bench_panel_server "$port"
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
worker=$(bench_worker "$prefix/nginx.pid") || exit 1
kill -USR1 "$sdk_pid"
sleep 0.2
conns=$(tail -n 1 "$prefix/sdk.log")

if [ -n "${HOLD:-}" ]; then
    # probes at the module's registry reads and the zone's mutex
    perf probe -q -d 'amonhold:*' 2>/dev/null
    perf probe -q -x "$module" -a 'amonhold:read=ngx_http_amonitor_registry_changes' \
        && perf probe -q -x "$module" \
            -a 'amonhold:done=ngx_http_amonitor_registry_changes%return' \
        && perf probe -q -x "$nginx" -a 'amonhold:lock=ngx_shmtx_lock%return' \
        && perf probe -q -x "$nginx" -a 'amonhold:unlock=ngx_shmtx_unlock' \
        || exit 1
    echo "$n learned targets ($conns open at the SDK side), reads of the" \
        "registry over ${secs} s around a reload, module $module"
    perf record -q -a -o "$prefix/hold.data" -e 'amonhold:*' \
        -- sleep "$secs" 2> /dev/null &
    rec=$!
    sleep 1
    kill -HUP "$(cat "$prefix/nginx.pid")"
    wait "$rec"
    perf probe -q -d 'amonhold:*'
    # each read of more than 100 us: how long, how many holds of the
    # mutex (from a lock's return to the unlock), the longest
    perf script -i "$prefix/hold.data" -F pid,time,event 2> /dev/null \
        | awk '{ p = $1; t = $2 + 0 }
            /amonhold:read/ { in_[p] = t; n[p] = 0; max[p] = 0; sum[p] = 0
                next }
            /amonhold:lock/ && (p in in_) { t0[p] = t; next }
            /amonhold:unlock/ && (p in t0) { d = (t - t0[p]) * 1e6
                delete t0[p]; n[p]++; sum[p] += d; if (d > max[p]) max[p] = d
                next }
            /amonhold:done/ && (p in in_) { d = (t - in_[p]) * 1e6
                delete in_[p]
                if (d > 100) printf "pid %s: a read of %.0f us, %d holds" \
                    " of the mutex, %.0f us in all, the longest %.0f us\n",
                    p, d, n[p], sum[p], max[p] }'
    exit 0
fi

echo "idle worker, $n learned targets ($conns open at the SDK side," \
    "the hub's included), ${secs} s, module $module"
bench_idle_cpu "$worker" "$secs" "$prefix/perf.txt"
