#!/usr/bin/env bash
# The cost of TLS on the action path: the worker's CPU time per action
# with the panel and the target each over ws:// or wss://, at a fixed
# offered rate.  One nginx worker on CPU 0 (worker_cpu_affinity); the
# example C SDK (build/sdk/amonitor-sdk-example) and the panel
# (`amonitor bench`, one panel, --rate RATE) on CPU 1.  Certificates are
# made for the run (scripts/tls-certs.sh).  With OLD_MODULE, each run of
# MODULE is paired with one of OLD_MODULE, interleaved.
#
#   make module build-sdk tools
#   bash bench/agent/tls.sh                       # about 2 minutes
#   RATE=40000 REPS=2 OLD_MODULE=/path/old.so bash bench/agent/tls.sh
#
# Prints one line per run, then the median µs of CPU per action for each
# case: "panel/target build median (runs)".

set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NGINX=${NGINX:-/usr/sbin/nginx}
MODULE=${MODULE:-$ROOT/build/ngx_http_amonitor_module.so}
OLD_MODULE=${OLD_MODULE:-}
SDK=$ROOT/build/sdk/amonitor-sdk-example
CLI=$ROOT/build/amonitor
RATE=${RATE:-20000}
SECS=${SECS:-6}
REPS=${REPS:-3}
CASES=${CASES:-"ws/ws ws/wss wss/ws wss/wss"}
HZ=$(getconf CLK_TCK)

for f in "$MODULE" "$SDK" "$CLI"; do
    [ -e "$f" ] || { echo "tls.sh: $f is missing (make module build-sdk" \
        "tools)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/amon-tls-bench.XXXXXX)
SDK_PID=
cleanup() {
    [ -f "$WORK/nginx.pid" ] && kill -QUIT "$(cat "$WORK/nginx.pid")" \
        2>/dev/null || true
    [ -n "$SDK_PID" ] && kill "$SDK_PID" 2>/dev/null || true
    sleep 0.3
    rm -rf "$WORK"
}
trap cleanup EXIT

bash "$ROOT/scripts/tls-certs.sh" "$WORK/certs" > /dev/null
CERTS=$WORK/certs

port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# one run: $1 module, $2 panel scheme, $3 target scheme; prints
# "<µs of worker CPU per action> <acks/s>"
run() {
    local mod=$1 pan=$2 tgt=$3 hp sp tls="" target listen w t0 t1 out acks
    hp=$(port)
    sp=$(port)

    if [ "$tgt" = wss ]; then
        tls="--tls-cert $CERTS/sdk.crt --tls-key $CERTS/sdk.key"
        target="amonitor_ssl_trusted_certificate $CERTS/ca.crt;
    amonitor_target tb wss://127.0.0.1:$sp/;"
    else
        target="amonitor_target tb ws://127.0.0.1:$sp/;"
    fi
    # shellcheck disable=SC2086
    taskset -c 1 "$SDK" --port "$sp" --target-id tb --interval 5 --quiet \
        $tls > "$WORK/sdk.log" 2>&1 &
    SDK_PID=$!

    listen="listen 127.0.0.1:$hp;"
    if [ "$pan" = wss ]; then
        listen="listen 127.0.0.1:$hp ssl;
        ssl_certificate $CERTS/panel.crt;
        ssl_certificate_key $CERTS/panel.key;"
    fi

    cat > "$WORK/nginx.conf" <<EOF
load_module $mod;
worker_processes 1;
worker_cpu_affinity 01;
error_log $WORK/error.log warn;
pid $WORK/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/cbt;
    proxy_temp_path $WORK/pt;
    fastcgi_temp_path $WORK/ft;
    uwsgi_temp_path $WORK/ut;
    scgi_temp_path $WORK/st;
    amonitor_zone amon 64m;
    $target
    server {
        $listen
        location = /ws/panel { amonitor_panel on; }
    }
}
EOF
    sleep 0.3
    "$NGINX" -p "$WORK/" -c "$WORK/nginx.conf" -e "$WORK/error.log"
    sleep 1
    w=$(pgrep -P "$(cat "$WORK/nginx.pid")" | head -1)

    t0=$(cpu_ticks "$w")
    out=$(taskset -c 1 "$CLI" bench --url "$pan://127.0.0.1:$hp/ws/panel" \
        --ca "$CERTS/ca.crt" --target-id tb --rate "$RATE" \
        --duration "$SECS" 2>&1 | tail -1)
    t1=$(cpu_ticks "$w")

    kill -QUIT "$(cat "$WORK/nginx.pid")"
    kill "$SDK_PID" 2>/dev/null || true
    wait "$SDK_PID" 2>/dev/null || true
    SDK_PID=
    sleep 0.5
    rm -f "$WORK/nginx.pid"

    # the last line: "total ... acks N/s ..."
    acks=$(echo "$out" | sed -n 's/.* acks \([0-9.]*\)\/s.*/\1/p')
    awk -v t=$((t1 - t0)) -v hz="$HZ" -v s="$SECS" -v a="${acks:-0}" \
        'BEGIN { if (a > 0) printf "%.2f %.0f\n", t / hz / (a * s) * 1e6, a;
                 else print "- -" }'
}

declare -A RES
builds="new"
[ -n "$OLD_MODULE" ] && builds="old new"

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg);" \
    "$RATE actions/s for $SECS s, $REPS runs"
for rep in $(seq 1 "$REPS"); do
    for c in $CASES; do
        for b in $builds; do
            mod=$MODULE
            [ "$b" = old ] && mod=$OLD_MODULE
            r=$(run "$mod" "${c%/*}" "${c#*/}")
            echo "run $rep $c $b: ${r% *} us/action at ${r#* } acks/s"
            RES[$c/$b]="${RES[$c/$b]:-} ${r% *}"
        done
    done
done

echo "median µs of worker CPU per action (panel/target build: runs)"
for c in $CASES; do
    for b in $builds; do
        m=$(echo "${RES[$c/$b]}" | tr ' ' '\n' | grep -v '^-*$' | sort -g \
            | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)];
                                        else print "-" }')
        echo "$c $b $m (${RES[$c/$b]# })"
    done
done
