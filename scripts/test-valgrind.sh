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

make -s module unit

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
