# The seed's three clients, built into $(BUILD)/classic/ (start.sh finds them there), and the
# two helpers their tests need. One shared body (exchange.c, session.c); each client is its
# own main.
CLASSIC_BINS   := $(BUILD)/classic/client1 $(BUILD)/classic/client2 $(BUILD)/classic/client3
CLASSIC_COMMON := $(BUILD)/classic/exchange.o $(BUILD)/classic/session.o $(BUILD)/src/proc.o
CLASSIC_OBJS   := $(CLASSIC_COMMON) $(CLASSIC_BINS:%=%.o)

# make DEBUG=1: the seed's Debug Mode (trace every semaphore operation). The stamp holds the
# flag and changes only when it does, so switching DEBUG rebuilds the clients, and a traced
# build cannot linger unnoticed under a plain `make`.
CLASSIC_DEFS  := $(if $(filter 1,$(DEBUG)),-DDEBUG)
CLASSIC_STAMP := $(BUILD)/classic/defs.stamp

.PHONY: classic classic-stamp-check
classic: $(CLASSIC_BINS)
ifneq ($(wildcard classic/*.c),)
ALL_TARGETS += $(CLASSIC_BINS)
endif

$(CLASSIC_STAMP): classic-stamp-check
	@mkdir -p $(dir $@)
	@echo '$(CLASSIC_DEFS)' | cmp -s - $@ || echo '$(CLASSIC_DEFS)' > $@

$(CLASSIC_OBJS): $(CLASSIC_STAMP)
$(CLASSIC_OBJS): CPPFLAGS += $(CLASSIC_DEFS)

$(CLASSIC_BINS): %: %.o $(CLASSIC_COMMON)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Test helpers: a client that behaves as the seed's originals (C++, built with g++ against
# client.h, with 10 one-second rounds instead of 30 to keep the tests short), and a tool that
# plants foreign segments. Named classic_* (not test_*) so tests/module.mk does not link them
# as cmocka tests; the tests/test_classic_*.sh scripts run them.
CXX ?= g++
CLASSIC_TEST_BINS := $(BUILD)/tests/classic_seedclient $(BUILD)/tests/classic_ipc

$(BUILD)/tests/classic_ipc: %: %.o
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/classic_seedclient: tests/classic_seedclient.cpp classic/client.h
	@mkdir -p $(dir $@)
	$(CXX) -std=c++11 -Wall -Wextra -Werror -O2 -DNUM_MESSAGES=10 -o $@ $< -pthread -lrt

CHECK_DEPS += $(CLASSIC_BINS) $(CLASSIC_TEST_BINS)
