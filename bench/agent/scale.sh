#!/bin/bash
# Many SDKs and many subscribed panels on worker_processes 2: builds
# scale-load (bench/agent/scale-load.c, scale-io.c, scale-sdk.c,
# scale-panel.c) against the protocol core, lets it listen for the SDKs,
# writes an nginx.conf with one amonitor_target per SDK, starts nginx
# with the module from build/, and lets scale-load connect the panels,
# wait one interval and measure. Prints scale-load's report, the
# module's counters (amonitor_status) and what the error log says, then
# times nginx's stop with everything still connected.
#
#   bash bench/agent/scale.sh                         # 2,000 + 2,000
#   SDKS=10000 PANELS=10000 bash bench/agent/scale.sh
#
# Knobs (environment): SDKS, PANELS (default: SDKS), WORKERS (2),
# INTERVAL (10 s), DURATION (30 s), SNAPSHOT (amonitor_panel_snapshot:
# off), CONNECT_TIMEOUT (amonitor_connect_timeout, 5s), REUSEPORT=0 (the panel listen without reuseport),
# STOP=quit (graceful instead of fast shutdown at the end), KEEP=1 keeps
# the temporary prefix, NGINX_BIN (/usr/sbin/nginx), MODULE; other
# arguments go to scale-load (--sdk-procs, --panel-procs, --batch,
# --per-panel, --all, ...).

set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

SDKS=${SDKS:-2000}
PANELS=${PANELS:-$SDKS}
WORKERS=${WORKERS:-2}
INTERVAL=${INTERVAL:-10}
DURATION=${DURATION:-30}
# not "NGINX": nginx reads that variable (inherited listening sockets)
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
unset NGINX
MODULE=${MODULE:-$ROOT/build/ngx_http_amonitor_module.so}
CC=${CC:-cc}
LOAD=$ROOT/build/bench/scale-load

if [ ! -f build/libamon_core.a ] || [ ! -f build/libamon_posix.a ] \
    || [ ! -f "$MODULE" ]; then
    echo "scale.sh: build the core and the module first: make core module" >&2
    exit 2
fi

mkdir -p build/bench
# shellcheck disable=SC2046
"$CC" -std=gnu99 -g -O2 -Wall -Wextra -Werror -Wno-unused-parameter \
    -Isrc/core -Isrc/core/gen -Isrc/posix bench/agent/scale-load.c \
    bench/agent/scale-io.c bench/agent/scale-sdk.c bench/agent/scale-panel.c \
    bench/agent/bench-util.c \
    build/libamon_posix.a build/libamon_core.a \
    $(sed -e 's/#.*//' src/core/libs.list) -o "$LOAD"

# as many open files as this shell may have: scale-load's processes and
# nginx's master inherit it (worker_rlimit_nofile sets the workers')
ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)
if [ "$NOFILE" = unlimited ] || [ "$NOFILE" -gt 1048576 ]; then
    NOFILE=1048576
fi

# worker_connections: every SDK (each worker dials all of them), its share
# of the panels, listening sockets; it must stay under the open-file limit
WCONN=$((NOFILE - 1000))
NEED=$((SDKS + (PANELS + 10) * 6 / (5 * WORKERS) + 100))
if [ "$NEED" -gt "$WCONN" ]; then
    echo "scale.sh: a worker needs about $NEED connections," \
        "more than $WCONN (open files: $NOFILE)" >&2
fi

PREFIX=$(mktemp -d /tmp/amon-scale-XXXXXX)
chmod 755 "$PREFIX"
mkdir -p "$PREFIX/logs"
LOAD_PID=

cleanup() {
    if [ -f "$PREFIX/nginx.pid" ]; then
        "$NGINX_BIN" -p "$PREFIX" -c "$PREFIX/nginx.conf" \
            -e "$PREFIX/error.log" -s stop 2>/dev/null || true
        sleep 1
    fi
    if [ -n "$LOAD_PID" ] && kill -0 "$LOAD_PID" 2>/dev/null; then
        kill "$LOAD_PID" 2>/dev/null || true
    fi
    if [ "${KEEP:-0}" = 1 ]; then
        echo "scale.sh: kept $PREFIX"
    else
        rm -rf "$PREFIX"
    fi
}
trap cleanup EXIT

port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 12000))
        if ! ss -Htln "sport = :$p" | grep -q .; then
            echo "$p"
            return
        fi
    done
}

HTTP_PORT=$(port)
RP=reuseport
if [ "${REUSEPORT:-1}" = 0 ]; then
    RP=
fi

"$LOAD" --targets "$SDKS" --panels "$PANELS" --workers "$WORKERS" \
    --interval "$INTERVAL" --duration "$DURATION" --panel-port "$HTTP_PORT" \
    --pid-file "$PREFIX/nginx.pid" --hold "$@" > "$PREFIX/load.out" &
LOAD_PID=$!

for _ in $(seq 1 200); do
    grep -q '^listening ' "$PREFIX/load.out" && break
    sleep 0.05
done
PORTS=$(sed -n 's/^listening //p' "$PREFIX/load.out")
if [ -z "$PORTS" ]; then
    echo "scale.sh: scale-load did not start" >&2
    exit 1
fi

# target i is on the port of scale-load's SDK process i % K
{
    cat <<EOF
load_module $MODULE;
worker_processes $WORKERS;
worker_rlimit_nofile $NOFILE;
pid $PREFIX/nginx.pid;
error_log $PREFIX/error.log warn;
events { worker_connections $WCONN; }
http {
    access_log off;
    client_body_temp_path $PREFIX/client_body_temp;
    proxy_temp_path $PREFIX/proxy_temp;
    fastcgi_temp_path $PREFIX/fastcgi_temp;
    uwsgi_temp_path $PREFIX/uwsgi_temp;
    scgi_temp_path $PREFIX/scgi_temp;
    amonitor_zone amon 64m;
    amonitor_reconnect 200ms 2s;
    amonitor_connect_timeout ${CONNECT_TIMEOUT:-5s};
EOF
    awk -v n="$SDKS" -v ports="$PORTS" 'BEGIN {
        k = split(ports, p, ",");
        for (i = 0; i < n; i++) {
            printf "    amonitor_target t%d ws://127.0.0.1:%d/t%d;\n",
                i, p[i % k + 1], i;
        }
    }'
    cat <<EOF
    server {
        listen 127.0.0.1:$HTTP_PORT $RP backlog=4096;
        location = /ws/panel {
            amonitor_panel on;
            amonitor_panel_snapshot ${SNAPSHOT:-off};
        }
        location = /status { amonitor_status; }
    }
}
EOF
} > "$PREFIX/nginx.conf"

echo "scale.sh: $SDKS SDKs, $PANELS + 10 panels, worker_processes $WORKERS," \
    "worker_rlimit_nofile $NOFILE, worker_connections $WCONN," \
    "amonitor_connect_timeout ${CONNECT_TIMEOUT:-5s}," \
    "listen ${RP:-(no reuseport)}," \
    "load $(cut -d' ' -f1-3 /proc/loadavg)"
START=$(date +%s.%N)
"$NGINX_BIN" -p "$PREFIX" -c "$PREFIX/nginx.conf" -e "$PREFIX/error.log"

# scale-load prints "end" after its report and keeps every connection
# open until told to stop: the counters and the log are read before that
RC=0
while kill -0 "$LOAD_PID" 2>/dev/null && ! grep -q '^end$' "$PREFIX/load.out"
do
    sleep 0.2
done
sed -e '/^listening /d' -e '/^end$/d' "$PREFIX/load.out"
awk -v s="$START" -v e="$(date +%s.%N)" \
    'BEGIN { printf "total_s=%.1f\n", e - s }'

# the module's own counters, summed over the zone
KEYS='panels\|upstreams_open\|forwarded\|dropped\|oversize'
curl -s "http://127.0.0.1:$HTTP_PORT/status" \
    | grep -o "\"\($KEYS\)\":[0-9]*" \
    | tr -d '"' | tr ':' '=' | tr '\n' ' '
echo

LOG=$PREFIX/error.log
echo "error_log: $(grep -c '\[alert\]\|\[crit\]\|\[emerg\]' "$LOG" || true)" \
    "alert/crit/emerg, $(grep -c '\[error\]' "$LOG" || true) error," \
    "$(grep -c '\[warn\]' "$LOG" || true) warn"
grep -v '\[notice\]\|\[info\]' "$LOG" | head -5 || true

# stop nginx while every SDK and panel is still connected, as a real
# shutdown finds them, and time it: the master kills a worker that has not
# exited about a second after SIGTERM ("exited on signal 9")
LINES=$(wc -l < "$LOG")
MASTER=$(cat "$PREFIX/nginx.pid")
T0=$(date +%s.%N)
"$NGINX_BIN" -p "$PREFIX" -c "$PREFIX/nginx.conf" -e "$LOG" -s "${STOP:-stop}"
for _ in $(seq 1 600); do
    kill -0 "$MASTER" 2>/dev/null || break
    sleep 0.05
done
awk -v s="$T0" -v e="$(date +%s.%N)" \
    'BEGIN { printf "nginx_stop_s=%.2f", e - s }'
echo " (nginx -s ${STOP:-stop}), then in the log:" \
    "$(tail -n +$((LINES + 1)) "$LOG" | grep -c '\[alert\]' || true) alert," \
    "$(tail -n +$((LINES + 1)) "$LOG" | grep -c '\[error\]' || true) error"
tail -n +$((LINES + 1)) "$LOG" | grep '\[alert\]' | head -3 || true

if kill -0 "$LOAD_PID" 2>/dev/null; then
    kill -TERM "$LOAD_PID"
fi
wait "$LOAD_PID" || RC=$?
LOAD_PID=
sed -n -e '/^child_failed/p' "$PREFIX/load.out"

exit "$RC"
