# The NATS bridge (issue 15): its own program, shmbus-bridge, linking libnats (the official
# C client, Debian libnats-dev; scripts/deps.sh bridge). It uses the library through the
# public header only. `shmbus bridge` runs it (tools/shmbus.c, run_companion()): found next
# to the shmbus command, in LIBEXECDIR/shmbus (make install-bridge puts it there) or in PATH.
# The shmbus command never links it; without libnats's header it is not built and
# tests/test_bridge.sh fails (scripts/deps.sh installs it, so that only happens by hand).
BRIDGE_SRCS := $(wildcard bridge/*.c)
BRIDGE_OBJS := $(BRIDGE_SRCS:%.c=$(BUILD)/%.o)
BRIDGE_BIN  := $(BUILD)/bin/shmbus-bridge

$(BRIDGE_BIN): $(BRIDGE_OBJS) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(BRIDGE_OBJS) $(LIB_A) -lnats $(LDLIBS)

.PHONY: bridge install-bridge uninstall-bridge
bridge: $(BRIDGE_BIN)

ifneq ($(wildcard /usr/include/nats/nats.h),)
ALL_TARGETS += $(BRIDGE_BIN)
CHECK_DEPS  += $(BRIDGE_BIN)
endif

# Separate from `make install` (which must not pull libnats), like install-bench.
install-bridge: $(BRIDGE_BIN)
	install -d $(DESTDIR)$(LIBEXECDIR)/shmbus $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(BRIDGE_BIN) $(DESTDIR)$(LIBEXECDIR)/shmbus/shmbus-bridge
	install -m 644 man/shmbus-bridge.1 $(DESTDIR)$(MANDIR)/man1/shmbus-bridge.1

uninstall-bridge:
	rm -f $(DESTDIR)$(LIBEXECDIR)/shmbus/shmbus-bridge $(DESTDIR)$(MANDIR)/man1/shmbus-bridge.1
	-rmdir $(DESTDIR)$(LIBEXECDIR)/shmbus 2>/dev/null
