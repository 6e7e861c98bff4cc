#!/usr/bin/env bash
# Install the Debian packages AMonitor needs to build, test and run its demos.
# Idempotent: packages already present are not touched, apt is not called
# at all when nothing is missing. Needs root (or sudo) only when installing.
set -eu

PKGS="build-essential nginx nginx-dev libpcre2-dev zlib1g-dev libssl-dev
libprotobuf-c-dev protobuf-c-compiler libhiredis-dev libcjson-dev
libcmocka-dev libmojolicious-perl libio-socket-ip-perl redis-server
python3 python3-websockets python3-prometheus-client clang valgrind cppcheck
clang-format chromium
libclang-rt-dev pkg-config dpkg-dev"

if [ "${1:-}" = "--asan" ]; then
    # building nginx from source needs its build dependencies too
    PKGS="$PKGS libpcre3-dev libxml2-dev libxslt1-dev libgd-dev libgeoip-dev"
fi

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
