"""pytest fixtures for the shmbus Python module (run by tests/test_python.sh)."""
import itertools
import os
import sys

import pytest

# The module from the source tree, over the library `make` built (tests/test_python.sh sets
# SHMBUS_LIBRARY; the module also finds build/lib by itself).
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))

import shmbus  # noqa: E402

_seq = itertools.count()


@pytest.fixture
def bus_name():
    """A bus name unique to this test; the bus is destroyed afterwards if it exists."""
    name = f"py-{os.getpid()}-{next(_seq)}"
    yield name
    try:
        shmbus.destroy(name)
    except FileNotFoundError:
        pass


@pytest.fixture
def bus(bus_name):
    """A new small bus (8 clients, 8 slots, 256-byte messages), closed and destroyed after."""
    with shmbus.Bus(bus_name, create=True, exclusive=True, max_clients=8, slots=8,
                    msg_size=256) as b:
        yield b
