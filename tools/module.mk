# The shmbus command: every tools/*.c (the subcommands, and the web monitor in
# tools/monitor.c) linked into $(BUILD)/bin/shmbus with the static library and libmicrohttpd;
# with the benchmark library too when bench/ provides bench/bench.h (`shmbus bench`).
TOOLS_SRCS   := $(wildcard tools/*.c)
TOOLS_OBJS   := $(TOOLS_SRCS:%.c=$(BUILD)/%.o)
SHMBUS_BIN   := $(BUILD)/bin/shmbus
TOOLS_LDLIBS := -lmicrohttpd

# bench/module.mk is read after this file, so BENCH_A and BENCH_LDLIBS are only used in the
# recipe (expanded when it runs); the prerequisite names the archive's documented path.
ifneq ($(wildcard bench/bench.h),)
TOOLS_BENCH_A := $(BUILD)/bench/libbench.a
$(BUILD)/tools/shmbus.o: CPPFLAGS += -DHAVE_BENCH
$(BUILD)/tools/shmbus.o: bench/bench.h
endif

$(SHMBUS_BIN): $(TOOLS_OBJS) $(LIB_A) $(TOOLS_BENCH_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(TOOLS_OBJS) \
	    $(if $(TOOLS_BENCH_A),$(or $(BENCH_A),$(TOOLS_BENCH_A)) $(BENCH_LDLIBS)) \
	    $(LIB_A) $(TOOLS_LDLIBS) $(LDLIBS)

.PHONY: tools
tools: $(SHMBUS_BIN)

# Built with everything once the library has sources to link against.
ifneq ($(wildcard src/*.c),)
ALL_TARGETS += $(SHMBUS_BIN)
endif

# The issue's full-size ring (64 clients, 1,000,000 messages); make check runs a smaller one.
.PHONY: ring-million
ring-million: $(SHMBUS_BIN)
	$(SHMBUS_BIN) ring -c 64 -n 1000000 --quiet
