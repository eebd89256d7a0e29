# The shmbus command.
.PHONY: tools
tools:
