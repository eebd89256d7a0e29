# libshmbus: a static and a shared library (soname libshmbus.so.$(LIB_SOMAJOR)), libc only.
LIB_SRCS   := $(wildcard src/*.c)
LIB_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB_A      := $(BUILD)/lib/libshmbus.a
# The soname's number changes whenever a program built against the previous library could
# misbehave with this one (1: the send flags and struct shmbus_bus_opts of 0.2.0; 2: in
# 0.3.0, struct shmbus_group_info grew a counter and the message flags gained
# REDELIVERED/REPLAYED, and buses are layout 5; 3: in 0.4.0, struct shmbus_counters and
# struct shmbus_group_info grew `lost`, buses are layout 6, journals format 2). The
# package version is include/shmbus.h's SHMBUS_VERSION_STRING (tests/test_install.sh).
LIB_SOMAJOR := 3
LIB_SONAME := libshmbus.so.$(LIB_SOMAJOR)
LIB_SO     := $(BUILD)/lib/$(LIB_SONAME)
LIB_FILE   := $(LIB_SONAME).0.0
PKG_VERSION := $(shell sed -n 's/^\#define SHMBUS_VERSION_STRING "\(.*\)"/\1/p' include/shmbus.h)
LIB_MAP    := src/libshmbus.map

$(LIB_A): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

# The version script exports shmbus_* only (tests/test_exports.sh).
$(LIB_SO): $(LIB_OBJS) $(LIB_MAP)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,$(LIB_SONAME) -Wl,--version-script=$(LIB_MAP) $(LDFLAGS) -o $@ \
	    $(LIB_OBJS) -pthread -lrt
	ln -sf $(LIB_SONAME) $(BUILD)/lib/libshmbus.so

.PHONY: lib
lib: $(LIB_A) $(LIB_SO)
ifneq ($(LIB_SRCS),)
ALL_TARGETS += $(LIB_A) $(LIB_SO)
endif

# make install (Makefile) runs install-lib: the header, the static and the shared library
# (soname $(LIB_SONAME)) and the pkg-config file.
.PHONY: install-lib uninstall-lib
INSTALL_PARTS   += install-lib
UNINSTALL_PARTS += uninstall-lib

install-lib: $(LIB_A) $(LIB_SO)
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR)
	install -m 644 include/shmbus.h $(DESTDIR)$(INCDIR)/shmbus.h
	install -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/libshmbus.a
	install -m 755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/$(LIB_FILE)
	ln -sf $(LIB_FILE) $(DESTDIR)$(LIBDIR)/$(LIB_SONAME)
	ln -sf $(LIB_SONAME) $(DESTDIR)$(LIBDIR)/libshmbus.so
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' 'includedir=$(INCDIR)' '' \
	    'Name: shmbus' 'Description: local message bus over System V shared memory' \
	    'Version: $(PKG_VERSION)' 'Libs: -L$${libdir} -lshmbus' 'Libs.private: -pthread -lrt' \
	    'Cflags: -I$${includedir}' > $(DESTDIR)$(LIBDIR)/pkgconfig/shmbus.pc

uninstall-lib:
	rm -f $(DESTDIR)$(INCDIR)/shmbus.h $(DESTDIR)$(LIBDIR)/libshmbus.a \
	    $(DESTDIR)$(LIBDIR)/libshmbus.so* $(DESTDIR)$(LIBDIR)/pkgconfig/shmbus.pc
