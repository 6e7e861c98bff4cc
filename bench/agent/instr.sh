#!/usr/bin/env bash
# User-space instructions of the server per action round trip, counted by
# valgrind's callgrind: the module (and OLD_MODULE) against nginx
# proxy_pass in the closed loop of ratio.sh's "act" case (16 panels x 16
# actions in flight, one SDK connection; 16 behind proxy_pass).  Unlike
# CPU time, an instruction count hardly moves with the machine's load or
# clock, so a change to the hot path can be judged on a busy machine.
# It counts no kernel work (system calls, copies), where proxy_pass spends
# most of its round trip: the ratio here is not ratio.sh's.
#
#   make core module
#   bash bench/agent/instr.sh
#   OLD_MODULE=/tmp/old.so REPS=3 bash bench/agent/instr.sh
#   TOP=20 bash bench/agent/instr.sh          # more functions listed
#   ZONE=1m bash bench/agent/instr.sh         # a zone full and evicting
#
# nginx runs as one process (master_process off) under callgrind; each
# run answers N1 (20000), then N2 (60000) actions, and the instructions
# per action are (I(N2) - I(N1)) / (N2 - N1), so start-up and the first
# connections cancel out.  How many actions a wake-up of the worker
# brings changes the count a little (more per wake-up: fewer instructions
# per action); REPS (1) runs of each give the spread.  The functions that
# cost most (self cost, share of the N2 run) are listed for each server.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
MODULE=${MODULE:-$ROOT/build/ngx_http_amonitor_module.so}
OLD_MODULE=${OLD_MODULE:-}
N1=${N1:-20000}
N2=${N2:-60000}
REPS=${REPS:-1}
TOP=${TOP:-12}
ZONE=${ZONE:-64m}
NGINX=${NGINX:-/usr/sbin/nginx}

# shellcheck source=bench/lib.sh
. bench/lib.sh

for tool in valgrind callgrind_annotate; do
    if ! command -v "$tool" > /dev/null; then
        echo "instr.sh: $tool not found (apt-get install valgrind)" >&2
        exit 2
    fi
done
if [ ! -f build/libamon_core.a ] || [ ! -f build/libamon_posix.a ]; then
    echo "instr.sh: build the core and the module first: make core module" >&2
    exit 2
fi
bench_need_module "$MODULE"
[ -z "$OLD_MODULE" ] || bench_need_module "$OLD_MODULE"
if [ "$N2" -le "$N1" ]; then
    echo "instr.sh: N2 ($N2) must be larger than N1 ($N1)" >&2
    exit 2
fi

bench_build_load
LOAD=$ROOT/build/bench/amon-load

PREFIX=$(mktemp -d /tmp/amon-instr-XXXXXX)
chmod 755 "$PREFIX"
VG_PID=

cleanup() {
    if [ -n "$VG_PID" ]; then
        kill "$VG_PID" 2>/dev/null || true
        wait "$VG_PID" 2>/dev/null || true
    fi
    rm -rf "$PREFIX"
}
trap cleanup EXIT

HTTP_PORT=$(bench_free_port)
SDK_PORT=$(bench_free_port)
while [ "$SDK_PORT" = "$HTTP_PORT" ]; do SDK_PORT=$(bench_free_port); done

# the configuration of server $1 (module|proxy) with module file $2
conf() {
    local load="" http="" loc
    if [ "$1" = module ]; then
        load="load_module $2;"
        http="amonitor_target bench-0 ws://127.0.0.1:$SDK_PORT/;
    amonitor_reconnect 50ms 200ms;
    amonitor_ack_timeout 10s;
    amonitor_send_queue 4096;
    amonitor_zone amon $ZONE;"
        loc="amonitor_panel on;"
    else
        loc="proxy_pass http://127.0.0.1:$SDK_PORT/;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection upgrade;
            proxy_read_timeout 1h;"
    fi
    bench_nginx_conf "$PREFIX" "$load
master_process off;
daemon off;" "    $http
    server {
        listen 127.0.0.1:$HTTP_PORT;
        location = /ws/panel {
            $loc
        }
    }"
}

# one run: server $1, module file $2, $3 actions; prints the instructions
# counted (the profile is left in $PREFIX/cg.out)
run() {
    local sdk_conns=1 acks i
    [ "$1" = proxy ] && sdk_conns=16
    conf "$1" "$2" > "$PREFIX/nginx.conf"
    rm -f "$PREFIX/cg.out"
    valgrind --tool=callgrind --callgrind-out-file="$PREFIX/cg.out" \
        "$NGINX" -p "$PREFIX" -c "$PREFIX/nginx.conf" \
        > "$PREFIX/vg.log" 2>&1 &
    VG_PID=$!
    for i in $(seq 1 150); do
        (exec 3<> "/dev/tcp/127.0.0.1/$HTTP_PORT") 2>/dev/null && break
        if ! kill -0 "$VG_PID" 2>/dev/null; then
            echo "instr.sh: nginx did not start:" >&2
            cat "$PREFIX/vg.log" "$PREFIX/error.log" >&2 || true
            exit 1
        fi
        sleep 0.2
    done
    "$LOAD" --quiet --duration 600 --warmup 0 --sdk-port "$SDK_PORT" \
        --panel-url "ws://127.0.0.1:$HTTP_PORT/ws/panel" --mode actions \
        --panels 16 --inflight 16 --sdk-conns "$sdk_conns" \
        --max-actions "$3" > "$PREFIX/load.out" 2>&1 || true
    # callgrind writes its profile when nginx exits
    kill -QUIT "$VG_PID" 2>/dev/null || true
    wait "$VG_PID" 2>/dev/null || true
    VG_PID=
    acks=$(tr ' ' '\n' < "$PREFIX/load.out" | sed -n 's/^acks=//p')
    if [ "${acks:-0}" -lt "$3" ] || [ ! -s "$PREFIX/cg.out" ]; then
        echo "instr.sh: $1: $3 actions not answered:" >&2
        cat "$PREFIX/load.out" "$PREFIX/error.log" >&2 || true
        exit 1
    fi
    sed -n 's/^summary: //p' "$PREFIX/cg.out"
}

servers="proxy:- module:$MODULE"
[ -z "$OLD_MODULE" ] || servers="$servers old:$OLD_MODULE"

printf '%-8s %s\n' server "instructions per action ($REPS run(s), N=$N1/$N2)"
for s in $servers; do
    name=${s%%:*} file=${s#*:} kind=module per=""
    [ "$name" = proxy ] && kind=proxy
    for _ in $(seq 1 "$REPS"); do
        i1=$(run "$kind" "$file" "$N1")
        i2=$(run "$kind" "$file" "$N2")
        per="$per $(( (i2 - i1) / (N2 - N1) ))"
    done
    printf '%-8s%s\n' "$name" "$per"
    callgrind_annotate "$PREFIX/cg.out" 2>/dev/null \
        | awk -v top="$TOP" '/^-+$/ { d++; next }
            d >= 4 && NF >= 3 && n < top {
                sub(/ \[.*\]$/, ""); print "           " $0; n++ }'
done
