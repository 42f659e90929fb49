# nlpd — plain GNU make. `make help` lists the targets.
#
# Layout of the build (everything generated lives under $(B)):
#   $(B)/gen/proto/*.pb-c.[ch]   protoc-c output (never committed)
#   $(B)/obj/...                 objects and -MMD dependency files
#   $(B)/lib*.a                  common (shared helpers), engine, tasks, daemon core, client library
#   $(B)/nlpd $(B)/nlpc $(B)/nlprun
#   $(B)/tests/unit              the C test binary (tests/unit/*.c)
#   $(B)/fuzz/*                  libFuzzer targets (clang)
#
# `make asan` rebuilds everything under build/asan (clang) and build/asan-omp (gcc, OpenMP)
# with ASan+UBSan and runs the tests in each.

B        ?= build
CC       ?= cc
PKGS     := libzmq libprotobuf-c libconfig libcjson openblas hiredis libmicrohttpd libsystemd
OPT      ?= -O2
# OpenMP threads engine/gemm.c's few-rows kernel. OpenBLAS is taken in its OpenMP build
# (Debian's libopenblas-openmp-dev) so that both use one thread pool; the rpath keeps
# the loader from picking the pthread build that update-alternatives may point at.
# The clang builds (asan, fuzz) go without OpenMP: the kernel then runs serially.
OMPFLAGS ?= -fopenmp
comma    := ,
BLAS_PC  := $(firstword $(wildcard /usr/lib/*/openblas-openmp/pkgconfig))
PKGCONF  := PKG_CONFIG_PATH=$(BLAS_PC) pkg-config
BLAS_LIB := $(shell $(PKGCONF) --variable=libdir openblas 2>/dev/null)
CFLAGS   ?= $(OPT) -g
CFLAGS   += -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread -MMD -MP $(OMPFLAGS)
CFLAGS   += -I. -I$(B)/gen $(SANFLAGS)
CFLAGS   += $(shell $(PKGCONF) --cflags $(PKGS) 2>/dev/null)
LDLIBS   += $(shell $(PKGCONF) --libs $(PKGS) 2>/dev/null) -lm -pthread
LDFLAGS  += $(SANFLAGS) $(OMPFLAGS) $(if $(BLAS_LIB),-Wl$(comma)-rpath$(comma)$(BLAS_LIB))

ifeq ($(V),1)
Q :=
else
Q := @
endif

# ---- sources (wildcards: adding a file to a module needs no Makefile edit) ----
PROTOS      := $(wildcard proto/*.proto)
PROTO_C     := $(PROTOS:%.proto=$(B)/gen/%.pb-c.c)
PROTO_H     := $(PROTOS:%.proto=$(B)/gen/%.pb-c.h)
SPM_PB_C    := $(B)/gen/proto/sentencepiece_model.pb-c.c
NLP_PB_C    := $(B)/gen/proto/nlp.pb-c.c
PY_PB2      := $(B)/gen/python/nlp_pb2.py

COMMON_SRC  := $(wildcard common/*.c)
ENGINE_SRC  := $(wildcard engine/*.c)
TASKS_SRC   := $(wildcard tasks/*.c)
DAEMON_SRC  := $(filter-out daemon/main.c,$(wildcard daemon/*.c))
CLIENT_SRC  := $(wildcard clients/libnlpclient/*.c)
NLPC_SRC    := $(wildcard clients/nlpc/*.c)
NLPRUN_SRC  := $(wildcard clients/nlprun/*.c)
UNIT_SRC    := $(wildcard tests/unit/*.c) $(wildcard tests/harness/*.c)
BENCH_SRC   := $(wildcard tests/bench/*.c)
FUZZ_SRC    := $(wildcard tests/fuzz/fuzz_*.c)

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))

LIBCOMMON := $(B)/libcommon.a
LIBENGINE := $(B)/libengine.a
LIBTASKS  := $(B)/libtasks.a
LIBDAEMON := $(B)/libdaemon.a
LIBCLIENT := $(B)/libnlpclient.a

BINS := $(B)/nlpd $(B)/nlpc $(B)/nlprun
BENCH_BINS := $(patsubst tests/bench/%.c,$(B)/bench/%,$(BENCH_SRC))
FUZZ_BINS  := $(patsubst tests/fuzz/%.c,$(B)/fuzz/%,$(FUZZ_SRC))

.PHONY: all deps test asan bench run fuzz fuzz-build clean help check-deps
.PHONY: lib install uninstall
.DEFAULT_GOAL := all

all: $(BINS) $(B)/tests/unit $(BENCH_BINS) $(PY_PB2)

help:
	@echo "make            build $(BINS) and the test binary"
	@echo "make deps       install missing Debian packages (apt-get; quiet when all present)"
	@echo "make test       deps + build + every test (ends with 'N passed, N failed')"
	@echo "make asan       the same tests under AddressSanitizer + UBSan (build/asan, build/asan-omp)"
	@echo "make fuzz       build and run every libFuzzer target (FUZZ_SECONDS each, default 60),"
	@echo "                then the wire fuzzer on a live nlpd (WIRE_FUZZ_SECONDS, default 300)"
	@echo "                and chaos (CHAOS_SECONDS, default 120)"
	@echo "make fuzz-build build the libFuzzer targets (clang)"
	@echo "make bench      benchmarks (tokenizer, engine, daemon); not part of test"
	@echo "make run        deps + build + start nlpd on conf/nlpd.conf"
	@echo "make install   install under PREFIX (/usr/local), DESTDIR for packaging;"
	@echo "                make uninstall removes it (docs/deploy.md)"
	@echo "make clean      remove build/"
	@echo "V=1             show full command lines"

deps:
	$(Q)scripts/deps.sh

# ---- generated protobuf code ----
$(B)/gen/proto/%.pb-c.c $(B)/gen/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(dir $@)
	@echo "  PROTOC  $<"
	$(Q)protoc-c --proto_path=proto --c_out=$(B)/gen/proto $<

# The Python client's message classes (clients/python/nlpclient.py imports nlp_pb2).
$(PY_PB2): proto/nlp.proto
	@mkdir -p $(dir $@)
	@echo "  PROTOC  $< (python)"
	$(Q)protoc --proto_path=proto --python_out=$(dir $@) $<

# Every object may include generated headers: make them exist first.
$(B)/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

# The matrix kernels: a*b+c as one FMA (fewer instructions, one rounding). -Wno-psabi
# (also for the elementwise kernels): GCC warns that 64-byte vector arguments have
# another ABI without AVX-512; they only pass between static functions of each file.
$(B)/obj/engine/gemm.o: CFLAGS += -ffp-contract=fast -Wno-psabi
# The int8 kernels: no FMA, so every kernel computes the same epilogue (engine/gemm_q8.c).
$(B)/obj/engine/gemm_q8.o: CFLAGS += -ffp-contract=off -Wno-psabi
$(B)/obj/engine/kernels.o: CFLAGS += -Wno-psabi

# Generated code is not ours to warn about beyond the defaults.
$(B)/obj/gen/%.o: $(B)/gen/%.c $(PROTO_H)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(filter-out -Werror,$(CFLAGS)) -c -o $@ $<

# Generated sources are kept: make would otherwise delete them as intermediates.
.SECONDARY: $(PROTO_C) $(PROTO_H)

PB_OBJ = $(patsubst $(B)/gen/%.c,$(B)/obj/gen/%.o,$(1))

$(LIBCOMMON): $(call obj,$(COMMON_SRC))
$(LIBENGINE): $(call obj,$(ENGINE_SRC)) $(call PB_OBJ,$(filter $(SPM_PB_C),$(PROTO_C)))
$(LIBTASKS):  $(call obj,$(TASKS_SRC))
$(LIBDAEMON): $(call obj,$(DAEMON_SRC))
$(LIBCLIENT): $(call obj,$(CLIENT_SRC)) $(call PB_OBJ,$(filter $(NLP_PB_C),$(PROTO_C)))

$(B)/lib%.a:
	@mkdir -p $(dir $@)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

ALL_LIBS := $(LIBDAEMON) $(LIBTASKS) $(LIBCLIENT) $(LIBENGINE) $(LIBCOMMON)

$(B)/nlpd: $(call obj,daemon/main.c) $(ALL_LIBS)
$(B)/nlpc: $(call obj,$(NLPC_SRC)) $(LIBCLIENT) $(LIBCOMMON)
# nlprun prints a task's result as nlpc does, with common/cm_json.c's printers on
# libnlpclient's result type and status names (nlpc_code_name).
$(B)/nlprun: $(call obj,$(NLPRUN_SRC)) $(LIBTASKS) $(LIBENGINE) $(LIBCOMMON) $(LIBCLIENT)
$(B)/tests/unit: $(call obj,$(UNIT_SRC)) $(ALL_LIBS)
$(BENCH_BINS): $(B)/bench/%: $(B)/obj/tests/bench/%.o $(ALL_LIBS)

$(BINS) $(B)/tests/unit $(BENCH_BINS):
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) -Wl,--start-group $(filter %.a,$^) -Wl,--end-group $(LDLIBS)

# ---- fuzzing (clang's libFuzzer; always with ASan+UBSan) ----
FUZZ_CC    ?= clang
FUZZ_FLAGS := -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined
# The project's sources are compiled once for every target (coverage-instrumented, in
# parallel) into one archive; each target links only what it uses from it.
FUZZ_CFLAGS = $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -MMD -MP -Wno-unused-parameter -Wno-psabi \
	      $(filter-out -MMD -MP -Werror $(OPT) -g $(OMPFLAGS),$(CFLAGS))
FUZZ_LIB_SRC := $(ENGINE_SRC) $(TASKS_SRC) $(DAEMON_SRC) $(CLIENT_SRC) $(COMMON_SRC)
FUZZ_OBJ := $(patsubst %.c,$(B)/fuzz-obj/%.o,$(FUZZ_LIB_SRC)) \
	    $(patsubst $(B)/gen/%.c,$(B)/fuzz-obj/gen/%.o,$(PROTO_C))
$(B)/fuzz-obj/gen/%.o: $(B)/gen/%.c $(PROTO_H)
	@mkdir -p $(dir $@)
	@echo "  CC-FUZZ $<"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<
$(B)/fuzz-obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	@echo "  CC-FUZZ $<"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<
$(B)/libfuzzsrc.a: $(FUZZ_OBJ)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^
fuzz-build: $(FUZZ_BINS)
# Runs them: tests/scripts/lib/fuzz_all.bash (FUZZ_SECONDS, WIRE_FUZZ_SECONDS, WIRE_FUZZ_SEED).
fuzz: fuzz-build all
	$(Q)NLP_BUILD=$(B) bash tests/scripts/lib/fuzz_all.bash
$(B)/fuzz/%: tests/fuzz/%.c $(B)/libfuzzsrc.a
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(B)/libfuzzsrc.a $(LDLIBS)

# ---- running ----
# Tests are run from the repository root; scripts find binaries through NLP_BUILD.
TEST_SCRIPTS := $(sort $(wildcard tests/scripts/*.sh))
# Builds use every core unless the caller gave -j itself.
JOBS := $(if $(findstring j,$(firstword $(MAKEFLAGS))),,-j$(shell nproc 2>/dev/null || echo 2))
test: deps
	$(Q)$(MAKE) --no-print-directory $(JOBS) all fuzz-build
	$(Q)NLP_BUILD=$(B) $(B)/tests/unit $(TEST_SCRIPTS)

SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
SAN_ENV   := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
# Two passes: clang (no OpenMP: the engine's threaded loops run serially) with the
# fuzzers, then gcc with OpenMP, so the threaded loops run under the sanitizers too
# (every test again but the fuzzers, which are clang's).
asan: deps
	$(Q)$(MAKE) --no-print-directory $(JOBS) B=build/asan CC=clang OPT=-O1 OMPFLAGS= \
	    SANFLAGS="$(SAN_FLAGS)" all fuzz-build
	$(Q)$(SAN_ENV) NLP_BUILD=build/asan NLP_ASAN=1 NLP_CC="clang $(SAN_FLAGS)" \
	    build/asan/tests/unit $(TEST_SCRIPTS)
	$(Q)$(MAKE) --no-print-directory $(JOBS) B=build/asan-omp CC=gcc OPT=-O1 SANFLAGS="$(SAN_FLAGS)" all
	$(Q)$(SAN_ENV) NLP_BUILD=build/asan-omp NLP_ASAN=1 NLP_CC="gcc $(SAN_FLAGS)" \
	    build/asan-omp/tests/unit \
	    $(filter-out tests/scripts/fuzz_%,$(TEST_SCRIPTS))

bench: deps all
	$(Q)NLP_BUILD=$(B) tests/bench/run.sh

run: deps all
	$(Q)scripts/run.sh $(B)

# ---- installing: make install [PREFIX=/usr/local] [DESTDIR=/pkg/root] ----
# nlpd (sbin), nlpc and nlprun (bin), libnlpclient (.so with its soname, and .a), its
# header and nlpclient.pc, the Python client as the package `nlpclient` (with nlp_pb2),
# the man pages, /etc/nlpd/{nlpd,tasks}.conf (an existing, different file is kept and the
# new one goes beside it as .dist; pristine copies in DATADIR), the systemd unit and
# sysusers file. Outside DESTDIR
# the nlpd user is created too. `make uninstall` removes all of it but a changed /etc file.
PREFIX       ?= /usr/local
BINDIR       ?= $(PREFIX)/bin
SBINDIR      ?= $(PREFIX)/sbin
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
MANDIR       ?= $(PREFIX)/share/man
DATADIR      ?= $(PREFIX)/share/nlpd
SYSCONFDIR   ?= /etc
STATEDIR     ?= /var/lib/nlpd
UNITDIR      ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
SYSUSERSDIR  ?= $(PREFIX)/lib/sysusers.d
PYTHON       ?= /usr/bin/python3
# Debian's convention: /usr/lib/python3/dist-packages for PREFIX=/usr, else
# PREFIX/lib/python3.X/dist-packages (on sys.path for /usr/local); elsewhere sysconfig's.
PYDIR        ?= $(shell $(PYTHON) -c 'import sys, sysconfig; p = sys.argv[1]; \
    deb = "deb_system" in sysconfig.get_scheme_names(); \
    print(p + "/lib/python3/dist-packages" if deb and p == "/usr" else \
          p + "/lib/python%d.%d/dist-packages" % sys.version_info[:2] if deb else \
          sysconfig.get_path("purelib", "posix_prefix", vars={"base": p, "platbase": p}))' $(PREFIX))

VERSION  := $(shell sed -n 's/^\#define NLPC_VERSION "\(.*\)"/\1/p' clients/libnlpclient/nlpclient.h)
SO_NAME  := libnlpclient.so.$(firstword $(subst ., ,$(VERSION)))
SO_FILE  := $(B)/libnlpclient.so.$(VERSION)
# Position-independent objects of the client library and the protobuf code it uses:
# nothing from libcommon.a (built without -fPIC) goes in. Only nlpc_* is exported.
PIC_OBJ  := $(patsubst %.c,$(B)/pic/%.o,$(CLIENT_SRC)) $(B)/pic/gen/proto/nlp.pb-c.o
SO_LIBS  := $(shell $(PKGCONF) --libs libzmq libprotobuf-c 2>/dev/null)

$(B)/pic/gen/%.o: $(B)/gen/%.c $(PROTO_H)
	@mkdir -p $(dir $@)
	@echo "  CC-PIC  $<"
	$(Q)$(CC) $(filter-out -Werror,$(CFLAGS)) -fPIC -c -o $@ $<
$(B)/pic/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	@echo "  CC-PIC  $<"
	$(Q)$(CC) $(CFLAGS) -fPIC -c -o $@ $<
$(SO_FILE): $(PIC_OBJ) clients/libnlpclient/nlpclient.map
	@echo "  LD      $@"
	$(Q)$(CC) -shared -Wl,-soname,$(SO_NAME) -Wl,--version-script=clients/libnlpclient/nlpclient.map \
	    -Wl,-z,defs -o $@ $(PIC_OBJ) $(SO_LIBS)
	$(Q)ln -sf $(notdir $@) $(B)/$(SO_NAME) && ln -sf $(SO_NAME) $(B)/libnlpclient.so
# Made again by every install: they hold PREFIX and STATEDIR, which may differ each time.
.PHONY: FORCE
$(B)/nlpclient.pc: clients/libnlpclient/nlpclient.pc.in clients/libnlpclient/nlpclient.h FORCE
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' $< > $@
# The config /etc gets: the model under STATEDIR, the ipc socket in the unit's
# RuntimeDirectory (PrivateTmp hides /tmp from clients).
$(B)/etc/nlpd.conf: conf/nlpd.conf FORCE
	@mkdir -p $(dir $@)
	$(Q)sed -e 's|^# model = "models/flan-t5-small";|model = "$(STATEDIR)/models/flan-t5-small";|' \
	    -e 's|^# \(bind = .*"ipc:///run/nlpd/nlpd.sock".*\)|\1|' $< > $@.tmp
	$(Q)grep -q '^model = "$(STATEDIR)/' $@.tmp && grep -q '^bind = .*ipc:///run/nlpd/nlpd.sock' $@.tmp || \
	    { echo "conf/nlpd.conf changed: update the install sed in the Makefile" >&2; exit 1; }
	$(Q)mv $@.tmp $@

lib: $(SO_FILE) $(LIBCLIENT)

MAN_PAGES := docs/man/nlpd.8 docs/man/nlpc.1 docs/man/nlprun.1
# install-file MODE SRC DEST: never silently over a different /etc file.
define install_conf
	$(Q)if [ -e $(2) ] && ! cmp -s $(1) $(2); then \
	    install -m 644 $(1) $(2).dist; \
	    echo "install: kept $(2) (changed); the new one is $(2).dist"; \
	else install -m 644 $(1) $(2); fi
endef

install: $(BINS) $(SO_FILE) $(LIBCLIENT) $(B)/nlpclient.pc $(PY_PB2) $(B)/etc/nlpd.conf
	@echo "  INSTALL $(DESTDIR)$(PREFIX)"
	$(Q)install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(LIBDIR) \
	    $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(PYDIR)/nlpclient $(DESTDIR)$(SYSCONFDIR)/nlpd \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	$(Q)install -m 755 $(B)/nlpd $(DESTDIR)$(SBINDIR)/nlpd
	$(Q)install -m 755 $(B)/nlpc $(B)/nlprun $(DESTDIR)$(BINDIR)/
	$(Q)install -m 644 $(SO_FILE) $(DESTDIR)$(LIBDIR)/
	$(Q)ln -sf $(notdir $(SO_FILE)) $(DESTDIR)$(LIBDIR)/$(SO_NAME)
	$(Q)ln -sf $(SO_NAME) $(DESTDIR)$(LIBDIR)/libnlpclient.so
	$(Q)install -m 644 $(LIBCLIENT) $(DESTDIR)$(LIBDIR)/
	$(Q)install -m 644 clients/libnlpclient/nlpclient.h $(DESTDIR)$(INCLUDEDIR)/
	$(Q)install -m 644 $(B)/nlpclient.pc $(DESTDIR)$(PKGCONFIGDIR)/
	$(Q)install -m 644 docs/man/nlpc.1 docs/man/nlprun.1 $(DESTDIR)$(MANDIR)/man1/
	$(Q)install -m 644 docs/man/nlpd.8 $(DESTDIR)$(MANDIR)/man8/
	$(Q)install -m 644 clients/python/nlpclient.py $(DESTDIR)$(PYDIR)/nlpclient/__init__.py
	$(Q)install -m 644 clients/python/__main__.py $(PY_PB2) $(DESTDIR)$(PYDIR)/nlpclient/
	$(Q)install -d $(DESTDIR)$(DATADIR)
	$(Q)install -m 644 $(B)/etc/nlpd.conf conf/tasks.conf $(DESTDIR)$(DATADIR)/
	$(call install_conf,$(DESTDIR)$(DATADIR)/nlpd.conf,$(DESTDIR)$(SYSCONFDIR)/nlpd/nlpd.conf)
	$(call install_conf,$(DESTDIR)$(DATADIR)/tasks.conf,$(DESTDIR)$(SYSCONFDIR)/nlpd/tasks.conf)
	$(Q)sed 's|/usr/local/sbin/nlpd|$(SBINDIR)/nlpd|' conf/systemd/nlpd.service \
	    > $(DESTDIR)$(UNITDIR)/nlpd.service && chmod 644 $(DESTDIR)$(UNITDIR)/nlpd.service
	$(Q)install -m 644 conf/systemd/nlpd.sysusers $(DESTDIR)$(SYSUSERSDIR)/nlpd.conf
	$(Q)if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" -eq 0 ] && ! getent passwd nlpd >/dev/null; then \
	    systemd-sysusers $(SYSUSERSDIR)/nlpd.conf 2>/dev/null || \
	    useradd --system --home-dir $(STATEDIR) --no-create-home --shell /usr/sbin/nologin nlpd; \
	    echo "install: created the system user nlpd"; fi
	$(Q)if [ -z "$(DESTDIR)" ]; then ldconfig 2>/dev/null || true; \
	    echo "install: put the model in $(STATEDIR)/models/flan-t5-small, then" \
	         "systemctl daemon-reload && systemctl enable --now nlpd (docs/deploy.md)"; fi

# /etc files are removed only when they are still what install wrote (the pristine
# copies in DATADIR, which also serve to diff a changed /etc file against).
uninstall:
	$(Q)rm -f $(DESTDIR)$(SBINDIR)/nlpd $(DESTDIR)$(BINDIR)/nlpc $(DESTDIR)$(BINDIR)/nlprun \
	    $(DESTDIR)$(LIBDIR)/$(notdir $(SO_FILE)) $(DESTDIR)$(LIBDIR)/$(SO_NAME) \
	    $(DESTDIR)$(LIBDIR)/libnlpclient.so $(DESTDIR)$(LIBDIR)/libnlpclient.a \
	    $(DESTDIR)$(INCLUDEDIR)/nlpclient.h $(DESTDIR)$(PKGCONFIGDIR)/nlpclient.pc \
	    $(DESTDIR)$(MANDIR)/man1/nlpc.1 $(DESTDIR)$(MANDIR)/man1/nlprun.1 \
	    $(DESTDIR)$(MANDIR)/man8/nlpd.8 $(DESTDIR)$(UNITDIR)/nlpd.service \
	    $(DESTDIR)$(SYSUSERSDIR)/nlpd.conf
	$(Q)rm -rf $(DESTDIR)$(PYDIR)/nlpclient
	$(Q)for f in nlpd.conf tasks.conf; do \
	    d=$(DESTDIR)$(SYSCONFDIR)/nlpd/$$f; s=$(DESTDIR)$(DATADIR)/$$f; \
	    if [ -e $$d ] && [ -e $$s ] && cmp -s $$s $$d; then rm -f $$d; \
	    elif [ -e $$d ]; then echo "uninstall: kept $$d (changed)"; fi; \
	    rm -f $$d.dist $$s; done
	$(Q)rmdir $(DESTDIR)$(SYSCONFDIR)/nlpd $(DESTDIR)$(DATADIR) 2>/dev/null || true
	@echo "  UNINSTALL $(DESTDIR)$(PREFIX)"

-include $(shell find $(B)/pic -name '*.d' 2>/dev/null)

clean:
	rm -rf build

-include $(shell find $(B)/obj $(B)/fuzz-obj $(B)/fuzz -name '*.d' 2>/dev/null)
