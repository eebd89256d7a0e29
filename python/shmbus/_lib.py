"""ctypes bindings of libshmbus (include/shmbus.h): structures, prototypes and the flags.

Private to the package: the public API is in shmbus/__init__.py. The send calls' flags word,
which carries the priority too (SHMBUS_PRIO(n)), is built in one place: send_flags().
"""
from __future__ import annotations

import ctypes
import os
from ctypes import (POINTER, Structure, c_char, c_char_p, c_int, c_size_t, c_ssize_t,
                    c_uint, c_uint8, c_uint32, c_uint64, c_void_p)

NAME_MAX = 31
LAT_BUCKETS = 128
PRIO_LEVELS = 8

# Open flags of shmbus_bus_open().
OPEN_CREATE = 0x1
OPEN_EXCL = 0x2
OPEN_RDONLY = 0x4

# Send flags (shmbus_send, send_batch, broadcast, request, reply); the priority travels in
# the same word as SHMBUS_PRIO(n) = n << SHMBUS_PRIO_SHIFT.
SEND_NONBLOCK = 0x100
SEND_ACK = 0x200
PRIO_SHIFT = 12

# Flags of a received message (shmbus_msg.flags).
MSG_ACK = 0x1
MSG_REQUEST = 0x2
MSG_REPLY = 0x4
MSG_BROADCAST = 0x8

def send_flags(prio: int, nonblock: bool, ack: bool) -> int:
    """The flags word of the send calls: SHMBUS_PRIO(prio) | SHMBUS_SEND_*.

    The one place that builds a send flags word."""
    if not 0 <= prio < PRIO_LEVELS:
        raise ValueError(f"prio must be 0..{PRIO_LEVELS - 1}, not {prio}")
    return ((prio << PRIO_SHIFT) | (SEND_NONBLOCK if nonblock else 0)
            | (SEND_ACK if ack else 0))


class BusOpts(Structure):
    _fields_ = [("max_clients", c_uint32), ("slots", c_uint32), ("msg_size", c_uint32),
                ("mode", c_uint32), ("ring_bytes", c_uint64)]


class Msg(Structure):
    _fields_ = [("src", c_uint32), ("dst", c_uint32), ("seq", c_uint64), ("corr", c_uint64),
                ("sent_ns", c_uint64), ("len", c_uint32), ("prio", c_uint8),
                ("flags", c_uint8)]


class Iov(Structure):
    _fields_ = [("data", c_void_p), ("len", c_size_t)]


class BusInfo(Structure):
    _fields_ = [("name", c_char * (NAME_MAX + 1)), ("max_clients", c_uint32),
                ("slots", c_uint32), ("msg_size", c_uint32), ("mode", c_uint32),
                ("layout_version", c_uint32), ("creator_uid", c_uint32),
                ("creator_pid", c_int), ("shmid", c_int), ("segment_size", c_size_t),
                ("attached", c_uint32), ("live_clients", c_uint32), ("created_ns", c_uint64),
                ("nonce", c_uint64), ("ring_bytes", c_uint64)]


class Counters(Structure):
    _fields_ = [("sent", c_uint64), ("received", c_uint64), ("bytes_sent", c_uint64),
                ("bytes_received", c_uint64), ("full_waits", c_uint64), ("wakeups", c_uint64),
                ("spins", c_uint64), ("dropped", c_uint64),
                ("lat_hist", c_uint64 * LAT_BUCKETS), ("lost", c_uint64)]


class ClientInfo(Structure):
    _fields_ = [("id", c_uint32), ("state", c_int), ("name", c_char * (NAME_MAX + 1)),
                ("pid", c_int), ("depth", c_uint32), ("capacity", c_uint32),
                ("joined_ns", c_uint64), ("counters", Counters)]


def _candidates() -> list:
    """Where libshmbus.so.3 may be, first found wins."""
    out = []
    env = os.environ.get("SHMBUS_LIBRARY")
    if env:
        out.append(env)
    try:
        from ._config import LIBDIR  # written by `make install`
        out.append(os.path.join(LIBDIR, "libshmbus.so.3"))
    except ImportError:
        # In the source tree: the library `make` built next to it.
        here = os.path.dirname(os.path.abspath(__file__))
        out.append(os.path.join(here, "..", "..", "build", "lib", "libshmbus.so.3"))
    out.append("libshmbus.so.3")  # the dynamic loader's search (ldconfig, LD_LIBRARY_PATH)
    return out


def _load() -> ctypes.CDLL:
    errors = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            continue
        try:
            return ctypes.CDLL(path, use_errno=False)
        except OSError as e:
            errors.append(f"{path}: {e}")
    raise ImportError("shmbus: cannot load libshmbus.so.3 (set SHMBUS_LIBRARY to its path): "
                      + "; ".join(errors or ["not found"]))


lib = _load()

_bus_p = c_void_p
_client_p = c_void_p


def _proto(name: str, restype, *argtypes) -> None:
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)


_proto("shmbus_strerror", c_char_p, c_int)
_proto("shmbus_version", c_char_p)
_proto("shmbus_bus_open", c_int, c_char_p, POINTER(BusOpts), c_uint, POINTER(_bus_p))
_proto("shmbus_bus_close", None, _bus_p)
_proto("shmbus_bus_destroy", c_int, c_char_p)
_proto("shmbus_bus_info", c_int, _bus_p, POINTER(BusInfo))
_proto("shmbus_runtime_dir", c_int, c_char_p, c_size_t)
_proto("shmbus_bus_size", c_ssize_t, POINTER(BusOpts))
_proto("shmbus_bus_names", c_int, c_void_p, c_size_t)
_proto("shmbus_join", c_int, _bus_p, c_uint32, c_char_p, POINTER(_client_p))
_proto("shmbus_leave", None, _client_p)
_proto("shmbus_leave_keep", c_int, _client_p)
_proto("shmbus_client_id", c_uint32, _client_p)
_proto("shmbus_client_set_spin", None, _client_p, c_uint)
_proto("shmbus_client_fd", c_int, _client_p)
_proto("shmbus_client_arm", c_int, _client_p)
_proto("shmbus_lookup", c_int, _bus_p, c_char_p)
_proto("shmbus_list", c_int, _bus_p, POINTER(ClientInfo), c_size_t)
_proto("shmbus_reap", c_int, _bus_p)
_proto("shmbus_send", c_int, _client_p, c_uint32, c_char_p, c_size_t, c_uint, c_int)
_proto("shmbus_send_batch", c_int, _client_p, c_uint32, POINTER(Iov), c_size_t, c_uint, c_int)
_proto("shmbus_broadcast", c_int, _client_p, c_char_p, c_size_t, c_uint, c_int)
_proto("shmbus_recv", c_int, _client_p, POINTER(Msg), c_void_p, c_size_t, c_int)
_proto("shmbus_recv_batch", c_int, _client_p, POINTER(Msg), c_void_p, c_size_t, c_size_t,
       c_int)
_proto("shmbus_request", c_int, _client_p, c_uint32, c_char_p, c_size_t, POINTER(Msg),
       c_void_p, c_size_t, c_uint, c_int)
_proto("shmbus_reply", c_int, _client_p, POINTER(Msg), c_char_p, c_size_t, c_uint, c_int)
