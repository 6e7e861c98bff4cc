#!/usr/bin/env bash
# Memory checks with valgrind: the core's unit test binaries (errors and
# leaks fail), then the prove suites with nginx itself under valgrind
# (single process: daemon off, master_process off; the harness fails a
# file whose valgrind log reports errors).
#
# Usage: scripts/test-valgrind.sh [prove args...]   (default: all of t/)
# Knobs: TEST_NGINX_VALGRIND_OPTS (extra valgrind options for nginx),
#        VALGRIND_UNIT_OPTS (extra options for the unit binaries).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

command -v valgrind > /dev/null || {
    echo "test-valgrind: valgrind is not installed (scripts/deps.sh)" >&2
    exit 1
}

# valgrind 3.19 cannot read the DWARF 5 that clang writes: rebuild unit
# binaries (and the core library) that another build made with clang
for f in build/unit/test_* build/libamon_core.a; do
    [ -e "$f" ] || continue
    if readelf --debug-dump=info "$f" 2>/dev/null \
        | grep -m 1 DW_AT_producer | grep -q clang
    then
        echo "test-valgrind: $f was built by clang; rebuilding with cc"
        rm -f build/unit/test_* build/core/*.o build/libamon_core.a
        break
    fi
done

make -s module unit CC=cc

status=0

echo "test-valgrind: unit tests under valgrind"
TEST_AMON_UNIT_WRAPPER="valgrind -q --error-exitcode=1 --leak-check=full \
--errors-for-leak-kinds=definite,possible ${VALGRIND_UNIT_OPTS:-}" \
    prove t/001-core-unit.t || status=1

echo "test-valgrind: nginx suites under valgrind"
export TEST_NGINX_VALGRIND=1
if [ "$#" -gt 0 ]; then
    prove "$@" || status=1
else
    mapfile -t files < <(find t -name '*.t' ! -name '001-core-unit.t' \
        ! -path 't/lib/*' | sort)
    prove "${files[@]}" || status=1
fi

exit "$status"
