#!/usr/bin/env bash
# Build nginx 1.22.1 (Debian's source of the installed package) and the
# module with AddressSanitizer + UndefinedBehaviorSanitizer, then run the
# prove suites against that binary.  Everything lives under build/asan/;
# a second run rebuilds only what changed.
#
# Usage: scripts/test-asan.sh [--build-only] [prove args...]
# Knobs: ASAN_CC (default clang), ASAN_JOBS (default 2),
#        ASAN_CFLAGS (default "-fsanitize=address,undefined
#        -fno-omit-frame-pointer -g -O1").
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ASAN=$ROOT/build/asan
SRCDIR=$ASAN/src
OBJS=$ASAN/objs
PREFIX=$ASAN/prefix
CC_NAME=${ASAN_CC:-clang}
JOBS=${ASAN_JOBS:-2}
SAN="-fsanitize=address,undefined"
CFLAGS_SAN=${ASAN_CFLAGS:-"$SAN -fno-omit-frame-pointer -g -O1"}
NGX_SRC=/usr/share/nginx/src

build_only=0
if [ "${1:-}" = "--build-only" ]; then
    build_only=1
    shift
fi

log() { printf 'test-asan: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO=sudo
fi


# --- 1. the source package -------------------------------------------------

# A deb-src twin of every "Types: deb" stanza in debian.sources, in a file of
# its own so the original stays untouched.
ensure_deb_src() {
    local main=/etc/apt/sources.list.d/debian.sources
    local twin=/etc/apt/sources.list.d/debian-src.sources

    if [ -f "$twin" ]; then
        return 0
    fi
    [ -f "$main" ] || die "$main not found; add a deb-src entry by hand"
    log "adding $twin"
    sed -e 's/^Types:[[:space:]]*deb[[:space:]]*$/Types: deb-src/' "$main" \
        | $SUDO tee "$twin" > /dev/null
}

# Versions of nginx that apt can fetch as source, newest first.
src_versions() {
    apt-cache showsrc nginx 2>/dev/null \
        | awk '/^Package: /{p=$2} /^Version: /{if (p == "nginx") print $2}' \
        || true
}

ensure_source() {
    local want have list

    want=$(dpkg-query -W -f='${Version}' nginx 2>/dev/null || true)
    [ -n "$want" ] || die "nginx is not installed (run scripts/deps.sh)"

    if [ -f "$SRCDIR/.version" ] \
        && [ -x "$SRCDIR/nginx/configure" ]
    then
        have=$(cat "$SRCDIR/.version")
        log "source nginx $have already unpacked"
        return 0
    fi

    ensure_deb_src
    list=$(src_versions)
    if [ -z "$list" ]; then
        log "apt-get update (deb-src lists missing)"
        $SUDO apt-get update -q > /dev/null
        list=$(src_versions)
    fi
    [ -n "$list" ] || die "apt-cache showsrc nginx lists nothing"

    # the installed version first, then any other 1.22.1 the mirrors list
    # (a security mirror may list a .dsc it no longer serves)
    local v ok=0 candidates
    candidates=$( { printf '%s\n' "$list" | grep -xF "$want";
        printf '%s\n' "$list" | grep -vxF "$want" | grep '^1\.22\.1-';
        printf '%s\n' "$list" | grep -v '^1\.22\.1-'; } || true)
    rm -rf "$SRCDIR"
    mkdir -p "$SRCDIR"
    for v in $candidates; do
        log "fetching source nginx=$v"
        if (cd "$SRCDIR" && apt-get source -q --only-source "nginx=$v" \
            >> "$SRCDIR/apt-source.log" 2>&1)
        then
            ok=1
            want=$v
            break
        fi
        log "nginx=$v could not be fetched"
    done
    if [ "$ok" != 1 ]; then
        tail -n 20 "$SRCDIR/apt-source.log" >&2
        die "apt-get source nginx failed for: $(echo $candidates)"
    fi

    local dir
    dir=$(find "$SRCDIR" -mindepth 1 -maxdepth 1 -type d -name 'nginx-*' \
        | head -n 1)
    [ -n "$dir" ] && [ -x "$dir/configure" ] \
        || die "no unpacked nginx source under $SRCDIR"
    ln -sfn "$(basename "$dir")" "$SRCDIR/nginx"
    echo "$want" > "$SRCDIR/.version"
}


# --- 2. configure and build ------------------------------------------------

# The installed binary's flags (from nginx-dev), minus the paths, which are
# pointed into build/asan; temp paths are relative so that each test prefix
# gets its own.
conf_args() {
    local f
    # shellcheck disable=SC1091
    . "$NGX_SRC/conf_flags"
    for f in "${NGX_CONF_FLAGS[@]}"; do
        case "$f" in
        --prefix=*|--conf-path=*|--http-log-path=*|--error-log-path=*\
        |--lock-path=*|--pid-path=*|--modules-path=*|--http-*-temp-path=*)
            ;;
        *)
            printf '%s\n' "$f"
            ;;
        esac
    done
    printf '%s\n' \
        "--prefix=$PREFIX" \
        "--conf-path=$PREFIX/conf/nginx.conf" \
        "--http-log-path=logs/access.log" \
        "--error-log-path=logs/error.log" \
        "--lock-path=$PREFIX/nginx.lock" \
        "--pid-path=logs/nginx.pid" \
        "--modules-path=$OBJS" \
        "--http-client-body-temp-path=client_body_temp" \
        "--http-fastcgi-temp-path=fastcgi_temp" \
        "--http-proxy-temp-path=proxy_temp" \
        "--http-scgi-temp-path=scgi_temp" \
        "--http-uwsgi-temp-path=uwsgi_temp" \
        "--with-cc=$CC_NAME" \
        "--with-cc-opt=$CFLAGS_SAN" \
        "--with-ld-opt=$SAN -Wl,-Bsymbolic" \
        "--add-dynamic-module=$ROOT" \
        "--builddir=$OBJS"
}

ensure_configured() {
    local args stamp

    mapfile -t args < <(conf_args)
    # reconfigure when the flags, the compiler or the addon script change
    stamp=$( { printf '%s\n' "${args[@]}"; "$CC_NAME" --version | sed -n 1p;
        cat "$ROOT/config"; } | sha1sum | cut -d' ' -f1)

    if [ -f "$OBJS/Makefile" ] && [ "$(cat "$OBJS/.stamp" 2>/dev/null)" \
        = "$stamp" ]
    then
        return 0
    fi

    log "configuring nginx ($CC_NAME, $CFLAGS_SAN)"
    mkdir -p "$OBJS" "$PREFIX"
    (cd "$SRCDIR/nginx" && ./configure "${args[@]}") \
        > "$ASAN/configure.log" 2>&1 \
        || { tail -n 40 "$ASAN/configure.log" >&2; die "configure failed"; }
    echo "$stamp" > "$OBJS/.stamp"
}

build() {
    # protoc-c output must exist before the module compiles
    make -s -C "$ROOT" src/core/gen/amonitor.pb-c.c \
        src/core/gen/amonitor.pb-c.h
    log "building nginx and the module (make -j$JOBS)"
    local target
    : > "$ASAN/make.log"
    for target in binary modules; do
        make -j"$JOBS" -C "$SRCDIR/nginx" -f "$OBJS/Makefile" "$target" \
            >> "$ASAN/make.log" 2>&1 \
            || { grep -E 'error:|\*\*\*' "$ASAN/make.log" | head -n 40 >&2;
                 tail -n 20 "$ASAN/make.log" >&2;
                 die "build of $target failed (build/asan/make.log)"; }
    done
    [ -x "$OBJS/nginx" ] || die "no $OBJS/nginx after the build"
    [ -f "$OBJS/ngx_http_amonitor_module.so" ] \
        || die "no $OBJS/ngx_http_amonitor_module.so after the build"
}


# --- 3. run the suites -----------------------------------------------------

# one build at a time in build/asan (two runs of this script share it)
mkdir -p "$ASAN"
exec 9> "$ASAN/.build.lock"
flock 9
ensure_source
ensure_configured
build
flock -u 9
log "built $OBJS/nginx and $OBJS/ngx_http_amonitor_module.so"

if [ "$build_only" = 1 ]; then
    exit 0
fi

# the unit test binaries are plain (not sanitized) builds: t/001 runs them,
# so build them as for make test
make -s -C "$ROOT" unit

export TEST_NGINX_BINARY=$OBJS/nginx
export TEST_AMON_MODULE=$OBJS/ngx_http_amonitor_module.so
# leaks of nginx's master/worker at exit are expected noise; reports go to
# stderr, which nginx redirects into error.log, where the harness looks
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=0}

# nginx's own code passes NULL with length 0 to memcpy() for empty strings
# (ngx_pstrdup, ngx_cpymem in ngx_vslprintf) and adds 0 to a NULL pointer
# (an empty response body in ngx_http_send_response), which nginx treats
# as valid.  Those two kinds are suppressed by file name: nginx compiles
# its sources with relative paths (src/...), the module's have absolute
# ones and stay fully checked.  (A report in the master would also start
# llvm-symbolizer before the workers fork, and workers sharing its pipe
# hang.)
# nginx's HTTP/2 code reads and writes frame fields at unaligned addresses
# (fine on x86): suppressed for its files only (t/180 sends HTTP/2).
printf '%s\n' 'nonnull-attribute:^src/' 'pointer-overflow:^src/' \
    'alignment:^src/http/v2/' > "$ASAN/ubsan.supp"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=0:\
suppressions=$ASAN/ubsan.supp}
export TEST_AMON_SANITIZER=1

cd "$ROOT"
if [ "$#" -gt 0 ]; then
    prove "$@"
else
    prove --timer -j"${TEST_JOBS:-2}" -r t/
fi
