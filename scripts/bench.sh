#!/usr/bin/env bash
# Build and run the protocol core micro-benchmark (bench/bench_core.c)
# against build/libamon_core.a (`make bench` builds the library first).
# BENCH_SECONDS: measured time per case (default 1.5, at least 1);
# BENCH_STRICT=1: exit 1 when a throughput target is missed.
set -eu

cd "$(dirname "$0")/.."

CC=${CC:-cc}
OUT=build/bench

if [ ! -f build/libamon_core.a ]; then
    echo "bench: build/libamon_core.a is missing: run 'make core'" >&2
    exit 2
fi

mkdir -p "$OUT"
# shellcheck disable=SC2046
"$CC" -std=gnu99 -g -O2 -Wall -Wextra -Werror -Wno-unused-parameter \
    -Isrc/core -Isrc/core/gen bench/bench_core.c build/libamon_core.a \
    $(sed -e 's/#.*//' src/core/libs.list) -o "$OUT/bench_core"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo \
    | sed 's/.*: //'), $(. /etc/os-release && echo "$PRETTY_NAME")"
echo "compiler: $("$CC" --version | head -n 1), -O2"
echo

args=""
if [ "${BENCH_STRICT:-0}" = 1 ]; then
    args="--strict"
fi

# shellcheck disable=SC2086
exec "$OUT/bench_core" $args
