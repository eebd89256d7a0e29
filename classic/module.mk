# The seed's three clients, built into $(BUILD)/classic/ (start.sh finds them there).
CLASSIC_BINS := $(BUILD)/classic/client1 $(BUILD)/classic/client2 $(BUILD)/classic/client3

.PHONY: classic
classic: $(CLASSIC_BINS)
ifneq ($(wildcard classic/*.c),)
ALL_TARGETS += $(CLASSIC_BINS)
endif
