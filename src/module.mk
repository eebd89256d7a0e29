# libshmbus: a static and a shared library (soname libshmbus.so.0), libc only.
LIB_SRCS   := $(wildcard src/*.c)
LIB_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB_A      := $(BUILD)/lib/libshmbus.a
LIB_SO     := $(BUILD)/lib/libshmbus.so.0
LIB_VERSION := 0.1.0

$(LIB_A): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(LIB_SO): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,libshmbus.so.0 $(LDFLAGS) -o $@ $^ -pthread -lrt
	ln -sf libshmbus.so.0 $(BUILD)/lib/libshmbus.so

.PHONY: lib
lib: $(LIB_A) $(LIB_SO)
ifneq ($(LIB_SRCS),)
ALL_TARGETS += $(LIB_A) $(LIB_SO)
endif
