#!/usr/bin/env bash
# Build every libFuzzer target fuzz/fuzz_X.c with ASan and UBSan and run it
# for FUZZ_SECONDS seconds (default 60) on a copy of its seed corpus
# fuzz/corpus/X/ (build/fuzz/corpus-X), so the repository corpus is never
# modified.  Crash inputs land in build/fuzz/X-crash-*.  Exits non-zero
# when a target does not build or finds a crash.
set -u

cd "$(dirname "$0")/.." || exit 2

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_MAX_LEN=${FUZZ_MAX_LEN:-16384}
CC_FUZZ=${CC_FUZZ:-clang}
OUT=build/fuzz

if [ ! -f src/core/gen/amonitor.pb-c.c ]; then
    make src/core/gen/amonitor.pb-c.h || exit 2
fi

# the core's sources and libraries: src/core/sources.list, libs.list
core_srcs=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' -e '/\.c$/!d' \
    -e 's|^|src/core/|' src/core/sources.list) || exit 2
core_libs=$(sed -e 's/#.*//' src/core/libs.list) || exit 2

mkdir -p "$OUT"

failed=""
ran=0

for src in fuzz/fuzz_*.c; do
    [ -e "$src" ] || continue

    name=$(basename "$src" .c)
    x=${name#fuzz_}
    bin="$OUT/$name"

    echo "fuzz: building $bin"
    # shellcheck disable=SC2086
    if ! "$CC_FUZZ" -g -O1 -fsanitize=fuzzer,address,undefined \
        -fno-sanitize-recover=undefined -Isrc/core -Isrc/core/gen \
        "$src" $core_srcs $core_libs -o "$bin"
    then
        echo "fuzz: $name does not build" >&2
        failed="$failed $name(build)"
        continue
    fi

    corpus="$OUT/corpus-$x"
    rm -rf "$corpus"
    mkdir -p "$corpus"
    if [ -d "fuzz/corpus/$x" ]; then
        cp -R "fuzz/corpus/$x/." "$corpus/"
    fi

    echo "fuzz: running $name for ${FUZZ_SECONDS}s on $corpus"
    if ! "$bin" -max_total_time="$FUZZ_SECONDS" -max_len="$FUZZ_MAX_LEN" \
        -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$OUT/$x-" "$corpus" > "$OUT/$name.log" 2>&1
    then
        echo "fuzz: $name FAILED; see $OUT/$name.log" >&2
        tail -n 40 "$OUT/$name.log" >&2
        failed="$failed $name"
        continue
    fi

    ran=$((ran + 1))
    grep -E "^stat::number_of_executed_units|^Done" "$OUT/$name.log" || true
    echo "fuzz: $name ok"
done

if [ -n "$failed" ]; then
    echo "fuzz: failures:$failed" >&2
    exit 1
fi

if [ "$ran" = 0 ]; then
    echo "fuzz: no targets in fuzz/" >&2
    exit 1
fi

echo "fuzz: $ran target(s) ran ${FUZZ_SECONDS}s each without a finding"
