# Shared by the bench/*.sh scripts (sourced, from the project root):
# free ports, the module check, the panel server block, the worker's pid
# and an idle worker's CPU.

bench_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# $1: the module file
bench_need_module() {
    if [ ! -f "$1" ]; then
        echo "bench: no module at $1 (make module)" >&2
        exit 2
    fi
}

# the server that takes panels, on 127.0.0.1:$1
bench_panel_server() {
    echo "    server {"
    echo "        listen 127.0.0.1:$1;"
    echo "        location = /ws/panel { amonitor_panel on; }"
    echo "    }"
}

# the first worker of the nginx whose pid file is $1
bench_worker() {
    local w
    w=$(pgrep -P "$(cat "$1")" | head -n 1)
    if [ -z "$w" ]; then
        echo "bench: no worker" >&2
        exit 1
    fi
    echo "$w"
}

bench_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# CPU of worker $1 over $2 seconds: clock ticks, and perf's task-clock
# and user instructions when perf can count them (temporary file $3)
bench_idle_cpu() {
    local t0 t1 perf=0
    t0=$(bench_ticks "$1")
    if perf stat -x, -e task-clock,instructions:u -p "$1" -o "$3" \
        -- sleep "$2" 2>/dev/null
    then
        perf=1
    else
        sleep "$2"
    fi
    t1=$(bench_ticks "$1")
    echo "cpu ticks (utime+stime, $(getconf CLK_TCK)/s): $((t1 - t0))"
    if [ "$perf" = 1 ]; then
        awk -F, '/task-clock/ { printf "task-clock: %.2f ms\n", $1 }
            /instructions/ { printf "instructions (user): %d\n", $1 }' "$3"
    fi
}

# build/bench/$1 from the files bench/agent/$2... against the protocol core (which
# must be built: make core)
bench_build() {
    local out=$1 f srcs=()
    shift
    for f in "$@"; do
        srcs+=("bench/agent/$f")
    done
    mkdir -p build/bench
    # shellcheck disable=SC2046
    "${CC:-cc}" -std=gnu99 -g -O2 -Wall -Wextra -Werror \
        -Wno-unused-parameter -Isrc/core -Isrc/core/gen -Isrc/posix \
        "${srcs[@]}" build/libamon_posix.a build/libamon_core.a \
        $(sed -e 's/#.*//' src/core/libs.list) -o "build/bench/$out"
}

# build/bench/amon-load, the load generator of bench/agent
bench_build_load() {
    bench_build amon-load amon-load.c amon-load-conn.c amon-load-msg.c \
        bench-util.c
}

# an nginx.conf in directory $1 for a benchmark: main-context lines $2
# (load_module, worker_processes...), then the log, pid, events and an
# http block with the temporary paths in $1 and the lines $3
bench_nginx_conf() {
    cat <<EOF2
$2
worker_rlimit_nofile 65536;
error_log $1/error.log warn;
pid $1/nginx.pid;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path $1/cbt;
    proxy_temp_path $1/pt;
    fastcgi_temp_path $1/ft;
    uwsgi_temp_path $1/ut;
    scgi_temp_path $1/st;
$3
}
EOF2
}
