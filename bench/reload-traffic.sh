#!/usr/bin/env bash
# Reload under traffic, long: the scenario of t/240-reload-traffic.t (two
# workers, three SDKs, four panels sending actions) with many more
# "nginx -s reload" (default 500), then the RSS and descriptor figures of
# the workers and the master after reload 10, every 50th and the last,
# the time the old workers took to exit, and the outcomes of the actions.
#
# Usage: bench/reload-traffic.sh [RELOADS]
# Knobs: AMON_RELOAD_STORE=redis (dedupe table in a private redis-server),
#        TEST_NGINX_BINARY / TEST_AMON_MODULE (another nginx or module).
# The whole prove output is kept in build/bench/reload-traffic.log; the
# exit status is prove's (1 when a check of the test failed).
set -u

cd "$(dirname "$0")/.." || exit 2

reloads=${1:-500}
case $reloads in
    ''|*[!0-9]*) echo "usage: $0 [RELOADS]" >&2; exit 2 ;;
esac
if [ ! -f build/nginx/ngx_http_amonitor_module.so ] \
    || [ ! -x build/sdk/amonitor-sdk-example ]
then
    echo "bench: build the module and the SDK first" \
        "(make module build-sdk)" >&2
    exit 2
fi

mkdir -p build/bench
log=build/bench/reload-traffic.log

echo "reload under traffic: $reloads reloads," \
    "store ${AMON_RELOAD_STORE:-shm}, $(nproc) cores"
AMON_RELOADS=$reloads prove -v t/240-reload-traffic.t > "$log" 2>&1
rc=$?

# the figures the test prints, as a table (kB and counts, sums over the
# two workers; "private" is RssAnon, "zone" RssShmem)
awk '
    /reload-figures: reload=/ {
        for (i = 1; i <= NF; i++) {
            split($i, kv, "=")
            v[kv[1]] = kv[2]
        }
        if (!head++) {
            printf "%7s %10s %10s %10s %7s %7s %10s %10s %7s\n",
                "reload", "w RSS", "w private", "w zone", "w socks",
                "w fds", "m RSS", "m private", "m fds"
        }
        printf "%7s %10s %10s %10s %7s %7s %10s %10s %7s\n", v["reload"],
            v["workers_rss_kb"], v["workers_anon_kb"], v["workers_shmem_kb"],
            v["worker_sockets"], v["worker_other_fds"], v["master_rss_kb"],
            v["master_anon_kb"], v["master_fds"]
        next
    }
    /reload-figures:/ { sub(/^# reload-figures: /, ""); print }
' "$log"
grep -E '^not ok' "$log"
tail -n 1 "$log"
echo "(full output: $log)"
exit $rc
