# Tests: every tests/test_*.c is one cmocka binary (one feature each) linked with the static
# library; every tests/test_*.sh is a shell test. tests/run.sh runs them all under a timeout.
TEST_SRCS    := $(wildcard tests/test_*.c)
TEST_BINS    += $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
TEST_SCRIPTS += $(wildcard tests/test_*.sh)
TEST_LIBS    := -lcmocka

$(BUILD)/tests/test_%: $(BUILD)/tests/test_%.o $(BUILD)/tests/helpers.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(TEST_LIBS) $(LDLIBS)
