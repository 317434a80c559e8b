# meshbroker — GNU make.  `make run` and `make test` are the two commands;
# see README.md.  Objects go under $(BUILD) (build/ or build/asan/).
CC      ?= gcc
BUILD   ?= build
PREFIX  ?= /usr/local
DESTDIR ?=
PKGS    := libsodium libpq libcjson libsystemd nettle libcurl

CFLAGS_OPT ?= -O2
# -ffunction-sections/-fdata-sections with --gc-sections: the worker maps no
# code it never calls (a fresh worker's private memory, test_worker_cost)
CFLAGS  = -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -g $(CFLAGS_OPT) -ffunction-sections -fdata-sections -I. -I$(BUILD)/gen \
          $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(SANFLAGS) $(EXTRA_CFLAGS)
# libpq is not linked: db/pq.c loads it with dlopen when a database session
# starts (issue 13, docs/design.md "Cost of a worker"); only its headers are used.
LDLIBS  = -Wl,--as-needed -Wl,--gc-sections $(shell pkg-config --libs $(filter-out libpq libcurl,$(PKGS)) 2>/dev/null) -lwslay -lhttp_parser \
          -lpthread $(SANFLAGS)
# libcurl (TLS, URLs, HTTP) is meshctl's alone: the worker and the acceptor
# start without it (issue 19; the worker's start-up cost, issue 13).
CLI_LDLIBS = $(shell pkg-config --libs libcurl 2>/dev/null) $(LDLIBS)
ifeq ($(SAN),1)
SANFLAGS   := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
CFLAGS_OPT := -O1
endif

COMMON_SRC := $(wildcard common/*.c)
PROTO_SRC  := $(wildcard proto/*.c)
SHM_SRC    := $(wildcard shm/*.c)
DB_SRC     := $(wildcard db/*.c)
WORKER_SRC := $(filter-out worker/main.c,$(wildcard worker/*.c))
CLI_SRC    := $(filter-out cli/main.c,$(wildcard cli/*.c))
ACCEPT_SRC := $(wildcard accept/*.c)
MIGRATIONS := $(sort $(wildcard db/migrations/*.sql))
UNIT_SRC   := $(wildcard tests/unit/test_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIB_OBJ    := $(call obj,$(COMMON_SRC) $(PROTO_SRC) $(SHM_SRC) $(DB_SRC)) $(BUILD)/obj/gen/migrations.o
WORKER_OBJ := $(call obj,$(WORKER_SRC))
CLI_OBJ    := $(call obj,$(CLI_SRC))
BINS       := $(BUILD)/bin/meshbroker-worker $(BUILD)/bin/meshbroker-accept $(BUILD)/bin/meshctl \
              $(BUILD)/bin/meshbroker-relay
# stand-ins for libpq's GSSAPI and LDAP libraries, loaded by the worker from
# ../lib/meshbroker next to its bin/ (db/pq.c, pqstub/; issue 23)
PQSTUBS    := $(patsubst %,$(BUILD)/lib/meshbroker/pqstub-%.so,gssapi ldap crypto ssl)
UNIT_BINS  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
# The worker's seccomp allow-list (worker/sandbox_calls.h) is compiled to BPF
# with libseccomp at build time (scripts/sandbox-bpf-gen.c, a build tool and
# the only thing linked with -lseccomp); the worker loads the program as is.
SANDBOX_GEN := $(BUILD)/gen/sandbox-bpf-gen
WORKER_OBJ  += $(BUILD)/obj/gen/sandbox_bpf.o
# A test-only worker whose skel.c calls a forbidden system call on SIGUSR1
# (tests/integration/test_worker_sandbox.py); never installed.
SBXTEST_WORKER := $(BUILD)/tests/meshbroker-worker-sbxtest

# quiet by default: `make V=1` shows the full commands
ifeq ($(V),1)
Q :=
say :=
else
Q := @
say = printf '  %-6s %s\n' $(1) $(2);
endif

.PHONY: all build deps deps-test deps-package run test unit-bins asan-bins callgraph clean install fuzz \
	bench package-test soak test-repeat
all: deps
	@$(MAKE) --no-print-directory build

build: $(BINS) $(SBXTEST_WORKER) $(PQSTUBS)

deps:
	@sh scripts/deps.sh build
deps-test:
	@sh scripts/deps.sh test
deps-package:
	@sh scripts/deps.sh package

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(Q)$(call say,CC,$@)$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/gen/migrations.c: $(MIGRATIONS) scripts/embed-sql.sh
	@mkdir -p $(dir $@)
	$(Q)$(call say,GEN,$@)sh scripts/embed-sql.sh $(MIGRATIONS) > $@.tmp && mv $@.tmp $@

# The commit the binaries report (meshbroker_build_info, /health's gitSha)
# unless GIT_SHA is set at run time: git's short sha when building in a
# checkout, else GIT_SHA from the make command line or the environment
# (debian/rules passes it), else "unknown".  The header is rewritten only
# when the sha changes, so an unchanged tree rebuilds nothing.
ifeq ($(strip $(GIT_SHA)),)
GIT_SHA := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
endif
$(BUILD)/gen/git_sha.h: FORCE
	@mkdir -p $(dir $@)
	@sha=$$(printf '%s' '$(subst ',,$(GIT_SHA))' | tr -cd 'A-Za-z0-9._+-' | cut -c1-64); \
	  printf '#define MESHBROKER_GIT_SHA "%s"\n' "$${sha:-unknown}" > $@.tmp; \
	  if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi
$(BUILD)/obj/common/config.o: $(BUILD)/gen/git_sha.h
FORCE:

$(BUILD)/obj/gen/migrations.o: $(BUILD)/gen/migrations.c
	@mkdir -p $(dir $@)
	$(Q)$(call say,CC,$@)$(CC) $(CFLAGS) -c -o $@ $<

$(SANDBOX_GEN): scripts/sandbox-bpf-gen.c worker/sandbox_calls.h
	@mkdir -p $(dir $@)
	$(Q)$(call say,CC,$@)$(CC) -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -I. \
		$(if $(filter 1,$(SAN)),-DSANDBOX_SAN=1) -o $@ $< -lseccomp

$(BUILD)/gen/sandbox_bpf.c: $(SANDBOX_GEN)
	$(Q)$(call say,GEN,$@)$(SANDBOX_GEN) > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/gen/sandbox_bpf.o: $(BUILD)/gen/sandbox_bpf.c
	@mkdir -p $(dir $@)
	$(Q)$(call say,CC,$@)$(CC) $(CFLAGS) -c -o $@ $<

# http_parser linked statically into the worker (Debian's libhttp-parser-dev
# ships libhttp_parser.a): one shared object less to open, map and relocate
# at every worker's start (docs/design.md "A worker's start and end, fourth
# round").  A link choice, not a new library; libsodium stays shared (the
# libcrypto stand-in loads it anyway with libpq, pqstub/crypto.c).
WORKER_LDLIBS = $(subst -lhttp_parser,-l:libhttp_parser.a,$(LDLIBS))
$(BUILD)/bin/meshbroker-worker: $(call obj,worker/main.c) $(WORKER_OBJ) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(Q)$(call say,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(WORKER_LDLIBS)

$(BUILD)/obj/worker/skel-sbxtest.o: worker/skel.c
	@mkdir -p $(dir $@)
	$(Q)$(call say,CC,$@)$(CC) $(CFLAGS) -DMESHBROKER_TEST_FORBIDDEN_SYSCALL -MMD -MP -c -o $@ $<
$(SBXTEST_WORKER): $(call obj,worker/main.c) $(filter-out $(call obj,worker/skel.c),$(WORKER_OBJ)) \
		$(BUILD)/obj/worker/skel-sbxtest.o $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(Q)$(call say,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(WORKER_LDLIBS)

$(BUILD)/bin/meshbroker-accept: $(call obj,$(ACCEPT_SRC)) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(Q)$(call say,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# the relay of a host (HOST_ID, issue 24) holds one LISTENing session for
# its whole life: libpq is linked, not loaded on demand
$(BUILD)/bin/meshbroker-relay: $(call obj,relay/relay.c worker/ring.c worker/hosts.c) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(Q)$(call say,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(shell pkg-config --libs libpq)

$(BUILD)/bin/meshctl: $(call obj,cli/main.c) $(CLI_OBJ) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(Q)$(call say,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(CLI_LDLIBS)

# no sanitizer: they hold (almost) no state, and libpq must find them whatever
# loads it.  Each has the SONAME of the library it stands in for.  No start
# files: without crtbegin's __cxa_finalize/_ITM_*/__dso_handle they have no
# relocations to write (the crypto one only its GOT), so no private pages.
# Linked against libc all the same (lintian: library-not-linked-against-libc).
PQSTUB_SONAME_gssapi := libgssapi_krb5.so.2
PQSTUB_SONAME_ldap   := libldap-2.5.so.0
PQSTUB_SONAME_crypto := libcrypto.so.3
PQSTUB_SONAME_ssl    := libssl.so.3
PQSTUB_LIBS_crypto   := $(shell pkg-config --libs libsodium 2>/dev/null)
$(BUILD)/lib/meshbroker/pqstub-%.so: pqstub/%.c pqstub/%.map
	@mkdir -p $(dir $@)
	$(Q)$(call say,LD,$@)$(CC) -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -g -fPIC -shared -nostartfiles $(LDFLAGS) \
	  $(EXTRA_CFLAGS) $(shell pkg-config --cflags libsodium 2>/dev/null) -Wl,-soname,$(PQSTUB_SONAME_$*) \
	  -Wl,--version-script=pqstub/$*.map -Wl,-z,now -o $@ $< $(PQSTUB_LIBS_$*) -Wl,--no-as-needed -lc

# Unit tests link every library module plus the worker's and the client's
# modules (not their main()), and the Check framework.
$(BUILD)/tests/%: tests/unit/%.c $(WORKER_OBJ) $(CLI_OBJ) $(LIB_OBJ) | $(PQSTUBS)
	@mkdir -p $(dir $@)
	$(Q)$(call say,LD,$@)$(CC) $(CFLAGS) -o $@ $^ $(CLI_LDLIBS) $(shell pkg-config --libs check 2>/dev/null)

unit-bins: $(UNIT_BINS) $(SBXTEST_WORKER)

# The three programs built with ASan+UBSan into build/asan/bin, for running
# the integration suite against them (MESHBROKER_BIN=build/asan/bin).
asan-bins:
	@$(MAKE) --no-print-directory build BUILD=build/asan SAN=1

# No call cycle among the modules of any program: worker, accept, meshctl, shm,
# db (scripts/callgraph.sh: nm + includes; scripts/callgraph.allow lists the
# temporary exceptions).  `make test` runs it first (tests/run.sh, part callgraph).
callgraph: build
	@sh scripts/callgraph.sh $(BUILD)

# The whole suite: a normal build and an ASan+UBSan build; tests/run.sh runs
# the call-graph check, the unit tests (sanitized), the fuzz targets, the
# integration tests against both builds, and prints the summary line.
test: deps-test
	@$(MAKE) --no-print-directory build
	@$(MAKE) --no-print-directory build unit-bins BUILD=build/asan SAN=1
	@$(MAKE) --no-print-directory unit-bins
	@bash tests/run.sh

# Flake hunting (issue 25): the ASan unit tests N times in a row, then the
# integration suite IT times (against the normal build; PARTS="unit asan"
# picks the ASan one), stopping at the first failing round.
N  ?= 20
IT ?= 1
test-repeat: deps-test
	@$(MAKE) --no-print-directory build
	@$(MAKE) --no-print-directory build unit-bins BUILD=build/asan SAN=1
	@REPEAT_UNIT=$(N) REPEAT_IT=$(IT) bash tests/run.sh

run: deps
	@$(MAKE) --no-print-directory build
	@bash scripts/run.sh

fuzz:
	@$(MAKE) -C fuzz

# Debian package (issue 12): dpkg-buildpackage on a fresh copy of the tree,
# its contents, lintian, then dpkg -i on this machine and the installed user,
# runtime dir, config and units.  Slow and installs system-wide, so not in `make test`.
package-test: deps-package
	@bash scripts/package-test.sh

bench: all
	@bash bench/run.sh

# Mixed traffic, reconnects, SIGKILLed workers and a PostgreSQL restart for
# SOAK_MINUTES (default 30) against its own PostgreSQL and broker on loopback,
# then every message and resource accounted for (scripts/soak.py).  Not in
# `make test`: `make soak SOAK_MINUTES=2` is a quick look.
SOAK_MINUTES ?= 30
soak: deps-test
	@$(MAKE) --no-print-directory build
	@SOAK_MINUTES=$(SOAK_MINUTES) /usr/bin/python3 scripts/soak.py

# `make install DESTDIR=... PREFIX=/usr`: stripped binaries (INSTALL_STRIP= keeps
# the symbols, as debian/rules does so that dh_strip makes the -dbgsym package),
# units, sysusers.d/tmpfiles.d, man pages, meshctl's bash completion, the Grafana dashboard and
# Prometheus alert rules (share/meshbroker/), and /etc/meshbroker/env (0600) unless
# one is there already.  Units name $(PREFIX)/bin; the sysusers/tmpfiles/unit
# directories sit under $(PREFIX)/lib, which systemd searches for /usr and /usr/local.
SYSCONFDIR    ?= /etc
UNITDIR       ?= $(PREFIX)/lib/systemd/system
MANDIR        ?= $(PREFIX)/share/man
INSTALL_STRIP ?= -s
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
UNITS  := $(wildcard units/*.socket units/*.service units/*.slice)
MAN1   := $(wildcard man/*.1)
MAN5   := $(wildcard man/*.5)
MAN8   := $(wildcard man/*.8)
install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) $(DESTDIR)$(PREFIX)/lib/sysusers.d \
	  $(DESTDIR)$(PREFIX)/lib/tmpfiles.d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
	  $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSCONFDIR)/meshbroker
	install -m 0755 $(INSTALL_STRIP) $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -d $(DESTDIR)$(PREFIX)/lib/meshbroker
	install -m 0644 $(INSTALL_STRIP) $(PQSTUBS) $(DESTDIR)$(PREFIX)/lib/meshbroker/
	for u in $(UNITS); do \
	  sed -e 's|/usr/local/bin/|$(PREFIX)/bin/|g' -e 's|/etc/meshbroker/|$(SYSCONFDIR)/meshbroker/|g' \
	    $$u > $(DESTDIR)$(UNITDIR)/$$(basename $$u) && \
	  chmod 0644 $(DESTDIR)$(UNITDIR)/$$(basename $$u) || exit 1; \
	done
	install -m 0644 units/sysusers.d/meshbroker.conf $(DESTDIR)$(PREFIX)/lib/sysusers.d/meshbroker.conf
	sed 's|/etc/meshbroker|$(SYSCONFDIR)/meshbroker|g' units/tmpfiles.d/meshbroker.conf \
	  > $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/meshbroker.conf
	chmod 0644 $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/meshbroker.conf
	install -m 0644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(MAN5) $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 $(MAN8) $(DESTDIR)$(MANDIR)/man8/
	install -d $(DESTDIR)$(COMPLETIONDIR)
	install -m 0644 cli/meshctl.bash-completion $(DESTDIR)$(COMPLETIONDIR)/meshctl
	install -d $(DESTDIR)$(PREFIX)/share/meshbroker/grafana $(DESTDIR)$(PREFIX)/share/meshbroker/prometheus
	install -m 0644 units/grafana/meshbroker.json $(DESTDIR)$(PREFIX)/share/meshbroker/grafana/
	install -m 0644 units/prometheus/meshbroker-alerts.yml $(DESTDIR)$(PREFIX)/share/meshbroker/prometheus/
	[ -e $(DESTDIR)$(SYSCONFDIR)/meshbroker/env ] || \
	  install -m 0600 units/env.example $(DESTDIR)$(SYSCONFDIR)/meshbroker/env

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
