# The examples, built against the in-tree library (tests/test_install.sh builds them again
# against an installed copy through pkg-config).
EXAMPLES := $(BUILD)/examples/sender $(BUILD)/examples/receiver $(BUILD)/examples/epoll_receiver \
            $(BUILD)/examples/subscriber $(BUILD)/examples/worker $(BUILD)/examples/leader \
            $(BUILD)/examples/durable

$(BUILD)/examples/%: $(BUILD)/examples/%.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

ALL_TARGETS += $(EXAMPLES)
