#!/usr/bin/env bash
# Workers killed under load: does any msg_id run twice?  One redis-server,
# three nginx instances with the module (2 workers each, amonitor_cluster,
# Redis as the dedupe store), three SDKs (kills-sdk.py: each logs every
# action it runs and acks after 0-300 ms), panels on every instance
# (kills-load.py: RATE new actions a second, retries of unanswered ids
# through another instance, repeats of answered ones).  Every KILL_EVERY
# to KILL_EVERY + 5 seconds a worker is killed with SIGKILL: two times in
# three the worker that holds a random target's lease, else any worker.
# Prints the kills, ids, answers by kind, ids run more than once, and the
# error logs' alert/crit/emerg lines.
#
#   bash bench/cluster/kills.sh                 # about 3 minutes
#   MODULE=/path/old.so bash bench/cluster/kills.sh
#   MODULE1=/path/old.so bash bench/cluster/kills.sh   # a mixed cluster
#
#   SECS (150), RATE (35), KILL_EVERY (15), BASE port (32000: Redis on
#   BASE+379, SDKs BASE+701.., instances BASE+81..), MODULE, MODULE1 (the
#   first instance's, default MODULE), NGINX, REDIS
set -eu

cd "$(dirname "$0")/../.."
ROOT=$(pwd)

NGINX=${NGINX:-/usr/sbin/nginx}
REDIS=${REDIS:-/usr/bin/redis-server}
MODULE=${MODULE:-$ROOT/build/ngx_http_amonitor_module.so}
MODULE1=${MODULE1:-$MODULE}
SECS=${SECS:-150}
RATE=${RATE:-35}
KILL_EVERY=${KILL_EVERY:-15}
BASE=${BASE:-32000}
RPORT=$((BASE + 379))
PY=${PY:-/usr/bin/python3} # Debian's, with python3-websockets

for f in "$MODULE" "$MODULE1" "$NGINX" "$REDIS"; do
    [ -e "$f" ] || { echo "kills.sh: $f not found (make module)" >&2; exit 1; }
done
"$PY" -c 'import websockets' 2> /dev/null || {
    echo "kills.sh: python3-websockets is needed" >&2
    exit 1
}

D=$(mktemp -d /tmp/amon-kills-XXXXXX)
PIDS=()

stop_all() {
    local i
    for i in 1 2 3; do
        [ -f "$D/i$i/nginx.pid" ] \
            && "$NGINX" -p "$D/i$i/" -c nginx.conf -s stop 2> /dev/null
    done
    for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null || true; done
    [ -f "$D/redis.pid" ] && kill "$(cat "$D/redis.pid")" 2> /dev/null
    return 0
}
trap stop_all EXIT

"$REDIS" --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --dir "$D" --logfile "$D/redis.log" \
    --pidfile "$D/redis.pid"

for n in 1 2 3; do
    id=f$(echo abc | cut -c$n)
    "$PY" "$ROOT/bench/cluster/kills-sdk.py" --port $((BASE + 700 + n)) \
        --id "$id" --log "$D/runs-$id.log" > "$D/sdk-$id.out" 2>&1 &
    PIDS+=($!)
done

for i in 1 2 3; do
    mkdir -p "$D/i$i"
    mod=$MODULE
    [ "$i" = 1 ] && mod=$MODULE1
    cat > "$D/i$i/nginx.conf" << C
load_module $mod;
worker_processes 2;
error_log $D/i$i/error.log info;
pid $D/i$i/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    amonitor_zone amonitor 4m;
    amonitor_redis 127.0.0.1:$RPORT prefix=kills: lease=2s timeout=500ms;
    amonitor_cluster on;
    amonitor_instance_id i$i;
    amonitor_ack_timeout 5s;
    amonitor_target fa ws://127.0.0.1:$((BASE + 701))/;
    amonitor_target fb ws://127.0.0.1:$((BASE + 702))/;
    amonitor_target fc ws://127.0.0.1:$((BASE + 703))/;
    server {
        listen 127.0.0.1:$((BASE + 80 + i));
        location = /ws/panel { amonitor_panel on; }
    }
}
C
    "$NGINX" -p "$D/i$i/" -c nginx.conf -e "$D/i$i/error.log"
done
sleep 3

"$PY" "$ROOT/bench/cluster/kills-load.py" --dur "$SECS" --rate "$RATE" \
    --ports $((BASE + 81)),$((BASE + 82)),$((BASE + 83)) \
    --out "$D/load.json" &
LOAD=$!

end=$((SECONDS + SECS - 10))
k=0
sleep 10
while [ $SECONDS -lt $end ]; do
    pid=
    if [ $((k % 3)) -ne 2 ]; then
        t=$(printf 'fa\nfb\nfc\n' | shuf -n1)
        pid=$(redis-cli -p "$RPORT" get "kills:lease:$t" | cut -d: -f2)
    else
        i=$((RANDOM % 3 + 1))
        pid=$(pgrep -P "$(cat "$D/i$i/nginx.pid")" | shuf -n1)
    fi
    if [ -n "$pid" ] && ps -o cmd= -p "$pid" | grep -q "worker process"; then
        kill -9 "$pid" && k=$((k + 1))
    fi
    sleep $((KILL_EVERY + RANDOM % 6))
done
wait $LOAD
sleep 8

"$PY" - "$D" "$k" << 'PY'
import collections, glob, json, subprocess, sys
d, kills = sys.argv[1], sys.argv[2]
runs = collections.Counter()
for f in glob.glob(d + '/runs-*.log'):
    runs.update(line.strip() for line in open(f))
load = json.load(open(d + '/load.json'))
twice = sum(1 for c in runs.values() if c > 1)
bad = subprocess.run("grep -h '\\[alert\\]\\|\\[crit\\]\\|\\[emerg\\]' %s/i*/error.log"
                     " | grep -vc 'exited on signal 9'" % d, shell=True,
                     capture_output=True, text=True).stdout.strip()
print("kills %s, ids %d, sends %d, answers %d, unanswered %d"
      % (kills, load['ids'], load['sends'], load['answers'], load['unanswered']))
for k, n in sorted(load['kinds'].items(), key=lambda x: -x[1]):
    print("  %6d %s" % (n, k))
print("ids run %d, run more than once: %d" % (len(runs), twice))
print("alert/crit/emerg lines (not the kills): %s" % bad)
PY
echo "files: $D"
