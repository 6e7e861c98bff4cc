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
#   bash bench/agent/ratio.sh              # about 20 minutes
#   REPS=5 SECS=5 bash bench/agent/ratio.sh
#   CASES="fan100 act" bash bench/agent/ratio.sh
#   CASES=ackrate bash bench/agent/ratio.sh   # ack latency, open loop
#   CASES=act FILL_ACTIONS=10000000 REPS=1 bash bench/agent/ratio.sh
#   CASES=actfix FILL_ACTIONS=10000000 bash bench/agent/ratio.sh
#   CASES=idle IDLE_N=2000 bash bench/agent/ratio.sh
#
# "idle" measures memory, not CPU: the server's Rss and Pss with no
# connection, then IDLE_SETTLE (2.5) seconds after IDLE_N (1000) SDK
# connections opened, after IDLE_N/2 panels and after IDLE_N panels:
# KiB per SDK connection, per panel, per panel of the second half and
# per connection, for the module, the relay dialing its SDK IDLE_N times
# and nginx proxy_pass (one upstream per panel).  PANEL_OPTS: more lines
# in the module's panel location (any case), e.g.
# "amonitor_panel_snapshot off;".
#
# "ackrate" first finds the module's maximum action rate (closed loop,
# 16 panels x 16 in flight: case actmax, also for proxy_pass and Redis),
# then offers half of it as an open loop (case actopen: a fixed schedule
# of actions that does not wait for acks, round trips counted from the
# scheduled send time) to the module, proxy_pass and the module with
# Redis, and to the module with Redis at half of Redis's own maximum
# (redis50); it reports the round trip's p50/p99/p99.9/max and the
# server's CPU per action.
#
#   MODULE       the module (default build/ngx_http_amonitor_module.so)
#   OLD_MODULE   a second build of the module, run as "old" in the fan-out
#                (fan100, fan1000, sweep) and action
#                cases (e.g. before a change; "oldredis" with Redis)
#   REDIS_SERVER redis-server binary for the Redis action case (default:
#                from PATH; the case is left out without it)
#   FILL_SECS    how long the "full" action cases fill the zone first (8)
#   FILL_ACTIONS fill with this many actions instead (e.g. 10000000: a few
#                minutes per run); also for the Redis store (redisfull)
#   ACK_RATE     the open loop's offered rate (actions/s) instead of half
#                of the measured maximum
#   ACK_MAX=open the maximum is the module's highest sustained open-loop
#                rate instead of the closed loop's (actmax): rates rise by
#                ACK_STEP (50000) until one is not sustained (an action
#                missing, late or answered with an error, or a round-trip
#                p99 of ACK_SUSTAIN_MS, 20, or more); the median of REPS
#                such searches (case actstep, module only)
#   TIMELINE     a directory: each open-loop run writes there, per
#                action, its due time, round trip and whether it was an
#                error (actopen-<server>-<n>.txt), for finding stalls,
#                and every 0.5 s the CPU of the worker, the load generator
#                and redis-server and the machine's idle time
#                (actopen-<server>-<n>.cpu)
#   REDIS_KEYS   Redis runs start from a database holding this many keys
#                (with the dedupe TTL, as the module writes them) instead
#                of an empty one, once Redis has finished moving them to
#                tables it doubled while they were written: it doubles
#                its tables when the count passes a power of two (65,536
#                ... 1,048,576, 2,097,152 ...) and then moves the entries
#                over a step at a time, for seconds to minutes
#   FIX_RATE     case actfix: the offered rate (100000 actions/s, open
#                loop, 16 panels) at which proxy_pass, the module on a
#                fresh zone and the module on a full one (FILL_*) are
#                compared; FIX_RATE_REDIS (20000): the same for case
#                actfixr (proxy_pass, Redis fresh and filled), which
#                actfix adds when redis-server is there
#   ACK_RATE_REDIS  the same for redis50 (with ACK_RATE: no actmax runs)
#   OPEN_SERVERS the open loop's servers (default: module proxy redis
#                redis50)
#   REDIS_OPTS   more parameters of amonitor_redis (e.g. claims=16384)
#   NICE         e.g. -20: the nice value of the server, the load
#                generator and redis-server (see prio below)
#   PERF_EVENTS  e.g. "cycles:u,cycles:k": perf stat counts these events
#                of the server over each measured window and prints them
#                per delivery or action
#   PERF_RECORD  a directory: perf record (call graphs) of the server over
#                each measured window instead, one file per run
#                (<case>-<server>-*.data; read with perf report -i)
#   GEN_MAX      the summary names the runs whose load generator used more
#                than this % of its core (80; column "gen %": amon-load
#                only, nchan's publisher shares that core)
#   QUIET        e.g. 20: before each run, wait until the machine's other
#                work takes under 20 % of a core (at most QUIET_MAX, 120 s)
#   DAMON=pause  (root) turn the kernel's DAMON monitors that are on off
#                for the run, and on again at its end: a kdamond thread
#                takes one of the two cores for 1 to 4 ms at each sample
#                (every 0.5 s on the machines measured); the header says
#                how many monitors ran either way
set -eu

cd "$(dirname "$0")/../.."
ROOT=$(pwd)

NGINX=${NGINX:-/usr/sbin/nginx}
MODULE=${MODULE:-$ROOT/build/ngx_http_amonitor_module.so}
OLD_MODULE=${OLD_MODULE:-}
PERF_EVENTS=${PERF_EVENTS:-}
NCHAN=${NCHAN:-/usr/lib/nginx/modules/ngx_nchan_module.so}
REPS=${REPS:-3}
GEN_MAX=${GEN_MAX:-80}
SECS=${SECS:-4}
CASES=${CASES:-"fan1 fan100 fan1000 sweep act idle"}
IDLE_N=${IDLE_N:-1000}
IDLE_SETTLE=${IDLE_SETTLE:-2.5}
CC=${CC:-cc}
LOAD=$ROOT/build/bench/amon-load
RELAY=$ROOT/build/bench/amon-relay
HZ=$(getconf CLK_TCK)

if [ ! -f build/libamon_core.a ] || [ ! -f build/libamon_posix.a ] \
    || [ ! -f "$MODULE" ]; then
    echo "ratio.sh: build the core and the module first: make core module" >&2
    exit 2
fi

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_build_load
bench_build amon-relay relay.c

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

DAMON_PAUSED=

# the kernel's DAMON monitors that are on (their state files)
damon_on() {
    local f
    for f in /sys/kernel/mm/damon/admin/kdamonds/*/state; do
        [ -r "$f" ] && [ "$(cat "$f")" = on ] && echo "$f"
    done
    return 0
}

damon_resume() {
    local f i
    for f in $DAMON_PAUSED; do
        # a monitor still stopping refuses "on" (EBUSY) for a moment
        for i in $(seq 1 50); do
            echo on 2>/dev/null > "$f" && break
            sleep 0.1
        done
        [ "$(cat "$f")" = on ] || echo "DAMON: could not turn $f on again" >&2
    done
    DAMON_PAUSED=
}

cleanup() {
    stop_server
    damon_resume
    if [ -n "$REDIS_PID" ]; then
        kill "$REDIS_PID" 2>/dev/null || true
    fi
    rm -rf "$PREFIX"
}
trap cleanup EXIT

port() {
    local p
    while :; do
        # below the ephemeral range: an outgoing connection of another
        # benchmark cannot take it while this one runs
        p=$((20000 + RANDOM % (PORT_LOW - 20000)))
        if ! ss -Htln "sport = :$p" | grep -q .; then
            echo "$p"
            return
        fi
    done
}

PORT_LOW=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range)
[ "$PORT_LOW" -gt 21000 ] || PORT_LOW=50000
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
        location = /ws/panel { amonitor_panel on; ${PANEL_OPTS:-} }
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

    bench_nginx_conf "$PREFIX" "$load
worker_processes 1;
worker_cpu_affinity 01;" "$body" > "$PREFIX/nginx.conf"
    rm -f "$PREFIX/nginx.pid"
    "$NGINX" -p "$PREFIX/" -c "$PREFIX/nginx.conf" -e "$PREFIX/error.log"
    for _ in $(seq 1 50); do
        [ -s "$PREFIX/nginx.pid" ] && break
        sleep 0.1
    done
    NGINX_MASTER=$(cat "$PREFIX/nginx.pid")
    sleep 0.3
    SERVER_PID=$(pgrep -P "$NGINX_MASTER" | head -1)
    prio "$SERVER_PID"
}

start_relay() {
    taskset -c 0 "$RELAY" --listen "$HTTP_PORT" --sdk-port "$SDK_PORT" "$@" &
    SERVER_PID=$!
    prio "$SERVER_PID"
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

# every 0.5 s while process $2 (the load generator) runs, into file $1:
# % of one core for the worker, the load generator and redis-server, and
# the machine's idle time (of its cores together)
sample_cpu() {
    local f=$1 lp=$2 now prev t0
    ticks() {
        local p
        echo "${EPOCHREALTIME/./}"
        for p in "$SERVER_PID" "$lp" "$REDIS_PID"; do
            if [ -n "$p" ] && [ -r "/proc/$p/stat" ]; then
                cpu_ticks "$p"
            else
                echo 0
            fi
        done
        awk '/^cpu / { print $5 + $6 }' /proc/stat
    }
    echo "# s worker% load% redis% idle% (of one core)" > "$f"
    prev=$(ticks | tr '\n' ' ')
    t0=${prev%% *}
    while kill -0 "$lp" 2> /dev/null; do
        sleep 0.5
        kill -0 "$lp" 2> /dev/null || break
        now=$(ticks | tr '\n' ' ')
        echo "$prev $now" | awk -v t0="$t0" -v hz="$HZ" '{
            d = ($6 - $1) / 1e6
            printf "%.1f %.0f %.0f %.0f %.0f\n", ($6 - t0) / 1e6,
                ($7 - $2) * 100 / hz / d, ($8 - $3) * 100 / hz / d,
                ($9 - $4) * 100 / hz / d, ($10 - $5) * 100 / hz / d }' >> "$f"
        prev=$now
    done
}

# REDIS_KEYS=N: fill the (empty) database with N keys holding a finished
# action's prefix and the dedupe TTL, 100,000 per script call
redis_fill() {
    local n=0 k
    [ -n "${REDIS_KEYS:-}" ] || return 0
    while [ "$n" -lt "$REDIS_KEYS" ]; do
        k=$((REDIS_KEYS - n))
        [ "$k" -gt 100000 ] && k=100000
        "$REDIS_CLI" -p "$REDIS_PORT" eval "for i = tonumber(ARGV[1]),
            tonumber(ARGV[2]) do redis.call('SET', 'fill:' .. i, 'd{}',
            'EX', 86400) end" 0 "$n" "$((n + k - 1))" > /dev/null
        n=$((n + k))
    done
    # until no table of database 0 is being rehashed (at most 300 s)
    k=0
    while [ "$k" -lt 300 ] && "$REDIS_CLI" -p "$REDIS_PORT" debug htstats 0 \
        | grep -q 'rehashing target'; do
        sleep 1
        k=$((k + 1))
    done
    echo "  redis holds $("$REDIS_CLI" -p "$REDIS_PORT" dbsize) keys" \
        "(waited $k s for its rehash)" >&2
}

# one measurement: prints "<per-op microseconds of server CPU> <ops/s>
# <% of a core the load generator used over the same window>"
measure() {
    local out t0 t1 u0 u1 g0 g1 lp ops
    "$LOAD" --quiet --duration "$SECS" --warmup 2 --sdk-port "$SDK_PORT" \
        "$@" > "$PREFIX/out" 2>&1 &
    lp=$!
    taskset -pc 1 "$lp" > /dev/null
    prio "$lp"
    if [ -n "${CPU_LOG:-}" ]; then
        sample_cpu "$CPU_LOG" "$lp" > /dev/null 2>&1 &
    fi
    sleep 2.5
    t0=$(cpu_ticks "$SERVER_PID")
    g0=$(cpu_ticks "$lp")
    u0=$(awk '{ print $14 }' "/proc/$SERVER_PID/stat")
    if [ -n "$PERF_EVENTS" ]; then
        perf stat -x, -e "$PERF_EVENTS" -p "$SERVER_PID" -o "$PREFIX/perf" \
            -- sleep $((SECS - 1)) 2> /dev/null
    elif [ -n "${PERF_RECORD:-}" ]; then
        mkdir -p "$PERF_RECORD"
        perf record -q -g -F 4999 -p "$SERVER_PID" \
            -o "$PERF_RECORD/${PERF_TAG:-run}-$$-$RANDOM.data" \
            -- sleep $((SECS - 1)) > /dev/null 2>&1
    else
        sleep $((SECS - 1))
    fi
    t1=$(cpu_ticks "$SERVER_PID")
    g1=$(cpu_ticks "$lp")
    u1=$(awk '{ print $14 }' "/proc/$SERVER_PID/stat")
    wait "$lp" || { cat "$PREFIX/out" >&2; echo "- - -"; return; }
    out=$(cat "$PREFIX/out")
    ops=$(echo "$out" | tr ' ' '\n' \
        | sed -n 's/^delivered_per_s=//p; s/^actions_per_s=//p;
                 s/^acks_per_s=//p')
    if [ -n "$PERF_EVENTS" ] && [ -n "$ops" ]; then
        # the counts per delivery or action, and the user part of the
        # CPU time (us), on one line
        awk -F, -v n="$(( (SECS - 1) * ${ops%.*} ))" \
            -v u="$((u1 - u0))" -v hz="$HZ" \
            '$1 ~ /^[0-9]/ && n > 0 { printf "  %s %.4g", $3, $1 / n }
             END { if (n > 0) printf "  user_us %.3f", u / hz / n * 1e6;
                   print "" }' "$PREFIX/perf" >&2
    fi
    awk -v t=$((t1 - t0)) -v g=$((g1 - g0)) -v hz="$HZ" -v s=$((SECS - 1)) \
        -v ops="$ops" 'BEGIN { if (ops > 0) printf "%.3f %.0f %.0f\n",
            t / hz / s / ops * 1e6, ops, g / hz / s * 100;
            else print "- - -" }'
}

declare -A RES

# NICE=-20: the server, the load generator and redis-server run at that
# nice value, so that other work on the machine takes little of their
# cores (they stay SCHED_OTHER: a spinning load generator under a
# real-time policy would be throttled for 50 ms each second)
prio() {
    [ -n "${NICE:-}" ] || return 0
    renice -n "$NICE" -p "$1" > /dev/null
}

# busy CPU of the whole machine over one second, in % of one core
busy() {
    local a b
    a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
    sleep 1
    b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
    echo "$a $b" | awk -v hz="$HZ" '{ printf "%.0f", ($3 - $1) * 100 / hz }'
}

# QUIET=N: before a run, wait (at most QUIET_MAX s) until the machine's
# other work takes less than N % of a core, so that a run does not
# start in the middle of someone else's benchmark
quiet() {
    local b t=0
    [ -n "$QUIET" ] || return 0
    while :; do
        b=$(busy)
        if [ "$b" -le "$QUIET" ] || [ "$t" -ge "$QUIET_MAX" ]; then
            [ "$t" -gt 0 ] && echo "  (waited $t s; machine $b % busy)" >&2
            return 0
        fi
        t=$((t + 1))
    done
}

# the server's memory: "Rss Pss" in kB
mem() {
    awk '/^Rss:/ { r = $2 } /^Pss:/ { p = $2 } END { print r, p }' \
        "/proc/$1/smaps_rollup"
}

# IDLE_N - 1 more targets for the module (bench-0 is in start_nginx)
idle_targets() {
    local i
    for i in $(seq 1 $((IDLE_N - 1))); do
        echo "    amonitor_target idle-$i ws://127.0.0.1:$SDK_PORT/$i;"
    done
}

# wait until the load generator's output has a line starting with $1
# (it still runs: pid $2); 1 when it ended or 60 s passed first
wait_line() {
    local t=0
    while ! grep -q "^$1" "$PREFIX/out"; do
        kill -0 "$2" 2>/dev/null && [ "$t" -lt 600 ] || return 1
        sleep 0.1
        t=$((t + 1))
    done
}

# case idle, once for server $1: memory per idle connection.  The
# server's Rss and Pss (kB) with no connection (the module's targets in
# backoff), IDLE_SETTLE s after IDLE_N SDK connections opened, and
# IDLE_SETTLE s after IDLE_N panels opened too; per SDK connection, per
# panel and per connection of both.  Behind proxy_pass the SDK
# connections are the panels' upstreams: its panels carry them.
run_idle() {
    local s=$1 url="ws://127.0.0.1:$HTTP_PORT/ws/panel" b m h a lp r
    local sdks=$IDLE_N
    quiet
    case $s in
    module) start_nginx module "amonitor_zone amon 64m;
$(idle_targets)" ;;
    relay) start_relay --sdk-conns "$IDLE_N" ;;
    proxy) start_nginx proxy; sdks=0 ;;
    esac
    sleep "$IDLE_SETTLE"
    b=$(mem "$SERVER_PID")
    # not a line of the last run's output: the new one starts empty
    : > "$PREFIX/out"
    taskset -c 1 "$LOAD" --quiet --mode idle --sdk-port "$SDK_PORT" \
        --panel-url "$url" --panels "$IDLE_N" --sdk-conns "$sdks" \
        --warmup "$IDLE_SETTLE" --duration $((${IDLE_SETTLE%.*} + 30)) \
        > "$PREFIX/out" 2>&1 &
    lp=$!
    if ! wait_line sdks_ready "$lp"; then
        echo "idle $s: the SDK connections did not all open" >&2
    fi
    m=$(mem "$SERVER_PID")
    wait_line half_ready "$lp" || true
    h=$(mem "$SERVER_PID")
    if ! wait_line ready "$lp"; then
        echo "idle $s: the connections did not all open:" >&2
        cat "$PREFIX/out" >&2
        kill "$lp" 2>/dev/null || true
        stop_server
        return 0
    fi
    sleep "$IDLE_SETTLE"
    a=$(mem "$SERVER_PID")
    kill "$lp" 2>/dev/null || true
    wait "$lp" 2>/dev/null || true
    stop_server
    r=$(awk -v b="$b" -v m="$m" -v h="$h" -v a="$a" -v n="$IDLE_N" \
        -v s="$sdks" 'BEGIN { split(b, x, " "); split(m, y, " ");
        split(h, v, " "); split(a, z, " ");
        printf "%s %.2f %.2f %.2f %.2f",
            s ? sprintf("%.2f", (y[1] - x[1]) / n) : "-",
            (z[1] - y[1]) / n, (z[1] - v[1]) / (n - int(n / 2)),
            (z[1] - x[1]) / (2 * n), (z[2] - x[2]) / (2 * n) }')
    # shellcheck disable=SC2086
    set -- $r
    echo "idle $s rep: KiB Rss per SDK connection $1, per panel $2" \
        "(the second half $3); per connection Rss $4, Pss $5" >&2
    RES[idle/$s/sdk]="${RES[idle/$s/sdk]:-} $1"
    RES[idle/$s/panel]="${RES[idle/$s/panel]:-} $2"
    RES[idle/$s/half]="${RES[idle/$s/half]:-} $3"
    RES[idle/$s]="${RES[idle/$s]:-} $4"
    RES[idle/$s/pss]="${RES[idle/$s/pss]:-} $5"
}

# run one case for one server, once: $1 case, $2 server
run() {
    local c=$1 s=$2 url="ws://127.0.0.1:$HTTP_PORT/ws/panel" args r
    if [ "$c" = idle ]; then
        run_idle "$s"
        return 0
    fi
    quiet
    case $c in
    fan1) args="--mode fanout --panels 1 --rate 20000" ;;
    fan100) args="--mode fanout --panels 100 --rate 1000" ;;
    fan1000) args="--mode fanout --panels 1000 --rate 100" ;;
    sweep100) args="--mode fanout --panels 100 --rate 100" ;;
    sweep300) args="--mode fanout --panels 100 --rate 300" ;;
    sweep3000) args="--mode fanout --panels 100 --rate 3000" ;;
    actopen | actstep | actfix | actfixr)
        rate=$ACK_RATE
        [ "$s" = redis50 ] && rate=$ACK_RATE_REDIS
        [ "$c" = actstep ] && rate=$STEP_RATE
        [ "$c" = actfix ] && rate=$FIX_RATE
        [ "$c" = actfixr ] && rate=$FIX_RATE_REDIS
        args="--mode actions --panels 16 --action-rate $rate --ack-timeout 1"
        if [ -n "$TIMELINE" ]; then
            TL_N=$((TL_N + 1))
            args="$args --timeline $TIMELINE/actopen-$s-$TL_N.txt"
            CPU_LOG=$TIMELINE/actopen-$s-$TL_N.cpu
        fi
        ;;
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
    redis | redis50 | redisfull | oldredis)
        # every Redis run starts from an empty database
        redis_up
        "$REDIS_CLI" -p "$REDIS_PORT" flushall > /dev/null
        redis_fill
        local mod=$MODULE
        [ "$s" = oldredis ] && mod=$OLD_MODULE
        start_nginx module "amonitor_zone amon 1m;
    amonitor_redis 127.0.0.1:$REDIS_PORT${REDIS_OPTS:+ $REDIS_OPTS};" "$mod"
        ;;
    esac

    case $s in
    full | oldfull | redisfull) fill "$url" ;;
    esac

    local conns=1
    [ "$s" = proxy ] && [ "${c#act}" != "$c" ] && conns=16
    # shellcheck disable=SC2086
    r=$(PERF_TAG=$c-$s measure --panel-url "$url" $args --sdk-conns "$conns")
    stop_server
    CPU_LOG=
    if [ -n "$TIMELINE" ] && [ "$c" = actopen ] && [ -f "$PREFIX/error.log" ]
    then
        cp "$PREFIX/error.log" "$TIMELINE/actopen-$s-$TL_N.log"
    fi
    if [ "$s" = nchan ]; then
        kill "$PUSHER_PID" 2>/dev/null || true
        wait "$PUSHER_PID" 2>/dev/null || true
    fi
    local us ops gen
    read -r us ops gen <<< "$r"
    echo "$c $s rep: $us us/op at $ops ops/s, load generator $gen %" >&2
    RES[$c/$s]="${RES[$c/$s]:-} $us"
    RES[$c/$s/ops]="${RES[$c/$s/ops]:-} $ops"
    RES[$c/$s/gen]="${RES[$c/$s/gen]:-} $gen"
    if [ "$c" = actopen ] || [ "$c" = actfix ] || [ "$c" = actfixr ]; then
        for f in rtt_p50_us rtt_p99_us rtt_p999_us rtt_max_us lag_p99_us \
            sent_rtt_p99_us missing errors late; do
            RES[$c/$s/$f]="${RES[$c/$s/$f]:-} $(field "$f")"
        done
        echo "  $(cat "$PREFIX/out")" >&2
    fi
}

# ACK_MAX=open: the highest open-loop rate the module sustains, stepping
# up by ACK_STEP from ACK_STEP (in OPEN_MAX; 0 when not even that)
open_max() {
    local p99 bad m e l
    OPEN_MAX=0
    STEP_RATE=$ACK_STEP
    while :; do
        run actstep module
        p99=$(field rtt_p99_us)
        m=$(field missing) e=$(field errors) l=$(field late)
        # a run that printed no figures is not sustained either
        bad=$((${m:-1} + ${e:-0} + ${l:-0}))
        echo "  actstep $STEP_RATE/s: p99 ${p99:--} us, $bad missing," \
            "late or errors" >&2
        if [ "$bad" -ne 0 ] || [ -z "$p99" ] \
            || [ "$p99" -ge $((ACK_SUSTAIN_MS * 1000)) ]; then
            return 0
        fi
        OPEN_MAX=$STEP_RATE
        STEP_RATE=$((STEP_RATE + ACK_STEP))
    done
}

# a field of the last load generator's output line
field() {
    tr ' ' '\n' < "$PREFIX/out" | sed -n "s/^$1=//p"
}

# the "full" cases: fill the store until the zone evicts, for FILL_SECS
# or with FILL_ACTIONS actions (closed loop, 16 panels x 16 in flight)
fill() {
    local t0 t1 lim="--duration $FILL_SECS"
    if [ -n "$FILL_ACTIONS" ]; then
        lim="--duration 100000 --max-actions $FILL_ACTIONS"
    fi
    t0=$(date +%s)
    # shellcheck disable=SC2086
    taskset -c 1 "$LOAD" --quiet $lim --warmup 0 --sdk-port "$SDK_PORT" \
        --panel-url "$1" --mode actions --panels 16 --inflight 16 \
        --sdk-conns 1 > "$PREFIX/fill" 2>&1 || true
    t1=$(date +%s)
    echo "  filled: $(tr ' ' '\n' < "$PREFIX/fill" | sed -n 's/^acks=//p')" \
        "actions in $((t1 - t0)) s" >&2
}

# $1 / $2 with two decimals, "-" unless both are positive
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0)
        printf "%.2f", a / b; else print "-" }'
}

median() {
    tr ' ' '\n' | grep -v '^-*$' | sort -g \
        | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)];
                                    else print "-" }'
}

FILL_SECS=${FILL_SECS:-8}
TIMELINE=${TIMELINE:-}
TL_N=0
[ -z "$TIMELINE" ] || mkdir -p "$TIMELINE"
FILL_ACTIONS=${FILL_ACTIONS:-}
QUIET=${QUIET:-}
QUIET_MAX=${QUIET_MAX:-120}
ACK_RATE=${ACK_RATE:-}
ACK_RATE_REDIS=${ACK_RATE_REDIS:-}
ACK_MAX=${ACK_MAX:-}
ACK_STEP=${ACK_STEP:-50000}
ACK_SUSTAIN_MS=${ACK_SUSTAIN_MS:-20}
FIX_RATE=${FIX_RATE:-100000}
FIX_RATE_REDIS=${FIX_RATE_REDIS:-20000}
REDIS_CLI=${REDIS_CLI:-redis-cli}
REDIS_PORT=$(port)

# the private redis-server, (re)started when it does not answer
redis_up() {
    "$REDIS_CLI" -p "$REDIS_PORT" ping > /dev/null 2>&1 && return 0
    if [ -n "$REDIS_PID" ]; then
        echo "redis-server on $REDIS_PORT is gone, restarting it" >&2
        kill "$REDIS_PID" 2>/dev/null || true
    fi
    "${REDIS_SERVER:-redis-server}" --port "$REDIS_PORT" --save '' \
        --appendonly no --bind 127.0.0.1 --enable-debug-command local \
        >> "$PREFIX/redis.log" 2>&1 &
    REDIS_PID=$!
    prio "$REDIS_PID"
    for _ in $(seq 1 50); do
        "$REDIS_CLI" -p "$REDIS_PORT" ping > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "redis-server does not answer:" >&2
    cat "$PREFIX/redis.log" >&2
    return 1
}

if command -v "${REDIS_SERVER:-redis-server}" > /dev/null; then
    redis_up
fi

plan=()
for c in $CASES; do
    case $c in
    fan1) plan+=("fan1:relay module proxy") ;;
    fan100 | fan1000)
        servers="relay module"
        [ -n "$OLD_MODULE" ] && servers="$servers old"
        [ -f "$NCHAN" ] && servers="$servers nchan"
        plan+=("$c:$servers")
        ;;
    sweep)
        servers="relay module"
        [ -n "$OLD_MODULE" ] && servers="$servers old"
        plan+=("sweep100:$servers" "sweep300:$servers" "sweep3000:$servers")
        ;;
    idle) plan+=("idle:relay module proxy") ;;
    act)
        servers="proxy module full"
        [ -n "$OLD_MODULE" ] && servers="$servers old oldfull"
        [ -n "$REDIS_PID" ] && servers="$servers redis redisfull"
        [ -n "$REDIS_PID" ] && [ -n "$OLD_MODULE" ] \
            && servers="$servers oldredis"
        plan+=("act:$servers")
        ;;
    actfix)
        plan+=("actfix:proxy module full")
        [ -n "$REDIS_PID" ] && plan+=("actfixr:proxy redis redisfull")
        ;;
    ackrate)
        ACKRATE=1
        ACK_SERVERS="module proxy"
        [ -n "$REDIS_PID" ] && ACK_SERVERS="$ACK_SERVERS redis"
        ACK_OPEN=$ACK_SERVERS
        [ -n "$REDIS_PID" ] && ACK_OPEN="$ACK_SERVERS redis50"
        ACK_OPEN=${OPEN_SERVERS:-$ACK_OPEN}
        plan+=("actopen:$ACK_OPEN")
        ;;
    esac
done

case " $CASES " in
*" fan100 "* | *" fan1000 "*)
    [ -f "$NCHAN" ] || echo "nchan: $NCHAN not found, fan100 and fan1000" \
        "run without it (scripts/deps.sh --bench installs Debian's" \
        "libnginx-mod-nchan)" >&2
    ;;
esac

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
DAMON_RUNNING=$(damon_on)
if [ -n "$DAMON_RUNNING" ] && [ "${DAMON:-}" = pause ]; then
    for f in $DAMON_RUNNING; do
        if ! echo off 2>/dev/null > "$f"; then
            echo "DAMON=pause: cannot write $f (needs root)" >&2
            exit 1
        fi
        DAMON_PAUSED="$DAMON_PAUSED $f"
    done
    echo "kernel DAMON monitors: $(echo $DAMON_PAUSED | wc -w) paused for" \
        "the run (DAMON=pause)"
else
    echo "kernel DAMON monitors: $(echo $DAMON_RUNNING | wc -w) running"
fi
echo "per run: 2 s warmup, $((SECS - 1)) s of server CPU measured;" \
    "$REPS interleaved repetitions"

# ackrate, first: the maximum rate, closed loop, REPS interleaved runs
# (not when both open-loop rates are given)
if [ -n "${ACKRATE:-}" ] && { [ -z "$ACK_RATE" ] \
    || { [ -n "$REDIS_PID" ] && [ -z "$ACK_RATE_REDIS" ]; }; }; then
    for _ in $(seq 1 "$REPS"); do
        for s in $ACK_SERVERS; do
            run actmax "$s"
        done
    done
    for s in $ACK_SERVERS; do
        o=$(echo "${RES[actmax/$s/ops]}" | median)
        u=$(echo "${RES[actmax/$s]}" | median)
        b=$(awk -v o="$o" -v u="$u" 'BEGIN { printf "%.0f", o * u / 1e4 }')
        echo "actmax $s: median $o actions/s, $u us CPU/action (server" \
            "$b % busy)"
    done
    if [ -z "$ACK_RATE" ] && [ "$ACK_MAX" = open ]; then
        maxes=""
        for _ in $(seq 1 "$REPS"); do
            open_max
            maxes="$maxes $OPEN_MAX"
        done
        m=$(echo "$maxes" | median)
        echo "actstep module: highest sustained open-loop rate$maxes/s:" \
            "median $m/s (closed loop: $(echo "${RES[actmax/module/ops]}" \
            | median)/s)"
        if [ "$m" -eq 0 ]; then
            echo "ratio.sh: the module sustained not even $ACK_STEP" \
                "actions/s in the open loop; give a smaller ACK_STEP" >&2
            exit 1
        fi
        ACK_RATE=$((m / 2))
    fi
    if [ -z "$ACK_RATE" ]; then
        ACK_RATE=$(echo "${RES[actmax/module/ops]}" | median \
            | awk '{ printf "%.0f", $1 / 2 }')
    fi
    if [ -n "$REDIS_PID" ] && [ -z "$ACK_RATE_REDIS" ]; then
        ACK_RATE_REDIS=$(echo "${RES[actmax/redis/ops]}" | median \
            | awk '{ printf "%.0f", $1 / 2 }')
    fi
    echo "open loop: $ACK_RATE actions/s offered" \
        "(redis50: ${ACK_RATE_REDIS:--})"
fi

for rep in $(seq 1 "$REPS"); do
    for p in "${plan[@]}"; do
        for s in ${p#*:}; do
            run "${p%%:*}" "$s"
        done
    done
done

echo
printf '%-10s %-8s %14s %12s %10s %6s\n' case server "us_cpu/op" "ops/s" \
    "x floor" "gen %"
busy=""
for p in "${plan[@]}"; do
    c=${p%%:*}
    [ "$c" = idle ] && continue
    floor=relay
    [ "${c#act}" != "$c" ] && floor=proxy
    f=$(echo "${RES[$c/$floor]:-}" | median)
    for s in ${p#*:}; do
        m=$(echo "${RES[$c/$s]}" | median)
        o=$(echo "${RES[$c/$s/ops]}" | median)
        g=$(echo "${RES[$c/$s/gen]:-}" | median)
        x=$(ratio "$m" "$f")
        printf '%-10s %-8s %14s %12s %10s %6s\n' "$c" "$s" "$m" "$o" "$x" "$g"
        if awk -v g="$g" -v m="$GEN_MAX" 'BEGIN { exit !(g + 0 > m) }'; then
            busy="$busy $c/$s"
        fi
    done
done
# gen %: the load generator's share of its core (medians); above GEN_MAX
# the figures of that run measure the generator's own queueing as well
if [ -n "$busy" ]; then
    echo "load generator above $GEN_MAX % of its core in:$busy" \
        "(its rate, not only the server, bounds those runs)"
fi

# memory per idle connection, against the relay's
for p in "${plan[@]}"; do
    [ "${p%%:*}" = idle ] || continue
    echo
    echo "idle: KiB per idle connection ($IDLE_N SDK connections +" \
        "$IDLE_N panels, $IDLE_SETTLE s after the last opened), medians"
    printf '%-10s %-8s %8s %8s %8s %10s %10s %8s\n' case server "SDK Rss" \
        "panel" "2nd half" "conn. Rss" "conn. Pss" "x floor"
    f=$(echo "${RES[idle/relay]:-}" | median)
    for s in ${p#*:}; do
        m=$(echo "${RES[idle/$s]:-}" | median)
        x=$(ratio "$m" "$f")
        printf '%-10s %-8s %8s %8s %8s %10s %10s %8s\n' idle "$s" \
            "$(echo "${RES[idle/$s/sdk]:-}" | median)" \
            "$(echo "${RES[idle/$s/panel]:-}" | median)" \
            "$(echo "${RES[idle/$s/half]:-}" | median)" "$m" \
            "$(echo "${RES[idle/$s/pss]:-}" | median)" "$x"
    done
    echo "(proxy_pass: each panel with its upstream connection)"
done

# the fixed-rate cases: was the offered rate sustained (else their CPU
# per action compares a server that fell behind)
for p in "${plan[@]}"; do
    c=${p%%:*}
    [ "$c" = actfix ] || [ "$c" = actfixr ] || continue
    rate=$FIX_RATE
    [ "$c" = actfixr ] && rate=$FIX_RATE_REDIS
    for s in ${p#*:}; do
        sums=""
        for f in missing errors late; do
            sums="$sums/$(echo "${RES[$c/$s/$f]}" | awk '{ s = 0
                for (i = 1; i <= NF; i++) s += $i; print s }')"
        done
        echo "$c $s at $rate/s offered: round trip p99" \
            "$(echo "${RES[$c/$s/rtt_p99_us]}" | median) us (median)," \
            "missing/errors/late ${sums#/} (summed)"
    done
done

if [ -n "${ACKRATE:-}" ]; then
    echo
    echo "open loop (actopen): round trip from the scheduled send time, us;" \
        "medians; missing/errors/late summed over the runs"
    echo "(lag: how late the load generator sent; sent_p99: p99 of the" \
        "round trip from the actual write)"
    printf '%-8s %7s %7s %6s %6s %6s %6s %7s %8s %6s %5s %9s %s\n' server \
        offered acks/s p50 p99 p99.9 max lag_p99 sent_p99 cpu/op gen% \
        miss/err/lt "p99<1ms"
    for s in $ACK_OPEN; do
        rate=$ACK_RATE
        [ "$s" = redis50 ] && rate=$ACK_RATE_REDIS
        declare -A M=()
        for f in rtt_p50_us rtt_p99_us rtt_p999_us rtt_max_us lag_p99_us \
            sent_rtt_p99_us; do
            M[$f]=$(echo "${RES[actopen/$s/$f]}" | median)
        done
        bad=$(echo "${RES[actopen/$s/missing]} ${RES[actopen/$s/errors]}" \
            "${RES[actopen/$s/late]}" | awk '{ s = 0; for (i = 1; i <= NF; i++)
                s += $i; print s }')
        sums=""
        for f in missing errors late; do
            sums="$sums/$(echo "${RES[actopen/$s/$f]}" | awk '{ s = 0
                for (i = 1; i <= NF; i++) s += $i; print s }')"
        done
        ok=$(awk -v p="${M[rtt_p99_us]}" -v b="$bad" 'BEGIN {
            print (p + 0 < 1000 && b == 0) ? "yes" : "no" }')
        printf '%-8s %7s %7s %6s %6s %6s %6s %7s %8s %6s %5s %9s %s\n' "$s" \
            "$rate" "$(echo "${RES[actopen/$s/ops]}" | median)" \
            "${M[rtt_p50_us]}" "${M[rtt_p99_us]}" "${M[rtt_p999_us]}" \
            "${M[rtt_max_us]}" "${M[lag_p99_us]}" "${M[sent_rtt_p99_us]}" \
            "$(echo "${RES[actopen/$s]}" | median)" \
            "$(echo "${RES[actopen/$s/gen]:-}" | median)" "${sums#/}" "$ok"
    done
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
