#!/usr/bin/env bash
# Install the Debian packages AMonitor needs.
#   scripts/deps.sh          build and run: the module, the SDK, the CLI,
#                            the demos (make deps)
#   scripts/deps.sh --cluster  and redis-server (redis-cli with it), which
#                            the cluster demo starts (make demo-cluster)
#   scripts/deps.sh --test   and the test tool chain (make test-deps)
#   scripts/deps.sh --asan   and what building nginx from source needs
#                            (make test-asan, .ci/run)
# Idempotent: packages already present are not touched, apt is not called
# at all when nothing is missing. Needs root (or sudo) only when installing.
#   scripts/deps.sh --deb    and what "make deb" needs (debhelper, dh-python,
#                            lintian)
#   scripts/deps.sh --bench  and the benchmarks' fan-out peer, Debian's
#                            libnginx-mod-nchan (bench/agent/ratio.sh)
set -eu

# building the module, the SDK and the CLI, and running the demos
PKGS="build-essential nginx nginx-dev libpcre2-dev zlib1g-dev libssl-dev
libprotobuf-c-dev protobuf-c-compiler libhiredis-dev libcjson-dev
pkg-config python3"

# the tests: unit tests, prove suites, interop clients, the browser test,
# lint, sanitizers, valgrind (redis-server: the tests start their own)
TEST_PKGS="libcmocka-dev libmojolicious-perl libio-socket-ip-perl strace
redis-server python3-websockets python3-prometheus-client clang valgrind
cppcheck clang-format
chromium libclang-rt-dev dpkg-dev curl openssl"

for opt in "$@"; do
    case "$opt" in
    --cluster) PKGS="$PKGS redis-server" ;;
    --test) PKGS="$PKGS $TEST_PKGS" ;;
    --asan)
        # building nginx from source needs its build dependencies too
        PKGS="$PKGS $TEST_PKGS libpcre3-dev libxml2-dev libxslt1-dev libgd-dev
libgeoip-dev"
        ;;
    --deb)
        # "make deb" and t/160-debian-packages.t: debian/control's build
        # dependencies are among the packages above
        PKGS="$PKGS debhelper dh-python lintian"
        ;;
    --bench)
        # note: the package also enables nchan for the system nginx
        # (/etc/nginx/modules-enabled); ratio.sh loads it by its path
        PKGS="$PKGS libnginx-mod-nchan"
        ;;
    *)
        echo "usage: $0 [--cluster] [--test] [--asan] [--deb] [--bench]" >&2
        exit 2
        ;;
    esac
done

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
        | grep -q "install ok installed"
    then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

echo "deps: installing:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
stamp=/var/lib/apt/periodic/update-success-stamp
if [ ! -d /var/lib/apt/lists ] || [ -z "$(ls /var/lib/apt/lists 2>/dev/null \
    | grep -v -e lock -e partial)" ] || [ "${AMON_APT_UPDATE:-}" = 1 ]
then
    $SUDO apt-get update -q
fi
# shellcheck disable=SC2086
if ! $SUDO apt-get install -y -q --no-install-recommends $missing; then
    $SUDO apt-get update -q
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -q --no-install-recommends $missing
fi
: "$stamp"
