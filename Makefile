# AMonitor for nginx: the module, the protocol core, SDK, CLI, tests, demos.
# `make` builds build/ngx_http_amonitor_module.so against Debian's nginx-dev.

SHELL      := /bin/bash
NGX_SRC    ?= /usr/share/nginx/src
BUILD      := $(CURDIR)/build
NGX_BUILD  := $(BUILD)/nginx
# configure writes into $(NGX_SRC): one at a time across checkouts
NGX_LOCK   ?= /tmp/.amonitor-nginx-src.lock
MODULE     := ngx_http_amonitor_module.so
DEPS       := $(CURDIR)/scripts/deps.sh
FUZZ_SECONDS ?= 60
# test files run at once by make test and make test-asan (prove -j); the
# longest files start first, so that the runs end together
TEST_JOBS  ?= 2
TEST_FIRST := $(wildcard t/510-sdk-cli-unit.t t/160-debian-packages.t \
              t/250-soak.t t/055-upstream-log.t t/092-dedupe-redis-faults.t)
TEST_FILES  = $(TEST_FIRST) $(filter-out $(TEST_FIRST),$(sort $(wildcard t/*.t)))

CC         ?= cc
WARN       := -Wall -Wextra -Werror -Wno-unused-parameter
CFLAGS     ?= -g -O2
CORE_CFLAGS = -std=gnu99 -fPIC $(WARN) $(CFLAGS) $(EXTRA_CFLAGS) \
              -Isrc/core -Isrc/core/gen
# the core's sources, headers and libraries are listed once, in plain
# files that config and the scripts read too
CORE_LIST  := $(shell sed -e 's/\#.*//' src/core/sources.list)
CORE_LIBS  := $(shell sed -e 's/\#.*//' src/core/libs.list)
CJSON_LIBS := -lcjson

PROTO      := proto/amonitor.proto
GEN        := src/core/gen/amonitor.pb-c.c src/core/gen/amonitor.pb-c.h
CORE_SRCS  := $(addprefix src/core/,$(filter-out gen/%, \
              $(filter %.c,$(CORE_LIST))))
CORE_HDRS  := $(addprefix src/core/,$(filter %.h,$(CORE_LIST)))
CORE_OBJS  := $(patsubst src/core/%.c,$(BUILD)/core/%.o,$(CORE_SRCS)) \
              $(BUILD)/core/amonitor.pb-c.o
DASH_FILES := $(sort $(wildcard dashboard/*.html dashboard/*.css \
                dashboard/*.js))
DASH_GEN   := src/gen/ngx_http_amonitor_dashboard_assets.c
MOD_SRCS   := $(wildcard src/*.c src/*.h) $(CORE_SRCS) $(CORE_HDRS) $(DASH_GEN)

# POSIX helpers of the SDK, the CLI and the load generator (not the module)
POSIX_SRCS := src/posix/amon_posix.c
POSIX_HDRS := src/posix/amon_posix.h
POSIX_OBJS := $(patsubst src/posix/%.c,$(BUILD)/posix/%.o,$(POSIX_SRCS))

UNIT_SRCS  := $(wildcard t/unit/test_*.c)
UNIT_BINS  := $(patsubst t/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRCS))

.PHONY: all module core deps test-deps unit test test-unit test-t test-asan \
        test-valgrind lint format fuzz bench soak clean build-agent build-sdk \
        sdk tools demo demo-multi demo-stress demo-scale demo-tls demo-cluster deb

all: module

# what building and running need; the test tool chain is test-deps
deps:
	@bash $(DEPS)

test-deps:
	@bash $(DEPS) --test

# --- protobuf ------------------------------------------------------------

$(GEN): $(PROTO)
	@mkdir -p src/core/gen
	protoc-c --c_out=src/core/gen -Iproto $(PROTO)

# --- the nginx module ----------------------------------------------------

module: $(BUILD)/$(MODULE)

# the dashboard's files as a C source, listed in config (made before
# configure runs)
$(DASH_GEN): $(DASH_FILES) scripts/embed-dashboard.sh
	@mkdir -p src/gen
	bash scripts/embed-dashboard.sh $@ $(DASH_FILES)

$(NGX_BUILD)/Makefile: config src/core/sources.list src/core/libs.list $(GEN) \
                       $(DASH_GEN)
	@test -f $(NGX_SRC)/conf_flags || { echo "nginx-dev is missing:" \
	    "run 'make deps'" >&2; exit 1; }
	@mkdir -p $(NGX_BUILD)
	cd $(NGX_SRC) && . ./conf_flags && flock $(NGX_LOCK) \
	    ./configure \
	    --with-cc-opt="-fPIC -g -O2 $(NGX_EXTRA_CC_OPT)" \
	    --with-ld-opt="-fPIC $(NGX_EXTRA_LD_OPT)" "$${NGX_CONF_FLAGS[@]}" \
	    --add-dynamic-module=$(CURDIR) --builddir=$(NGX_BUILD) \
	    > $(NGX_BUILD)/configure.log || { cat $(NGX_BUILD)/configure.log; \
	    exit 1; }

$(NGX_BUILD)/$(MODULE): $(NGX_BUILD)/Makefile $(MOD_SRCS) $(GEN)
	flock $(NGX_LOCK) \
	    $(MAKE) -f $(NGX_BUILD)/Makefile -C $(NGX_SRC) modules

# copy, then rename: a running nginx keeps its mapping of the old file
$(BUILD)/$(MODULE): $(NGX_BUILD)/$(MODULE)
	cp $< $@.tmp && mv -f $@.tmp $@

# the module as released: dist/ with a checksum file
build-agent: module
	@mkdir -p dist
	cp build/$(MODULE) dist/$(MODULE).tmp && mv -f dist/$(MODULE).tmp \
	    dist/$(MODULE)
	cd dist && sha256sum $(MODULE) > SHA256SUMS && cat SHA256SUMS

# --- the protocol core as a static library (SDK, CLI, tests) -------------

core: $(BUILD)/libamon_core.a $(BUILD)/libamon_posix.a

$(BUILD)/core/%.o: src/core/%.c $(CORE_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) -c $< -o $@

$(BUILD)/core/amonitor.pb-c.o: src/core/gen/amonitor.pb-c.c $(GEN)
	@mkdir -p $(@D)
	$(CC) -std=gnu99 -fPIC $(CFLAGS) $(EXTRA_CFLAGS) -Isrc/core/gen \
	    -c $< -o $@

$(BUILD)/libamon_core.a: $(CORE_OBJS)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/posix/%.o: src/posix/%.c $(POSIX_HDRS) $(CORE_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) -Isrc/posix -c $< -o $@

$(BUILD)/libamon_posix.a: $(POSIX_OBJS)
	rm -f $@
	ar rcs $@ $^

# --- unit tests (cmocka) -------------------------------------------------

$(BUILD)/unit/%: t/unit/%.c $(BUILD)/libamon_core.a $(wildcard t/unit/*.h)
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) -It/unit $< -o $@ $(BUILD)/libamon_core.a \
	    $(CORE_LIBS) -lcmocka

unit: $(UNIT_BINS)

# --- tests ---------------------------------------------------------------

test: test-deps
	$(MAKE) module unit build-sdk tools sdk-test-bins
	prove --timer -j$(TEST_JOBS) $(TEST_FILES)

test-unit: unit
	prove t/001-core-unit.t

test-asan:
	@bash $(DEPS) --asan
	bash scripts/test-asan.sh --timer -j$(TEST_JOBS) $(TEST_FILES)

test-valgrind: test-deps
	bash scripts/test-valgrind.sh

fuzz: test-deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh

bench: core
	bash scripts/bench.sh

# hours of mixed load, reloads, SDK restarts and panel churn (bench/soak)
soak: test-deps
	$(MAKE) module
	/usr/bin/python3 bench/soak/soak.py --module $(BUILD)/$(MODULE) $(SOAK_ARGS)

# --- C SDK, the amonitor CLI, demos (sdk/, tools/, examples/) -----------

SDK_BUILD   := $(BUILD)/sdk
# the SDK's version is written once, in its public header
SDK_VERSION_PART = $(shell sed -n -e \
                   's/^\#define AMONITOR_VERSION_$(1)  *\([0-9]*\).*/\1/p' \
                   sdk/include/amonitor.h)
SDK_MAJOR   := $(call SDK_VERSION_PART,MAJOR)
SDK_VERSION := $(SDK_MAJOR).$(call SDK_VERSION_PART,MINOR).$(call \
               SDK_VERSION_PART,PATCH)
SDK_CFLAGS   = -std=gnu99 -fPIC $(WARN) $(CFLAGS) $(EXTRA_CFLAGS) -pthread \
               -Isdk/include -Isdk/src -Isrc/core -Isrc/core/gen -Isrc/posix
SDK_LIBS    := $(CJSON_LIBS) -lssl $(CORE_LIBS) -pthread
SDK_SRCS    := $(wildcard sdk/src/*.c)
SDK_HDRS    := $(wildcard sdk/include/*.h sdk/src/*.h)
SDK_OBJS    := $(patsubst sdk/src/%.c,$(SDK_BUILD)/obj/%.o,$(SDK_SRCS))
SDK_TESTS   := $(patsubst sdk/tests/%.c,$(SDK_BUILD)/tests/%, \
                   $(wildcard sdk/tests/*.c))
TOOLS_SRCS  := $(wildcard tools/*.c)
TOOLS_HDRS  := $(wildcard tools/*.h)
TOOLS_OBJS  := $(patsubst tools/%.c,$(BUILD)/tools/%.o,$(TOOLS_SRCS))
# the CLI reports the agent's version, written once in the module's header
AGENT_VERSION := $(shell sed -n -e \
                 's/^\#define NGX_HTTP_AMONITOR_VERSION  *"\([^"]*\)".*/\1/p' \
                 src/ngx_http_amonitor.h)
SDK_PYTHON  ?= /usr/bin/python3

.PHONY: sdk-test sdk-test-bins sdk-test-asan sdk-test-valgrind install-sdk \
        install-tools sdk-example-shared sdk-test-helgrind python-sdk-test

PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
LIBDIR      ?= $(PREFIX)/lib
INCLUDEDIR  ?= $(PREFIX)/include
LD          ?= ld
OBJCOPY     ?= objcopy
# a directory under PREFIX, written as ${prefix}/... in the .pc
SDK_PC_DIR   = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))
# pkg-config --define-prefix takes as prefix the directory two levels
# above the .pc's pkgconfig/ (that is, LIBDIR/..): right when LIBDIR is
# one directory below PREFIX (lib, lib64), wrong for a multiarch
# LIBDIR=PREFIX/lib/x86_64-linux-gnu.  The .pc says so in a comment then.
SDK_PC_SUB   = $(patsubst $(PREFIX)/%,%,$(LIBDIR))
SDK_PC_NOTE  = $(if $(findstring /,$(SDK_PC_SUB)),\
    s|^@RELOCATE_NOTE@$$|\# libdir is not one directory below prefix: \
    pkg-config --define-prefix (which takes prefix to be libdir/..) does \
    not relocate this file.\n\# For a copy under DESTDIR use \
    PKG_CONFIG_SYSROOT_DIR=DESTDIR instead.|,/^@RELOCATE_NOTE@$$/d)

build-sdk sdk: $(SDK_BUILD)/libamonitor_sdk.a $(SDK_BUILD)/libamonitor_sdk.so \
    $(SDK_BUILD)/amonitor_sdk.pc $(SDK_BUILD)/amonitor-sdk-example

$(SDK_BUILD)/obj/%.o: sdk/src/%.c $(SDK_HDRS) $(CORE_HDRS) $(POSIX_HDRS)
	@mkdir -p $(@D)
	$(CC) $(SDK_CFLAGS) -c $< -o $@

# The export list, one name a line, read from the version script (the
# only place it is written).
$(SDK_BUILD)/exports.txt: sdk/amonitor_sdk.map
	@mkdir -p $(@D)
	sed -n -e 's/^ *\(amonitor_[a-z0-9_]*\);$$/\1/p' $< | sort > $@

# The static library carries the core too, as one relocatable object
# whose globals outside the export list are made local: a program may
# define its own amon_free or protobuf descriptors.
$(SDK_BUILD)/libamonitor_sdk.a: $(SDK_OBJS) $(CORE_OBJS) $(POSIX_OBJS) \
    $(SDK_BUILD)/exports.txt
	rm -f $@ $(SDK_BUILD)/amonitor_sdk_all.o
	$(LD) -r -o $(SDK_BUILD)/amonitor_sdk_all.o $(SDK_OBJS) $(CORE_OBJS) \
	    $(POSIX_OBJS)
	$(OBJCOPY) --keep-global-symbols=$(SDK_BUILD)/exports.txt \
	    $(SDK_BUILD)/amonitor_sdk_all.o
	ar rcs $@ $(SDK_BUILD)/amonitor_sdk_all.o

# libamonitor_sdk.so.MAJOR (the soname) and the link-time name beside it
$(SDK_BUILD)/libamonitor_sdk.so: $(SDK_BUILD)/libamonitor_sdk.so.$(SDK_MAJOR)
	ln -sf libamonitor_sdk.so.$(SDK_MAJOR) $@

$(SDK_BUILD)/libamonitor_sdk.so.$(SDK_MAJOR): $(SDK_OBJS) $(CORE_OBJS) \
    $(POSIX_OBJS) sdk/amonitor_sdk.map
	$(CC) -shared -pthread $(CFLAGS) $(EXTRA_CFLAGS) $(LDFLAGS) \
	    -Wl,-soname,libamonitor_sdk.so.$(SDK_MAJOR) \
	    -Wl,--version-script=sdk/amonitor_sdk.map -Wl,--no-undefined \
	    -o $@ $(SDK_OBJS) $(CORE_OBJS) $(POSIX_OBJS) $(SDK_LIBS)

# the build tree's own .pc (PKG_CONFIG_PATH=build/sdk), not installed
$(SDK_BUILD)/amonitor_sdk.pc: sdk/amonitor_sdk.pc.in
	@mkdir -p $(@D)
	sed -e '/^@RELOCATE_NOTE@$$/d' \
	    -e 's|@PREFIX@|$(CURDIR)|' -e 's|@INCLUDEDIR@|$(CURDIR)/sdk/include|' \
	    -e 's|@LIBDIR@|$(SDK_BUILD)|' -e 's|@VERSION@|$(SDK_VERSION)|' \
	    $< > $@

$(SDK_BUILD)/amonitor-sdk-example: sdk/examples/amonitor-sdk-example.c \
    $(SDK_BUILD)/libamonitor_sdk.a sdk/include/amonitor.h
	$(CC) -std=gnu99 $(WARN) $(CFLAGS) $(EXTRA_CFLAGS) -pthread \
	    -Isdk/include $< -o $@ $(SDK_BUILD)/libamonitor_sdk.a $(SDK_LIBS)

$(SDK_BUILD)/tests/%: sdk/tests/%.c $(SDK_BUILD)/libamonitor_sdk.a \
    sdk/include/amonitor.h
	@mkdir -p $(@D)
	$(CC) -std=gnu99 $(WARN) $(CFLAGS) $(EXTRA_CFLAGS) -pthread \
	    -Isdk/include $< -o $@ $(SDK_BUILD)/libamonitor_sdk.a $(SDK_LIBS) \
	    -lcmocka

# the example linked against libamonitor_sdk.so.MAJOR, as installed
# programs are (the Debian package ships this one)
sdk-example-shared: $(SDK_BUILD)/shared/amonitor-sdk-example

$(SDK_BUILD)/shared/amonitor-sdk-example: sdk/examples/amonitor-sdk-example.c \
    $(SDK_BUILD)/libamonitor_sdk.so sdk/include/amonitor.h
	@mkdir -p $(@D)
	$(CC) -std=gnu99 $(WARN) $(CFLAGS) $(EXTRA_CFLAGS) -pthread \
	    -Isdk/include $< -o $@ -L$(SDK_BUILD) -lamonitor_sdk

# PREFIX=/usr/local DESTDIR= make install-sdk; Debian and other
# multiarch layouts set LIBDIR (e.g. $(PREFIX)/lib/x86_64-linux-gnu).  The
# installed .pc names its directories relative to ${prefix} (see
# SDK_PC_NOTE for what pkg-config --define-prefix makes of them).
install-sdk: build-sdk
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 644 sdk/include/amonitor.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(SDK_BUILD)/libamonitor_sdk.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SDK_BUILD)/libamonitor_sdk.so.$(SDK_MAJOR) \
	    $(DESTDIR)$(LIBDIR)/
	ln -sf libamonitor_sdk.so.$(SDK_MAJOR) \
	    $(DESTDIR)$(LIBDIR)/libamonitor_sdk.so
	sed -e '$(SDK_PC_NOTE)' -e 's|@PREFIX@|$(PREFIX)|' \
	    -e 's|@INCLUDEDIR@|$(call SDK_PC_DIR,$(INCLUDEDIR))|' \
	    -e 's|@LIBDIR@|$(call SDK_PC_DIR,$(LIBDIR))|' \
	    -e 's|@VERSION@|$(SDK_VERSION)|' sdk/amonitor_sdk.pc.in \
	    > $(DESTDIR)$(LIBDIR)/pkgconfig/amonitor_sdk.pc

# the CLI and the example program (linked against the installed SDK
# library: install-sdk goes with it)
install-tools: tools sdk-example-shared
	install -d $(DESTDIR)$(BINDIR)
	install -m 755 $(BUILD)/amonitor $(DESTDIR)$(BINDIR)/
	install -m 755 $(SDK_BUILD)/shared/amonitor-sdk-example \
	    $(DESTDIR)$(BINDIR)/

tools: $(BUILD)/amonitor

$(BUILD)/tools/%.o: tools/%.c $(TOOLS_HDRS) $(CORE_HDRS) $(POSIX_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) -Isrc/posix -Itools -c $< -o $@

$(BUILD)/tools/amonitor.o: src/ngx_http_amonitor.h
$(BUILD)/tools/amonitor.o: CORE_CFLAGS += \
    -DAMONCLI_VERSION='"$(AGENT_VERSION)"'

$(BUILD)/amonitor: $(TOOLS_OBJS) $(BUILD)/libamon_posix.a \
    $(BUILD)/libamon_core.a
	$(CC) $(CFLAGS) $(EXTRA_CFLAGS) -o $@ $(TOOLS_OBJS) \
	    $(BUILD)/libamon_posix.a $(BUILD)/libamon_core.a $(CJSON_LIBS) \
	    -lssl $(CORE_LIBS) -lm

# SDK and CLI tests that need no nginx (python3-websockets is the client)
sdk-test-bins: $(SDK_TESTS)

sdk-test: test-deps build-sdk tools $(SDK_TESTS)
	AMON_BUILD=$(BUILD) AMON_EXTRA_CFLAGS="$(EXTRA_CFLAGS)" \
	    prove -e $(SDK_PYTHON) sdk/tests/test_*.py \
	    tools/tests/test_*.py

sdk-test-asan:
	ASAN_OPTIONS=exitcode=99:detect_leaks=1 UBSAN_OPTIONS=exitcode=99 \
	$(MAKE) sdk-test BUILD=$(BUILD)/san \
	    EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer \
	    -fno-sanitize-recover=all"

# the Python binding's unit tests (sdk/python/tests) with Debian's
# python3; t/530-python-sdk.t runs them too, and the binding behind nginx
python-sdk-test: build-sdk
	cd sdk/python && AMON_BUILD=$(BUILD) \
	    AMONITOR_SDK_LIB=$(SDK_BUILD)/libamonitor_sdk.so.$(SDK_MAJOR) \
	    $(SDK_PYTHON) -m unittest discover -v -s tests

# the threaded program under helgrind and drd (also part of sdk-test)
sdk-test-helgrind: build-sdk $(SDK_TESTS)
	AMON_BUILD=$(BUILD) prove -v -e $(SDK_PYTHON) sdk/tests/test_threads.py

# DWARF 4: the valgrind in Debian 12 cannot read everything in DWARF 5
sdk-test-valgrind:
	AMON_TEST_VALGRIND=1 $(MAKE) sdk-test BUILD=$(BUILD)/vg \
	    EXTRA_CFLAGS="-gdwarf-4"

demo: deps
	bash examples/run.sh

demo-multi: deps
	bash examples/run.multi.sh

demo-stress: deps
	bash examples/run.stress.sh

demo-scale: deps
	bash examples/run.scale.sh

demo-tls: deps
	bash examples/run.tls.sh

# the cluster demo starts its own redis-server: deps plus redis-server
demo-cluster:
	@bash $(DEPS) --cluster
	bash examples/run.cluster.sh

# --- Debian packages (debian/, docs/deploy.md) ----------------------------

# dpkg-buildpackage -b in a copy of the tree under build/deb/: the .deb,
# .changes and .buildinfo files end up in build/deb/
deb:
	@bash $(DEPS) --deb
	bash scripts/deb.sh $(BUILD)/deb

# --- style ---------------------------------------------------------------

LINT_SRCS = $(shell git ls-files 'src/*.c' 'src/*.h' 'sdk/*.c' 'sdk/*.h' \
                'tools/*.c' 'tools/*.h' 'bench/*.c' 'fuzz/*.c' 't/unit/*.c' \
                't/unit/*.h' 2>/dev/null)

lint: test-deps $(GEN)
	@echo "$(SDK_VERSION)" | grep -Eqx '[0-9]+\.[0-9]+\.[0-9]+' || { echo \
	    "lint: no AMONITOR_VERSION_MAJOR/MINOR/PATCH in amonitor.h" >&2; \
	    exit 1; }
	@for f in $(CORE_SRCS) $(CORE_HDRS); do case $$f in */gen/*) ;; \
	    *) test -f $$f || { echo "lint: $$f is in src/core/sources.list" \
	    "but missing" >&2; exit 1; } ;; esac; done
	@for f in src/core/*.c src/core/*.h; do \
	    grep -qx "$${f#src/core/}" src/core/sources.list || { echo "lint:" \
	    "$$f is not in src/core/sources.list" >&2; exit 1; }; done
	clang-format --dry-run --Werror $(LINT_SRCS)
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
	    --inline-suppr --suppress=missingIncludeSystem \
	    -Isrc/core -Isrc/core/gen -Isrc/posix \
	    $(filter-out src/ngx_%,$(LINT_SRCS))
	$(MAKE) core BUILD=$(BUILD)/lint EXTRA_CFLAGS="-Wshadow -Wpointer-arith"

format:
	clang-format -i $(LINT_SRCS)

clean:
	rm -rf $(BUILD) src/core/gen src/gen dist
