# The benchmark (issue 5): its own program, shmbus-bench, which links the peers (ZeroMQ,
# iceoryx, SQLite). `make bench` builds and runs it in full; `shmbus bench` runs it (found next to
# the shmbus command, or in PATH); `make install-bench` installs it in BINDIR. The shmbus
# command never links it.
BENCH_SRCS := $(filter-out bench/main.c,$(wildcard bench/*.c))
BENCH_OBJS := $(BENCH_SRCS:%.c=$(BUILD)/%.o)
BENCH_A    := $(BUILD)/bench/libbench.a
BENCH_BIN  := $(BUILD)/bin/shmbus-bench

# Peers are found at build time (scripts/deps.sh bench installs them). One that is missing
# becomes a "skipped: why" line in the report, not a build failure.
BENCH_ZMQ_H   := $(wildcard /usr/include/zmq.h)
BENCH_IOX_API := $(firstword $(wildcard /usr/include/iceoryx/*/iceoryx_binding_c/api.h))
BENCH_CPPFLAGS :=
BENCH_LDLIBS   :=
ifneq ($(BENCH_ZMQ_H),)
BENCH_CPPFLAGS += -DBENCH_HAVE_ZMQ
BENCH_LDLIBS   += -lzmq
endif
ifneq ($(BENCH_IOX_API),)
BENCH_CPPFLAGS += -DBENCH_HAVE_ICEORYX -I$(patsubst %/iceoryx_binding_c/api.h,%,$(BENCH_IOX_API))
BENCH_LDLIBS   += -liceoryx_binding_c
endif
# SQLite: the peer of the durable rows (issue 13), inserting the same messages on the same disk.
BENCH_SQLITE_H := $(wildcard /usr/include/sqlite3.h)
ifneq ($(BENCH_SQLITE_H),)
BENCH_CPPFLAGS += -DBENCH_HAVE_SQLITE
BENCH_LDLIBS   += -lsqlite3
endif
BENCH_LDLIBS += -lm -pthread -lrt

# The shmbus rows need the library; without it they print "skipped: library not ready".
BENCH_LIB :=
ifneq ($(wildcard include/shmbus.h),)
ifneq ($(LIB_SRCS),)
BENCH_CPPFLAGS += -DBENCH_HAVE_SHMBUS
BENCH_LIB      := $(LIB_A)
endif
endif

$(BENCH_OBJS) $(BUILD)/bench/main.o: CPPFLAGS += $(BENCH_CPPFLAGS)

$(BENCH_A): $(BENCH_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(BENCH_BIN): $(BUILD)/bench/main.o $(BENCH_A) $(BENCH_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(BENCH_LDLIBS) $(LDLIBS)

ALL_TARGETS += $(BENCH_A) $(BENCH_BIN)
CHECK_DEPS  += $(BENCH_BIN)

# The full run. It also builds the classic clients when they exist, for the exchange row.
bench: deps $(BENCH_BIN) $(if $(wildcard classic/*.c),$(CLASSIC_BINS))
	BUILD=$(BUILD) $(BENCH_BIN)

# Separate from `make install`, which must not pull the peers' packages (Makefile picks the
# bench package group alone for this goal).
.PHONY: install-bench uninstall-bench
install-bench: $(BENCH_BIN)
	install -d $(DESTDIR)$(BINDIR)
	install -m 755 $(BENCH_BIN) $(DESTDIR)$(BINDIR)/shmbus-bench

uninstall-bench:
	rm -f $(DESTDIR)$(BINDIR)/shmbus-bench

# `make callgrind`: the hot path's instructions per message (bench/cg/), reproducible on any
# machine. Not part of `make check`: valgrind takes a while.
CG_BIN := $(BUILD)/bench/cgprobe
$(CG_BIN): $(BUILD)/bench/cg/cgprobe.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
ALL_TARGETS += $(CG_BIN)

.PHONY: callgrind
callgrind: $(CG_BIN)
	bench/cg/run.sh $(CG_BIN)
