# The shmbus command and its companion programs:
#   $(BUILD)/bin/shmbus          every tools/*.c but the monitor's, with the static library:
#                                libc only, so the installed command pulls nothing else
#   $(BUILD)/bin/shmbus-monitor  the web monitor (tools/monitor*.c) with libmicrohttpd;
#                                `shmbus monitor` runs it (tools/shmbus.c, run_companion())
# The benchmark is bench/'s own program ($(BUILD)/bin/shmbus-bench, `shmbus bench`).
MONITOR_SRCS := $(wildcard tools/monitor*.c)
TOOLS_SRCS   := $(filter-out $(MONITOR_SRCS),$(wildcard tools/*.c))
TOOLS_OBJS   := $(TOOLS_SRCS:%.c=$(BUILD)/%.o)
# The monitor shares the "did you mean" of tools/suggest.c with the command, and the
# bridge's state file rules (bridge/state.c: libc only, no libnats) with shmbus-bridge.
MONITOR_OBJS := $(MONITOR_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/tools/suggest.o $(BUILD)/bridge/state.o
SHMBUS_BIN   := $(BUILD)/bin/shmbus
MONITOR_BIN  := $(BUILD)/bin/shmbus-monitor

$(SHMBUS_BIN): $(TOOLS_OBJS) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(TOOLS_OBJS) $(LIB_A) $(LDLIBS)

$(MONITOR_BIN): $(MONITOR_OBJS) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(MONITOR_OBJS) $(LIB_A) -lmicrohttpd $(LDLIBS)

.PHONY: tools
tools: $(SHMBUS_BIN) $(MONITOR_BIN)

# Built with everything once the library has sources to link against.
ifneq ($(wildcard src/*.c),)
ALL_TARGETS += $(SHMBUS_BIN) $(MONITOR_BIN)
endif

# make install (Makefile) runs install-cmd: the command in BINDIR, the monitor in
# LIBEXECDIR/shmbus (where `shmbus monitor` looks, relative to its own path), the man pages
# (shmbus(1), the API's section 3 in man/) and bash completion.
.PHONY: install-cmd uninstall-cmd
INSTALL_PARTS   += install-cmd
UNINSTALL_PARTS += uninstall-cmd
MAN3_PAGES := $(wildcard man/*.3)

install-cmd: $(SHMBUS_BIN) $(MONITOR_BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR)/shmbus $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(COMPLETIONDIR)
	install -m 755 $(SHMBUS_BIN) $(DESTDIR)$(BINDIR)/shmbus
	install -m 755 $(MONITOR_BIN) $(DESTDIR)$(LIBEXECDIR)/shmbus/shmbus-monitor
	install -m 644 tools/shmbus.1 $(DESTDIR)$(MANDIR)/man1/shmbus.1
	install -m 644 $(MAN3_PAGES) $(DESTDIR)$(MANDIR)/man3/
	install -m 644 tools/shmbus.bash-completion $(DESTDIR)$(COMPLETIONDIR)/shmbus

uninstall-cmd:
	rm -f $(DESTDIR)$(BINDIR)/shmbus $(DESTDIR)$(LIBEXECDIR)/shmbus/shmbus-monitor \
	    $(DESTDIR)$(MANDIR)/man1/shmbus.1 $(DESTDIR)$(COMPLETIONDIR)/shmbus \
	    $(MAN3_PAGES:man/%=$(DESTDIR)$(MANDIR)/man3/%)
	-rmdir $(DESTDIR)$(LIBEXECDIR)/shmbus 2>/dev/null

# The issue's full-size ring (64 clients, 1,000,000 messages); make check runs a smaller one.
.PHONY: ring-million
ring-million: $(SHMBUS_BIN)
	$(SHMBUS_BIN) ring -c 64 -n 1000000 --quiet
