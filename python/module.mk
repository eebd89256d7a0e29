# The Python module (python/shmbus/: ctypes over libshmbus.so.3, standard library only).
#
#   make install        also installs it where Debian's python3 finds it: for PREFIX=/usr
#                       /usr/lib/python3/dist-packages, else PREFIX/lib/python3.X/dist-packages
#                       (Debian's python3 searches /usr/local/lib/python3.X/dist-packages);
#                       PYTHONDIR=... overrides. The installed module loads the library from
#                       LIBDIR (recorded in shmbus/_config.py), whatever ldconfig knows.
#   make bench-python   bench/python_bench.py: shmbus against multiprocessing and pyzmq.
PYTHON    ?= $(firstword $(wildcard /usr/bin/python3) python3)
PY_VER    := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
PYTHONDIR ?= $(if $(filter /usr,$(PREFIX)),$(PREFIX)/lib/python3/dist-packages,$(PREFIX)/lib/python$(PY_VER)/dist-packages)
PY_FILES  := python/shmbus/__init__.py python/shmbus/_lib.py python/shmbus/py.typed

.PHONY: install-python uninstall-python print-pythondir bench-python

install: install-python
install-python:
	install -d $(DESTDIR)$(PYTHONDIR)/shmbus
	install -m 644 $(PY_FILES) $(DESTDIR)$(PYTHONDIR)/shmbus/
	printf '%s\n' '"""Written by make install: where libshmbus.so.3 was installed."""' \
	    "LIBDIR = '$(LIBDIR)'" > $(DESTDIR)$(PYTHONDIR)/shmbus/_config.py

uninstall: uninstall-python
uninstall-python:
	rm -rf $(DESTDIR)$(PYTHONDIR)/shmbus

print-pythondir:
	@echo $(PYTHONDIR)

bench-python: $(LIB_SO)
	@$(DEPS) bench
	SHMBUS_LIBRARY=$(abspath $(LIB_SO)) $(PYTHON) bench/python_bench.py
