# libshmbus: a static and a shared library (soname libshmbus.so.0), libc only.
LIB_SRCS   := $(wildcard src/*.c)
LIB_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB_A      := $(BUILD)/lib/libshmbus.a
LIB_SO     := $(BUILD)/lib/libshmbus.so.0
LIB_VERSION := 0.1.0
LIB_MAP    := src/libshmbus.map

$(LIB_A): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

# The version script exports shmbus_* only (tests/test_exports.sh).
$(LIB_SO): $(LIB_OBJS) $(LIB_MAP)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,libshmbus.so.0 -Wl,--version-script=$(LIB_MAP) $(LDFLAGS) -o $@ \
	    $(LIB_OBJS) -pthread -lrt
	ln -sf libshmbus.so.0 $(BUILD)/lib/libshmbus.so

.PHONY: lib
lib: $(LIB_A) $(LIB_SO)
ifneq ($(LIB_SRCS),)
ALL_TARGETS += $(LIB_A) $(LIB_SO)
endif

# make install (Makefile) runs install-lib: the header, the static and the shared library
# (soname libshmbus.so.0) and the pkg-config file.
.PHONY: install-lib uninstall-lib
INSTALL_PARTS   += install-lib
UNINSTALL_PARTS += uninstall-lib

install-lib: $(LIB_A) $(LIB_SO)
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR)
	install -m 644 include/shmbus.h $(DESTDIR)$(INCDIR)/shmbus.h
	install -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/libshmbus.a
	install -m 755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/libshmbus.so.$(LIB_VERSION)
	ln -sf libshmbus.so.$(LIB_VERSION) $(DESTDIR)$(LIBDIR)/libshmbus.so.0
	ln -sf libshmbus.so.0 $(DESTDIR)$(LIBDIR)/libshmbus.so
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' 'includedir=$(INCDIR)' '' \
	    'Name: shmbus' 'Description: local message bus over System V shared memory' \
	    'Version: $(LIB_VERSION)' 'Libs: -L$${libdir} -lshmbus' 'Libs.private: -pthread -lrt' \
	    'Cflags: -I$${includedir}' > $(DESTDIR)$(LIBDIR)/pkgconfig/shmbus.pc

uninstall-lib:
	rm -f $(DESTDIR)$(INCDIR)/shmbus.h $(DESTDIR)$(LIBDIR)/libshmbus.a \
	    $(DESTDIR)$(LIBDIR)/libshmbus.so* $(DESTDIR)$(LIBDIR)/pkgconfig/shmbus.pc
