# Tests: every tests/test_*.c is one cmocka binary (one feature each) linked with the static
# library; every tests/test_*.sh is a shell test. tests/run.sh runs them all under a timeout.
TEST_SRCS    := $(wildcard tests/test_*.c)
TEST_BINS    += $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
TEST_SCRIPTS += $(wildcard tests/test_*.sh)
TEST_LIBS    := -lcmocka

$(BUILD)/tests/test_%: $(BUILD)/tests/test_%.o $(BUILD)/tests/helpers.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(TEST_LIBS) $(LDLIBS)

# The threaded harness, built and run under ThreadSanitizer by `make tsan`.
$(BUILD)/tests/tsan_%: $(BUILD)/tests/tsan_%.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

.PHONY: tsan tsan-build
tsan:
	@$(DEPS) build
	$(MAKE) --no-print-directory SAN=thread tsan-build
	d=$$(mktemp -d) && SHMBUS_DIR=$$d/run TSAN_JOURNAL=$$d TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	    timeout 300 build/san-thread/tests/tsan_threads; rc=$$?; rm -rf $$d; exit $$rc

tsan-build: $(BUILD)/tests/tsan_threads

# Under sanitizers the stress test sends fewer messages per producer (they run ~5x slower).
ifneq ($(SAN),)
export STRESS_MSGS ?= 200000
endif
-include tests/crash.mk
