#!/usr/bin/env bash
# Agent benchmark: builds bench/agent/amon-load*.c against the protocol
# core, runs nginx with the module in its own prefix (worker_processes 1
# and 2) and, for comparison, nginx's own WebSocket proxying in front of
# one fake SDK (the pass-through ceiling).  Prints one result line per
# case and a summary table.
#
#   BENCH_SECONDS  measured seconds per case (default 5), after 1 s warmup
#   BENCH_PANELS   panels for the fan-out cases (default 100)
#   NGINX          nginx binary (default /usr/sbin/nginx)
#   MODULE         the module (default build/ngx_http_amonitor_module.so)
set -eu

cd "$(dirname "$0")/../.."
ROOT=$(pwd)

NGINX=${NGINX:-/usr/sbin/nginx}
MODULE=${MODULE:-$ROOT/build/ngx_http_amonitor_module.so}
SECONDS_PER_CASE=${BENCH_SECONDS:-5}
PANELS=${BENCH_PANELS:-100}
CC=${CC:-cc}
LOAD=$ROOT/build/bench/amon-load

if [ ! -f build/libamon_core.a ] || [ ! -f build/libamon_posix.a ] \
    || [ ! -f "$MODULE" ]; then
    echo "run.sh: build the core and the module first: make core module" >&2
    exit 2
fi

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_build_load

PREFIX=$(mktemp -d /tmp/amon-bench-XXXXXX)
chmod 755 "$PREFIX"
NGINX_PID=

stop_nginx() {
    if [ -n "$NGINX_PID" ] && kill -0 "$NGINX_PID" 2>/dev/null; then
        kill -QUIT "$NGINX_PID"
        for _ in $(seq 1 100); do
            kill -0 "$NGINX_PID" 2>/dev/null || break
            sleep 0.1
        done
    fi
    NGINX_PID=
}

cleanup() {
    stop_nginx
    rm -rf "$PREFIX"
}
trap cleanup EXIT

# a free port (nothing listens on it now)
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

PANEL_PORT=$(port)
PROXY_PORT=$(port)
SDK_PORT=$(port)
while [ "$PROXY_PORT" = "$PANEL_PORT" ]; do PROXY_PORT=$(port); done
while [ "$SDK_PORT" = "$PANEL_PORT" ] || [ "$SDK_PORT" = "$PROXY_PORT" ]; do
    SDK_PORT=$(port)
done

# start nginx: $1 = workers, $2 = with the module (1) or the plain proxy
start_nginx() {
    local workers=$1 module=$2 load=""

    if [ "$module" = 1 ]; then
        load="load_module $MODULE;"
    fi

    cat > "$PREFIX/nginx.conf" <<EOF
$load
worker_processes $workers;
worker_rlimit_nofile 65536;
error_log $PREFIX/error.log warn;
pid $PREFIX/nginx.pid;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path $PREFIX/client_body_temp;
    proxy_temp_path $PREFIX/proxy_temp;
    fastcgi_temp_path $PREFIX/fastcgi_temp;
    uwsgi_temp_path $PREFIX/uwsgi_temp;
    scgi_temp_path $PREFIX/scgi_temp;
EOF
    if [ "$module" = 1 ]; then
        cat >> "$PREFIX/nginx.conf" <<EOF
    amonitor_zone amon 16m;
    amonitor_target bench-0 ws://127.0.0.1:$SDK_PORT/;
    amonitor_reconnect 50ms 200ms;
    amonitor_ack_timeout 10s;
    server {
        listen 127.0.0.1:$PANEL_PORT reuseport;
        location = /ws/panel { amonitor_panel on; }
        location = /status { amonitor_status; }
    }
}
EOF
    else
        cat >> "$PREFIX/nginx.conf" <<EOF
    server {
        listen 127.0.0.1:$PROXY_PORT reuseport;
        location = /ws/panel {
            proxy_pass http://127.0.0.1:$SDK_PORT/;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }
    }
}
EOF
    fi

    rm -f "$PREFIX/nginx.pid"
    "$NGINX" -p "$PREFIX/" -c "$PREFIX/nginx.conf" -e "$PREFIX/error.log"
    for _ in $(seq 1 50); do
        [ -s "$PREFIX/nginx.pid" ] && break
        sleep 0.1
    done
    NGINX_PID=$(cat "$PREFIX/nginx.pid")
}

dropped() {
    curl -s "http://127.0.0.1:$PANEL_PORT/status" \
        | sed -n 's/.*"dropped":\([0-9]*\).*/\1/p'
}

RESULTS=()

# run one case: label, then amon-load arguments
run_case() {
    local label=$1 out before=0
    shift
    if [ -n "${MODULE_ON:-}" ]; then
        before=$(dropped)
    fi
    out=$("$LOAD" --quiet --duration "$SECONDS_PER_CASE" --warmup 1 \
        --sdk-port "$SDK_PORT" "$@") || {
        echo "run.sh: $label failed" >&2
        return 1
    }
    if [ -n "${MODULE_ON:-}" ]; then
        out="$out dropped=$(( $(dropped) - before ))"
    fi
    echo "$label: $out"
    RESULTS+=("$label|$out")
}

module_url="ws://127.0.0.1:$PANEL_PORT/ws/panel"
proxy_url="ws://127.0.0.1:$PROXY_PORT/ws/panel"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo \
    | sed 's/.*: //'), $("$NGINX" -v 2>&1 | sed 's/.*: //')"
echo "per case: 1 s warmup, $SECONDS_PER_CASE s measured"
echo

for w in 1 2; do
    MODULE_ON=1
    start_nginx "$w" 1
    run_case "module w$w fanout 1 panel" --panel-url "$module_url" --mode fanout --panels 1 \
        --sdk-conns "$w"
    run_case "module w$w fanout 1 panel 1000/s" --panel-url "$module_url" \
        --mode fanout --panels 1 --sdk-conns "$w" --rate 1000
    run_case "module w$w fanout $PANELS panels" --panel-url "$module_url" --mode fanout \
        --panels "$PANELS" --sdk-conns "$w"
    run_case "module w$w fanout $PANELS panels 1000/s" --panel-url "$module_url" --mode fanout \
        --panels "$PANELS" --sdk-conns "$w" --rate 1000
    run_case "module w$w actions 1 panel x1" --panel-url "$module_url" --mode actions --panels 1 \
        --inflight 1 --sdk-conns "$w"
    run_case "module w$w actions 16 panels x16" --panel-url "$module_url" --mode actions \
        --panels 16 --inflight 16 --sdk-conns "$w"
    stop_nginx
    MODULE_ON=
done

for w in 1 2; do
    start_nginx "$w" 0
    run_case "proxy w$w fanout 1 panel" --panel-url "$proxy_url" \
        --mode fanout --panels 1 --sdk-conns 1
    run_case "proxy w$w fanout 1 panel 1000/s" --panel-url "$proxy_url" \
        --mode fanout --panels 1 --sdk-conns 1 --rate 1000
    run_case "proxy w$w actions 1 panel x1" --panel-url "$proxy_url" \
        --mode actions --panels 1 --inflight 1 --sdk-conns 1
    run_case "proxy w$w actions 16 panels x16" --panel-url "$proxy_url" \
        --mode actions --panels 16 --inflight 16 --sdk-conns 16
    stop_nginx
done

echo
printf '%-36s %12s %8s %10s %10s %9s\n' case "msgs|acts/s" loss% p50_us p99_us dropped
for r in "${RESULTS[@]}"; do
    label=${r%%|*}
    line=${r#*|}
    get() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
    if echo "$line" | grep -q mode=fanout; then
        printf '%-36s %12s %8s %10s %10s %9s\n' "$label" \
            "$(get delivered_per_s)" "$(get loss_pct)" "$(get lat_p50_us)" \
            "$(get lat_p99_us)" "$(get dropped)"
    else
        printf '%-36s %12s %8s %10s %10s %9s\n' "$label" \
            "$(get actions_per_s)" "-" "$(get rtt_p50_us)" \
            "$(get rtt_p99_us)" "$(get dropped)"
    fi
done
