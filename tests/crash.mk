# Issue 4's crash and security proofs: extra rules (included from tests/module.mk).
#
#   make soak     the randomized kill test for 10,000 rounds (tests/test_crash.c), then
#                 1,000 leader kills (tests/test_group.c test_leader_kills), then the
#                 durable crash-and-reboot test for 2,000 (tests/test_durable_crash.c), then
#                 the durable power-cut test for 20,000 (tests/test_durable_power.c)
#   make fuzz     the segment and journal fuzzers for FUZZ_SECONDS (default 600) each, instead
#                 of make check's 60 and 20
#   make model    the spin models (mailbox and v2 ring) with their larger configurations too
#
# The fuzzer (tests/fuzz_segment.c) is libFuzzer: clang -fsanitize=fuzzer,address,undefined,
# with the library compiled again under the same flags into build/fuzz (whatever SAN says).
# It needs the `fuzz` group of scripts/deps.sh (clang, libclang-rt-14-dev); without them it
# is not built and tests/test_fuzz_segment.sh skips.

FUZZ_BUILD   := build/fuzz
FUZZ_CC      := clang
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS  := -D_GNU_SOURCE -Iinclude -std=c11 -Wall -Wextra -Werror -g -O1 $(FUZZ_SAN)
FUZZ_LIBOBJS := $(LIB_SRCS:src/%.c=$(FUZZ_BUILD)/src/%.o)
FUZZ_BIN     := $(FUZZ_BUILD)/fuzz_segment
FUZZ_RT      := $(wildcard /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a)
FUZZ_OK      := $(if $(and $(shell command -v $(FUZZ_CC) 2>/dev/null),$(FUZZ_RT)),yes,)

$(FUZZ_BUILD)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ_BUILD)/fuzz_segment.o: tests/fuzz_segment.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -MMD -MP -c -o $@ $<

# --wrap: every shmat/shmdt goes through the fuzzer's guard-page wrappers.
$(FUZZ_BIN): $(FUZZ_BUILD)/fuzz_segment.o $(FUZZ_LIBOBJS)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -Wl,--wrap=shmat -Wl,--wrap=shmdt -o $@ $^ \
		-pthread -lrt

# The journal fuzzer (tests/fuzz_journal.c): journal files of durable buses as input.
FUZZ_JBIN := $(FUZZ_BUILD)/fuzz_journal

$(FUZZ_BUILD)/fuzz_journal.o: tests/fuzz_journal.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -MMD -MP -c -o $@ $<

$(FUZZ_JBIN): $(FUZZ_BUILD)/fuzz_journal.o $(FUZZ_LIBOBJS)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ -pthread -lrt

.PHONY: fuzz-build fuzz soak model
fuzz-build:
	@$(DEPS) fuzz
	$(MAKE) --no-print-directory $(FUZZ_BIN) $(FUZZ_JBIN)

ifeq ($(FUZZ_OK),yes)
CHECK_DEPS += $(FUZZ_BIN) $(FUZZ_JBIN)
endif

fuzz: fuzz-build
	FUZZ_SECONDS=$${FUZZ_SECONDS:-600} TEST_TIMEOUT=$$(( $${FUZZ_SECONDS:-600} + 120 )) \
		BUILD=$(BUILD) tests/run.sh tests/test_fuzz_segment.sh tests/test_fuzz_journal.sh

soak: all $(BUILD)/tests/test_crash $(BUILD)/tests/test_group $(BUILD)/tests/test_durable_crash \
		$(BUILD)/tests/test_durable_power
	SHMBUS_KILL_ROUNDS=$${SHMBUS_KILL_ROUNDS:-10000} TEST_TIMEOUT=7200 \
		BUILD=$(BUILD) tests/run.sh $(BUILD)/tests/test_crash
	SHMBUS_LEADER_KILLS=$${SHMBUS_LEADER_KILLS:-1000} TH_FILTER=test_leader_kills \
		TEST_TIMEOUT=1800 BUILD=$(BUILD) tests/run.sh $(BUILD)/tests/test_group
	SHMBUS_DURABLE_ROUNDS=$${SHMBUS_DURABLE_ROUNDS:-2000} TEST_TIMEOUT=3600 \
		BUILD=$(BUILD) tests/run.sh $(BUILD)/tests/test_durable_crash
	SHMBUS_POWER_ROUNDS=$${SHMBUS_POWER_ROUNDS:-20000} TEST_TIMEOUT=3600 \
		BUILD=$(BUILD) tests/run.sh $(BUILD)/tests/test_durable_power

model:
	MODEL_FULL=1 MODEL_BUDGET=$${MODEL_BUDGET:-900} TEST_TIMEOUT=3600 BUILD=$(BUILD) tests/run.sh tests/test_model.sh tests/test_model_ring.sh \
		tests/test_model_ring_batch.sh tests/test_model_lossy.sh

-include $(wildcard $(FUZZ_BUILD)/*.d $(FUZZ_BUILD)/src/*.d)
