#!/usr/bin/env bash
# CPU time of the server per delivered frame (fan-out) or per action
# round trip, side by side in one run: the module, a bare relay written
# for the benchmark (bench/agent/relay.c: parses nothing, one send per
# panel per wake-up: the floor), nginx proxy_pass and, when Debian's
# libnginx-mod-nchan is installed, nchan (WebSocket publisher and
# subscribers).  The server runs on CPU 0 (worker_cpu_affinity / taskset),
# the load generator on CPU 1, at fixed offered loads; every case is run
# REPS times, interleaved (case by case, server by server), and the
# median is reported with its ratio to the floor of the same case.
#
#   bash bench/agent/ratio.sh              # about 10 minutes
#   REPS=5 SECS=5 bash bench/agent/ratio.sh
#   CASES="fan100 act" bash bench/agent/ratio.sh
#
#   MODULE       the module (default build/ngx_http_amonitor_module.so)
#   OLD_MODULE   a second build of the module, run as "old" in the action
#                cases (e.g. before a change)
#   REDIS_SERVER redis-server binary for the Redis action case (default:
#                from PATH; the case is left out without it)
set -eu

cd "$(dirname "$0")/../.."
ROOT=$(pwd)

NGINX=${NGINX:-/usr/sbin/nginx}
MODULE=${MODULE:-$ROOT/build/ngx_http_amonitor_module.so}
OLD_MODULE=${OLD_MODULE:-}
NCHAN=${NCHAN:-/usr/lib/nginx/modules/ngx_nchan_module.so}
REPS=${REPS:-3}
SECS=${SECS:-4}
CASES=${CASES:-"fan1 fan100 fan1000 sweep act"}
CC=${CC:-cc}
LOAD=$ROOT/build/bench/amon-load
RELAY=$ROOT/build/bench/amon-relay
HZ=$(getconf CLK_TCK)

mkdir -p build/bench
for p in amon-load:amon-load.c amon-relay:relay.c; do
    # shellcheck disable=SC2046
    "$CC" -std=gnu99 -g -O2 -Wall -Wextra -Werror -Wno-unused-parameter \
        -Isrc/core -Isrc/core/gen -Isrc/posix "bench/agent/${p#*:}" \
        build/libamon_posix.a build/libamon_core.a \
        $(sed -e 's/#.*//' src/core/libs.list) -o "build/bench/${p%%:*}"
done

PREFIX=$(mktemp -d /tmp/amon-ratio-XXXXXX)
chmod 755 "$PREFIX"
SERVER_PID=
NGINX_MASTER=
REDIS_PID=

stop_server() {
    if [ -n "$NGINX_MASTER" ]; then
        kill -QUIT "$NGINX_MASTER" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$NGINX_MASTER" 2>/dev/null || break
            sleep 0.1
        done
    elif [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
    NGINX_MASTER=
}

cleanup() {
    stop_server
    if [ -n "$REDIS_PID" ]; then
        kill "$REDIS_PID" 2>/dev/null || true
    fi
    rm -rf "$PREFIX"
}
trap cleanup EXIT

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

HTTP_PORT=$(port)
SDK_PORT=$(port)
while [ "$SDK_PORT" = "$HTTP_PORT" ]; do SDK_PORT=$(port); done

# nginx with one worker on CPU 0: $1 = module|proxy|nchan, $2 = extra
# http-level lines (zone, redis), $3 = the module file for "module"
start_nginx() {
    local kind=$1 extra=${2:-} mod=${3:-$MODULE} load="" body
    case $kind in
    module)
        load="load_module $mod;"
        body="    amonitor_target bench-0 ws://127.0.0.1:$SDK_PORT/;
    amonitor_reconnect 50ms 200ms;
    amonitor_ack_timeout 10s;
    amonitor_send_queue 4096;
    $extra
    server {
        listen 127.0.0.1:$HTTP_PORT;
        location = /ws/panel { amonitor_panel on; }
    }"
        ;;
    proxy)
        body="    server {
        listen 127.0.0.1:$HTTP_PORT;
        location = /ws/panel {
            proxy_pass http://127.0.0.1:$SDK_PORT/;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection upgrade;
            proxy_read_timeout 1h;
        }
    }"
        ;;
    nchan)
        load="load_module $NCHAN;"
        body="    server {
        listen 127.0.0.1:$HTTP_PORT;
        location = /pub { nchan_publisher websocket; nchan_channel_id b; }
        location = /ws/panel {
            nchan_subscriber websocket;
            nchan_channel_id b;
        }
    }"
        ;;
    esac

    cat > "$PREFIX/nginx.conf" <<EOF
$load
worker_processes 1;
worker_cpu_affinity 01;
worker_rlimit_nofile 65536;
error_log $PREFIX/error.log warn;
pid $PREFIX/nginx.pid;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path $PREFIX/cbt;
    proxy_temp_path $PREFIX/pt;
    fastcgi_temp_path $PREFIX/ft;
    uwsgi_temp_path $PREFIX/ut;
    scgi_temp_path $PREFIX/st;
$body
}
EOF
    rm -f "$PREFIX/nginx.pid"
    "$NGINX" -p "$PREFIX/" -c "$PREFIX/nginx.conf" -e "$PREFIX/error.log"
    for _ in $(seq 1 50); do
        [ -s "$PREFIX/nginx.pid" ] && break
        sleep 0.1
    done
    NGINX_MASTER=$(cat "$PREFIX/nginx.pid")
    sleep 0.3
    SERVER_PID=$(pgrep -P "$NGINX_MASTER" | head -1)
}

start_relay() {
    taskset -c 0 "$RELAY" --listen "$HTTP_PORT" --sdk-port "$SDK_PORT" &
    SERVER_PID=$!
    sleep 0.3
}

# the nchan publisher: the relay's --publish mode re-frames what the SDK
# sends as client frames to /pub (on CPU 1 with the load: not measured)
start_pusher() {
    taskset -c 1 "$RELAY" --publish "$HTTP_PORT" --sdk-port "$SDK_PORT" &
    PUSHER_PID=$!
    sleep 0.3
}

cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# one measurement: prints "<per-op microseconds of server CPU> <ops/s>"
measure() {
    local out t0 t1 lp ops
    "$LOAD" --quiet --duration "$SECS" --warmup 2 --sdk-port "$SDK_PORT" \
        "$@" > "$PREFIX/out" 2>&1 &
    lp=$!
    taskset -pc 1 "$lp" > /dev/null
    sleep 2.5
    t0=$(cpu_ticks "$SERVER_PID")
    sleep $((SECS - 1))
    t1=$(cpu_ticks "$SERVER_PID")
    wait "$lp" || { cat "$PREFIX/out" >&2; echo "- -"; return; }
    out=$(cat "$PREFIX/out")
    ops=$(echo "$out" | tr ' ' '\n' \
        | sed -n 's/^delivered_per_s=//p; s/^actions_per_s=//p')
    awk -v t=$((t1 - t0)) -v hz="$HZ" -v s=$((SECS - 1)) -v ops="$ops" \
        'BEGIN { if (ops > 0) printf "%.3f %.0f\n", t / hz / s / ops * 1e6, ops;
                 else print "- -" }'
}

declare -A RES

# run one case for one server, once: $1 case, $2 server
run() {
    local c=$1 s=$2 url="ws://127.0.0.1:$HTTP_PORT/ws/panel" args r
    case $c in
    fan1) args="--mode fanout --panels 1 --rate 20000" ;;
    fan100) args="--mode fanout --panels 100 --rate 1000" ;;
    fan1000) args="--mode fanout --panels 1000 --rate 100" ;;
    sweep100) args="--mode fanout --panels 100 --rate 100" ;;
    sweep300) args="--mode fanout --panels 100 --rate 300" ;;
    sweep3000) args="--mode fanout --panels 100 --rate 3000" ;;
    act*) args="--mode actions --panels 16 --inflight 16" ;;
    esac

    case $s in
    module) start_nginx module "amonitor_zone amon 64m;" ;;
    relay) start_relay ;;
    proxy) start_nginx proxy ;;
    nchan) start_nginx nchan; start_pusher ;;
    full) start_nginx module "amonitor_zone amon 64m;" ;;
    oldfull) start_nginx module "amonitor_zone amon 64m;" "$OLD_MODULE" ;;
    old) start_nginx module "amonitor_zone amon 64m;" "$OLD_MODULE" ;;
    redis) start_nginx module "amonitor_zone amon 1m;
    amonitor_redis 127.0.0.1:$REDIS_PORT;" ;;
    esac

    if [ "$s" = full ] || [ "$s" = oldfull ]; then
        # 64m holds about 256k entries: fill it until it evicts
        "$LOAD" --quiet --duration "$FILL_SECS" --warmup 0 \
            --sdk-port "$SDK_PORT" --panel-url "$url" --mode actions \
            --panels 16 --inflight 16 --sdk-conns 1 > /dev/null 2>&1 || true
    fi

    local conns=1
    [ "$s" = proxy ] && [ "${c#act}" != "$c" ] && conns=16
    # shellcheck disable=SC2086
    r=$(measure --panel-url "$url" $args --sdk-conns "$conns")
    stop_server
    if [ "$s" = nchan ]; then
        kill "$PUSHER_PID" 2>/dev/null || true
        wait "$PUSHER_PID" 2>/dev/null || true
    fi
    echo "$c $s rep: ${r% *} us/op at ${r#* } ops/s" >&2
    RES[$c/$s]="${RES[$c/$s]:-} ${r% *}"
    RES[$c/$s/ops]="${RES[$c/$s/ops]:-} ${r#* }"
}

median() {
    tr ' ' '\n' | grep -v '^-*$' | sort -g \
        | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)];
                                    else print "-" }'
}

FILL_SECS=${FILL_SECS:-8}
REDIS_PORT=$(port)
if command -v "${REDIS_SERVER:-redis-server}" > /dev/null; then
    "${REDIS_SERVER:-redis-server}" --port "$REDIS_PORT" --save '' \
        --appendonly no --bind 127.0.0.1 > /dev/null 2>&1 &
    REDIS_PID=$!
fi

plan=()
for c in $CASES; do
    case $c in
    fan1) plan+=("fan1:relay module proxy") ;;
    fan100 | fan1000)
        servers="relay module"
        [ -f "$NCHAN" ] && servers="$servers nchan"
        plan+=("$c:$servers")
        ;;
    sweep) plan+=("sweep100:relay module" "sweep300:relay module"
        "sweep3000:relay module") ;;
    act)
        servers="proxy module full"
        [ -n "$OLD_MODULE" ] && servers="$servers old oldfull"
        [ -n "$REDIS_PID" ] && servers="$servers redis"
        plan+=("act:$servers")
        ;;
    esac
done

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "per run: 2 s warmup, $((SECS - 1)) s of server CPU measured;" \
    "$REPS interleaved repetitions"

for rep in $(seq 1 "$REPS"); do
    for p in "${plan[@]}"; do
        for s in ${p#*:}; do
            run "${p%%:*}" "$s"
        done
    done
done

echo
printf '%-10s %-8s %14s %12s %10s\n' case server "us_cpu/op" "ops/s" "x floor"
for p in "${plan[@]}"; do
    c=${p%%:*}
    floor=relay
    [ "${c#act}" != "$c" ] && floor=proxy
    f=$(echo "${RES[$c/$floor]}" | median)
    for s in ${p#*:}; do
        m=$(echo "${RES[$c/$s]}" | median)
        o=$(echo "${RES[$c/$s/ops]}" | median)
        x=$(awk -v a="$m" -v b="$f" 'BEGIN { if (a + 0 > 0 && b + 0 > 0)
            printf "%.2f", a / b; else print "-" }')
        printf '%-10s %-8s %14s %12s %10s\n' "$c" "$s" "$m" "$o" "$x"
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
