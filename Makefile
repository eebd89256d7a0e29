# shmbus: GNU Makefile.
#
#   make               build everything (library, classic clients, tools, tests, bench)
#   make demo          build and run the seed's three-client exchange (classic/start.sh)
#   make check         build and run the whole test suite (under 10 minutes on 2 cores)
#   make check SAN=address,undefined   the same suite under ASan+UBSan (own build dir)
#   make tsan          the threaded harness under ThreadSanitizer
#   make mutants       hand-picked mutations of src/ (tests/mutants/list): each must be caught
#   make bench         the benchmark (shmbus bench)
#   make install PREFIX=/usr/local [DESTDIR=...]   the library, headers, pkg-config file,
#                      man pages, the shmbus command (and its monitor) and bash completion:
#                      needs only the build and monitor package groups
#   make install-bench the benchmark program shmbus-bench (found by `shmbus bench`)
#   make DEBUG=1       classic clients that trace every semaphore operation
#
# Each part of the tree adds its own rules in <dir>/module.mk; this file holds what they share.

.DEFAULT_GOAL := all
.DELETE_ON_ERROR:
.SUFFIXES:

CC      ?= cc
PREFIX  ?= /usr/local
BUILD   ?= build
SAN     ?=
DEBUG   ?= 0
comma   := ,

ifneq ($(SAN),)
BUILD   := build/san-$(subst $(comma),-,$(SAN))
SANFLAGS := -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

CPPFLAGS += -D_GNU_SOURCE -Iinclude -MMD -MP
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -Wall -Wextra -Werror -fPIC $(SANFLAGS)
LDFLAGS  += $(SANFLAGS)
LDLIBS   += -pthread -lrt

# Where `make install` puts things (PREFIX and DESTDIR as usual).
LIBDIR        ?= $(PREFIX)/lib
INCDIR        ?= $(PREFIX)/include
BINDIR        ?= $(PREFIX)/bin
LIBEXECDIR    ?= $(PREFIX)/libexec
MANDIR        ?= $(PREFIX)/share/man
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions

# Filled in by the module.mk files.
INSTALL_PARTS   :=
UNINSTALL_PARTS :=
ALL_TARGETS  :=
TEST_BINS    :=
TEST_SCRIPTS :=
CHECK_DEPS   :=
CLEAN_FILES  :=

DEPS := scripts/deps.sh
# Installing pulls only what the installed files need: the library (libc) and the shmbus
# command with its monitor (libmicrohttpd); the benchmark only its peers. Anything else
# (tests, fuzzing) wants every group.
ifneq ($(MAKECMDGOALS),)
ifeq ($(filter-out install uninstall lib tools,$(MAKECMDGOALS)),)
DEPS_GROUPS ?= build monitor
else ifeq ($(filter-out install-bench uninstall-bench,$(MAKECMDGOALS)),)
DEPS_GROUPS ?= build bench
endif
endif
DEPS_GROUPS ?= build test monitor bench fuzz

# Install missing Debian packages before anything is read or built: the modules below look
# for some headers (ZeroMQ, iceoryx, libFuzzer) when they are parsed, and a parallel build
# must not start compiling before the headers exist. `make demo` needs only the compiler.
ifeq ($(filter clean format demo,$(MAKECMDGOALS)),)
ifneq ($(shell $(DEPS) $(DEPS_GROUPS) >&2 || echo failed),)
$(error missing Debian packages (see above))
endif
endif

include src/module.mk
include classic/module.mk
include tools/module.mk
include bench/module.mk
include tests/module.mk
-include examples/module.mk
include python/module.mk

.PHONY: all deps check demo tsan bench install uninstall install-bench uninstall-bench clean \
    format mutants

all: deps $(ALL_TARGETS)

# Each module adds its install-<part> to INSTALL_PARTS (src: the library; tools: the
# command, its monitor, man pages and completion; python/module.mk, when there is one, the
# Python module); the benchmark has its own install-bench, not part of these.
install: $(INSTALL_PARTS)
uninstall: $(UNINSTALL_PARTS)

# The packages are checked when make starts (above); `make deps` does only that.
deps:
	@$(DEPS) $(DEPS_GROUPS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

demo:
	@$(DEPS) build
	$(MAKE) --no-print-directory classic DEPS_GROUPS=build
	CLIENT_DIR=$(BUILD)/classic ./classic/start.sh

check: all $(TEST_BINS) $(CHECK_DEPS)
	BUILD=$(BUILD) SAN=$(SAN) tests/run.sh $(TEST_BINS) $(TEST_SCRIPTS)

# Builds its own copies in a temporary directory: the tree here is never edited.
mutants:
	@$(DEPS) build test
	tests/mutants/run.py

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build $(CLEAN_FILES)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
