#!/usr/bin/env bash
# Run an AMonitor demo: nginx with the module (prefix build/demo, port
# 8080), the example SDKs of a config, and a panel in the foreground.
# nginx and the SDKs run in sessions of their own (setsid), so that the
# terminal's Ctrl-C reaches only this script and the panel; the script
# then stops nginx gracefully (nginx -s quit: SDKs get close 1001, panels
# 1012) and the SDKs after it, and nothing else.  The same happens on
# SIGHUP, SIGTERM, at the end of DEMO_DURATION and when the script fails.
# A demo refuses to start, before it writes anything, when one of its
# ports is in use or a demo of the same DEMO_PREFIX still runs.  Nothing
# outside the repository is written.
#
#   examples/demo.sh CONFIG.json [sim|bench|watch]
#
# Environment: SDK_COUNT, SDK_START_PORT, SDK_HEARTBEAT_INTERVAL,
# SDK_EVENT_INTERVAL, AGENT_PORT, AGENT_WORKERS (see gen-nginx-conf.py),
# ACTION_NAME (the action panels send, default restart), BENCH_RATE
# (bench: actions per second), DEMO_DURATION (seconds; default: until
# Ctrl-C), DEMO_PREFIX (default build/demo), NGINX (default
# /usr/sbin/nginx), NO_BUILD=1 to skip "make".

set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=$ROOT/build
PREFIX=${DEMO_PREFIX:-$BUILD/demo}
NGINX=${NGINX:-/usr/sbin/nginx}
PYTHON=${PYTHON:-python3}
MODULE=$BUILD/ngx_http_amonitor_module.so
CLI=$BUILD/amonitor
SDK=$BUILD/sdk/amonitor-sdk-example

CONFIG=${1:?usage: demo.sh CONFIG.json [sim|bench|watch]}
PANEL=${2:-}

SDK_PIDS=()
NGINX_PID=
PANEL_PID=
TIMER_PID=
STAGE=
STARTED=

say() {
    printf 'demo: %s\n' "$*" >&2
}

# wait up to $2 tenths of a second for pid $1 to exit
wait_gone() {
    local i=0
    while kill -0 "$1" 2>/dev/null && [ "$i" -lt "$2" ]; do
        sleep 0.1
        i=$((i + 1))
    done
    ! kill -0 "$1" 2>/dev/null
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM HUP

    if [ -n "$TIMER_PID" ]; then
        kill -TERM "$TIMER_PID" 2>/dev/null || true
    fi

    if [ -n "$PANEL_PID" ] && kill -0 "$PANEL_PID" 2>/dev/null; then
        kill -INT "$PANEL_PID" 2>/dev/null || true
        wait_gone "$PANEL_PID" 30 || kill -KILL "$PANEL_PID" 2>/dev/null || true
    fi

    # nginx first, gracefully (its SDK connections close with 1001, its
    # panels with 1012), while the SDKs still answer
    if [ -n "$NGINX_PID" ] && kill -0 "$NGINX_PID" 2>/dev/null; then
        say "stopping nginx (pid $NGINX_PID, nginx -s quit)"
        kill -QUIT "$NGINX_PID" 2>/dev/null || true
        if ! wait_gone "$NGINX_PID" 50; then
            kill -TERM "$NGINX_PID" 2>/dev/null || true
            wait_gone "$NGINX_PID" 30 || kill -KILL "$NGINX_PID" 2>/dev/null \
                || true
        fi
    fi

    if [ "${#SDK_PIDS[@]}" -gt 0 ]; then
        say "stopping ${#SDK_PIDS[@]} SDK(s)"
        for pid in "${SDK_PIDS[@]}"; do
            kill -TERM "$pid" 2>/dev/null || true
        done
        for pid in "${SDK_PIDS[@]}"; do
            wait_gone "$pid" 30 || kill -KILL "$pid" 2>/dev/null || true
        done
    fi

    wait 2>/dev/null || true
    if [ -n "$STAGE" ]; then
        rm -rf "$STAGE"
    fi
    if [ -n "$STARTED" ]; then
        say "logs are in $PREFIX"
    fi
    exit "$rc"
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 129' HUP
trap 'exit 143' TERM

port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# start "$@" in the background in a session of its own: the terminal's
# SIGINT and SIGHUP do not reach it, this script stops it (setsid execs
# the command in place, so $! is its pid); fd 9 (the demo's lock) stays
# here
run_detached() {
    setsid "$@" 9>&- &
}

# --- refuse before anything is written ------------------------------------

# the configuration goes to a scratch directory first: its ports are
# checked before the demo directory is touched
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/amon-demo.XXXXXX")

user_rate=${BENCH_RATE:-}
settings=$("$PYTHON" "$HERE/gen-nginx-conf.py" --config "$CONFIG" \
    --module "$MODULE" --out "$STAGE/nginx.conf" \
    --sdk-list "$STAGE/sdks.txt")
eval "$settings"

PANEL=${PANEL:-$PANEL_MODE}
BENCH_RATE=${user_rate:-$BENCH_RATE}
URL="ws://127.0.0.1:$AGENT_PORT$PANEL_PATH"

case "$PANEL" in
sim | bench | watch) ;;
*)
    say "unknown panel \"$PANEL\" (sim, bench, watch)"
    exit 2
    ;;
esac

# one demo per directory: the lock is held as long as this script runs;
# a demo refused below takes away the directory and lock it made
made=""
[ -d "$PREFIX" ] || made="dir"
[ -e "$PREFIX/demo.lock" ] || made="$made lock"
refuse() {
    say "$@"
    case " $made " in *" lock "*) rm -f "$PREFIX/demo.lock" ;; esac
    case " $made " in *" dir "*) rmdir "$PREFIX" 2>/dev/null || true ;; esac
    exit 1
}
mkdir -p "$PREFIX"
exec 9>"$PREFIX/demo.lock"
if ! flock -n 9; then
    say "a demo of $PREFIX is running (it holds $PREFIX/demo.lock):" \
        "stop it (Ctrl-C), or set DEMO_PREFIX; nothing was changed"
    exit 1
fi
# ... and an nginx left running by a demo that was killed
if [ -s "$PREFIX/nginx.pid" ]; then
    pid=$(cat "$PREFIX/nginx.pid" 2>/dev/null || true)
    case "$pid" in
    *[!0-9]* | '') ;;
    *)
        if kill -0 "$pid" 2>/dev/null \
            && grep -q nginx "/proc/$pid/cmdline" 2>/dev/null
        then
            refuse "nginx of an earlier demo of $PREFIX still runs (pid $pid," \
                "$PREFIX/nginx.pid): stop it (kill -QUIT $pid), or set" \
                "DEMO_PREFIX; nothing was changed"
        fi
        ;;
    esac
fi

if port_busy "$AGENT_PORT"; then
    refuse "port $AGENT_PORT is in use: stop what listens there, or set" \
        "AGENT_PORT; nothing was changed"
fi
while read -r id port _; do
    if port_busy "$port"; then
        refuse "port $port (for $id) is in use: stop what listens there, or" \
            "set SDK_START_PORT; nothing was changed"
    fi
done <"$STAGE/sdks.txt"

# --- build what is missing --------------------------------------------

if [ "${NO_BUILD:-}" != 1 ]; then
    say "building (make module tools build-sdk)"
    make -s -C "$ROOT" module tools build-sdk >&2 9>&-
fi

for f in "$MODULE" "$CLI" "$SDK"; do
    [ -x "$f" ] || [ -f "$f" ] || { say "missing $f"; exit 1; }
done

[ -x "$NGINX" ] || { say "no nginx at $NGINX (make deps)"; exit 1; }

# --- configuration -----------------------------------------------------

STARTED=1
mkdir -p "$PREFIX/temp" "$PREFIX/logs"
rm -f "$PREFIX/error.log" "$PREFIX"/logs/sdk-*.log "$PREFIX/nginx.pid"
cp "$STAGE/nginx.conf" "$STAGE/sdks.txt" "$PREFIX/"

# wss:// SDKs: throwaway certificates, new ones every run
sdk_tls=()
scheme=ws
if [ "$TLS" = 1 ]; then
    bash "$ROOT/scripts/tls-certs.sh" "$PREFIX/certs" >/dev/null
    sdk_tls=(--tls-cert "$PREFIX/certs/sdk.crt"
        --tls-key "$PREFIX/certs/sdk.key"
        --tls-client-ca "$PREFIX/certs/ca.crt")
    scheme=wss
    say "TLS: SDKs serve wss:// and require the agent's certificate" \
        "(certificates in $PREFIX/certs)"
fi

if ! "$NGINX" -t -q -p "$PREFIX/" -c nginx.conf -e error.log; then
    say "nginx rejected $PREFIX/nginx.conf (see above)"
    exit 1
fi

# --- the SDKs ----------------------------------------------------------

ids=
urls=
count=0
while read -r id port hb ev token; do
    args=(--port "$port" --target-id "$id" --interval "$hb" ${sdk_tls[@]+"${sdk_tls[@]}"})
    if [ "$ev" != 0 ]; then
        args+=(--event-interval "$ev")
    fi
    if [ "$token" != - ]; then
        args+=(--token "$token")
    fi

    run_detached "$SDK" "${args[@]}" >"$PREFIX/logs/sdk-$id.log" 2>&1
    SDK_PIDS+=($!)

    ids=${ids:+$ids,}$id
    urls=${urls:+$urls,}$scheme://127.0.0.1:$port
    count=$((count + 1))
done <"$PREFIX/sdks.txt"

say "started $count SDK(s) (pids ${SDK_PIDS[*]}), logs in $PREFIX/logs/"

# nginx dials the SDKs at once: wait (up to 5 s) until each one listens,
# so the start logs no "connection refused" (ss, without connecting)
if command -v ss >/dev/null 2>&1; then
    while read -r id port _; do
        for _ in $(seq 1 50); do
            ss -Htln "sport = :$port" | grep -q . && break
            sleep 0.1
        done
    done <"$PREFIX/sdks.txt"
fi

# --- nginx -------------------------------------------------------------

run_detached "$NGINX" -p "$PREFIX/" -c nginx.conf -e error.log
NGINX_PID=$!

# ready when /healthz answers and every worker reached every SDK
"$PYTHON" - "$AGENT_PORT" "$count" "$NGINX_PID" "$PREFIX/nginx.conf" \
    <<'EOF' || exit 1
import json, os, re, sys, time, urllib.request
port, count, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
m = re.search(r"^\s*worker_processes\s+(\d+);", open(sys.argv[4]).read(), re.M)
workers = int(m.group(1)) if m else 1
base = "http://127.0.0.1:%s" % port
deadline = time.monotonic() + 15
st = None
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.stderr.write("demo: nginx exited; see error.log\n")
        sys.exit(1)
    try:
        urllib.request.urlopen(base + "/healthz", timeout=1).read()
        st = json.loads(urllib.request.urlopen(base + "/amonitor/status",
                                               timeout=1).read())
        up = sum(1 for t in st["targets"] if t["state"] == "up")
        # the counter is shared: every worker's connection to every SDK
        if up == count and st["upstreams_open"] >= count * workers:
            sys.stderr.write("demo: agent up, %d target(s) connected, "
                             "%d upstream connection(s) in all workers\n"
                             % (up, st["upstreams_open"]))
            sys.exit(0)
    except (OSError, ValueError, KeyError):
        pass
    time.sleep(0.2)
sys.stderr.write("demo: not every target is up yet; going on (%s)\n"
                 % (st and [t["id"] for t in st["targets"]
                            if t["state"] != "up"]))
EOF

say "nginx pid $NGINX_PID, panel endpoint $URL"
say "status: http://127.0.0.1:$AGENT_PORT/amonitor/status"
say "dashboard: http://127.0.0.1:$AGENT_PORT/amonitor/ (open it in a browser)"
say "metrics: http://127.0.0.1:$AGENT_PORT/amonitor/metrics"

# --- the panel, in the foreground ---------------------------------------

panel_args=(--url "$URL")
if [ -n "${DEMO_DURATION:-}" ]; then
    panel_args+=(--duration "$DEMO_DURATION")
fi

case "$PANEL" in
sim)
    say "panel simulator: Ctrl-C to stop everything"
    "$CLI" sim "${panel_args[@]}" --target-id "$ids" --target-url "$urls" \
        --action "${ACTION_NAME:-restart}" 9>&- &
    ;;
bench)
    say "stress: $BENCH_RATE actions/s over $count target(s); Ctrl-C to stop"
    "$CLI" bench "${panel_args[@]}" --target-id "$ids" \
        --rate "$BENCH_RATE" --action "${ACTION_NAME:-restart}" 9>&- &
    ;;
watch)
    say "watch: Ctrl-C to stop everything"
    "$CLI" watch --url "$URL" --target-id "$ids" 9>&- &
    ;;
esac

PANEL_PID=$!

# watch has no --duration: the script ends it, with SIGINT as Ctrl-C does
if [ "$PANEL" = watch ] && [ -n "${DEMO_DURATION:-}" ]; then
    sleep "$DEMO_DURATION" 9>&- &
    TIMER_PID=$!
fi

# the panel runs in the background so that Ctrl-C reaches this script's
# trap at once; wait returns when it exits or a signal arrives
rc=0
if [ -n "$TIMER_PID" ]; then
    wait -n "$PANEL_PID" "$TIMER_PID" || rc=$?
    if kill -0 "$PANEL_PID" 2>/dev/null; then
        say "DEMO_DURATION ($DEMO_DURATION s) is over"
        kill -INT "$PANEL_PID" 2>/dev/null || true
        rc=0
        wait "$PANEL_PID" || rc=$?
    fi
else
    wait "$PANEL_PID" || rc=$?
fi
PANEL_PID=
exit "$rc"
