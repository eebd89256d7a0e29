"""shmbus: a local message bus for Linux processes over System V shared memory.

A thin, standard-library-only layer (ctypes) over libshmbus. A *bus* is opened by name;
processes *join* it as clients with ids 1..max_clients and send each other byte strings::

    import shmbus

    with shmbus.Bus("demo", create=True) as bus, bus.join(2, "printer") as me:
        for msg in me.messages(timeout=5.0):      # stops after 5 s without a message
            print(msg.src, msg.data)

    with shmbus.Bus("demo") as bus, bus.join() as me:
        me.send(2, b"hello")

Errors are raised as ``OSError`` with the library's errno and message, so the usual
subclasses apply: ``FileNotFoundError`` (no such bus), ``FileExistsError``,
``PermissionError``, ``TimeoutError``, ``BlockingIOError`` (would block: timeout 0 or
``nonblock=True``), ``ConnectionResetError`` (the receiver died), ``InterruptedError``;
others (``EHOSTUNREACH``: no such client, ``EMSGSIZE``, ``EIDRM``...) as plain ``OSError``
with ``.errno`` set.

Timeouts are in seconds (floats allowed): ``None`` waits forever, ``0`` never waits.

Threads: a Bus may be shared by threads; a Client may send from several threads, but only
one thread (or one asyncio task) may receive at a time. Blocking calls release the GIL.
Handles do not survive fork(): a child process opens the bus and joins on its own.

asyncio: ``await client.arecv()`` and ``async for msg in client`` wait through the client's
event-loop descriptor (``client.fileno()``), so a loop can serve a bus and sockets at once.
"""
from __future__ import annotations

import asyncio
import ctypes
import errno as _errno
import math
import os
import time
import weakref
from typing import AsyncIterator, Iterable, Iterator, List, Optional, TypeVar, Union

from . import _lib
from ._lib import lib

_T = TypeVar("_T", bound="_Closing")

__all__ = [
    "Bus", "Client", "Message", "BusInfo", "ClientInfo", "destroy", "bus_names",
    "runtime_dir", "version", "strerror", "PRIO_LEVELS",
]

PRIO_LEVELS = _lib.PRIO_LEVELS

# The hot path's lookups, bound once.
_send = lib.shmbus_send
_recv = lib.shmbus_recv
_string_at = ctypes.string_at
_EINTR = _errno.EINTR
_send_flags = _lib.send_flags

Bytes = Union[bytes, bytearray, memoryview]


def strerror(err: int) -> str:
    """The library's text for an errno value (negative or positive)."""
    return lib.shmbus_strerror(int(err)).decode()


def version() -> str:
    """The library's version, "MAJOR.MINOR.PATCH"."""
    return lib.shmbus_version().decode()


def _error(r: int, what: str = "") -> OSError:
    """The OSError for a negative return r: OSError picks the subclass from the errno."""
    msg = strerror(r)
    return OSError(-r, f"{what}: {msg}" if what else msg)


def _ms(timeout: Optional[float]) -> int:
    """Seconds (None: forever) to the library's milliseconds (-1: forever)."""
    if timeout is None:
        return -1
    if timeout < 0:
        raise ValueError("timeout must be None (forever) or >= 0 seconds")
    return min(int(math.ceil(timeout * 1000)), 2**31 - 1)


def _name(name: str) -> bytes:
    if not isinstance(name, str):
        raise TypeError(f"name must be str, not {type(name).__name__}")
    return name.encode()


def _data(data: Bytes) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"data must be bytes-like, not {type(data).__name__}")


def runtime_dir() -> str:
    """The directory holding the buses' key files ($SHMBUS_DIR, else a per-user default)."""
    buf = ctypes.create_string_buffer(4096)
    r = lib.shmbus_runtime_dir(buf, len(buf))
    if r < 0:
        raise _error(r, "runtime directory")
    return buf.value.decode()


def bus_names() -> List[str]:
    """The names of the buses with a key file in the runtime directory, sorted."""
    rec = ctypes.c_char * (_lib.NAME_MAX + 1)
    n = 64
    while True:
        arr = (rec * n)()
        r = lib.shmbus_bus_names(arr, n)
        if r < 0:
            raise _error(r, "bus names")
        if r <= n:
            return [arr[i].value.decode() for i in range(r)]
        n = r


def destroy(name: str) -> None:
    """Remove bus `name` (its segment and key file). Processes attached keep their mapping;
    their calls then fail with EIDRM. Raises FileNotFoundError if there is no such bus."""
    r = lib.shmbus_bus_destroy(_name(name))
    if r < 0:
        raise _error(r, name)


class Message:
    """A received message: its payload (`data`, bytes) and header fields."""

    __slots__ = ("data", "src", "dst", "seq", "corr", "sent_ns", "prio", "flags")

    def __init__(self, data: bytes, src: int, dst: int, seq: int, corr: int, sent_ns: int,
                 prio: int, flags: int) -> None:
        self.data = data
        self.src = src          # sender's client id
        self.dst = dst          # receiver's client id
        self.seq = seq          # sender's sequence number (1, 2, ...)
        self.corr = corr        # for a reply: the request's seq
        self.sent_ns = sent_ns  # CLOCK_MONOTONIC (time.monotonic_ns()) at the send
        self.prio = prio        # 0..7
        self.flags = flags      # SHMBUS_MSG_* bits

    @classmethod
    def _from(cls, h: _lib.Msg, data: bytes) -> "Message":
        return cls(data, h.src, h.dst, h.seq, h.corr, h.sent_ns, h.prio, h.flags)

    @property
    def is_request(self) -> bool:
        """A request: answer it with Client.reply()."""
        return bool(self.flags & _lib.MSG_REQUEST)

    @property
    def is_reply(self) -> bool:
        return bool(self.flags & _lib.MSG_REPLY)

    @property
    def is_broadcast(self) -> bool:
        return bool(self.flags & _lib.MSG_BROADCAST)

    def __bytes__(self) -> bytes:
        return self.data

    def __repr__(self) -> str:
        return (f"Message(src={self.src}, dst={self.dst}, seq={self.seq}, prio={self.prio}, "
                f"flags={self.flags:#x}, data={self.data!r})")


class BusInfo:
    """What a bus is (Bus.info())."""

    def __init__(self, i: _lib.BusInfo) -> None:
        self.name: str = i.name.decode()
        self.max_clients: int = i.max_clients
        self.slots: int = i.slots
        self.msg_size: int = i.msg_size
        self.mode: int = i.mode
        self.layout_version: int = i.layout_version
        self.creator_uid: int = i.creator_uid
        self.creator_pid: int = i.creator_pid
        self.shmid: int = i.shmid
        self.segment_size: int = i.segment_size
        self.attached: int = i.attached
        self.live_clients: int = i.live_clients
        self.created_ns: int = i.created_ns
        self.nonce: int = i.nonce
        self.ring_bytes: int = i.ring_bytes

    def __repr__(self) -> str:
        return (f"BusInfo(name={self.name!r}, max_clients={self.max_clients}, "
                f"slots={self.slots}, msg_size={self.msg_size}, "
                f"ring_bytes={self.ring_bytes}, live_clients={self.live_clients})")


class ClientInfo:
    """One client of a bus as Bus.clients() lists it."""

    STATES = {1: "live", 2: "dead", 3: "joining", 4: "kept"}

    def __init__(self, i: _lib.ClientInfo) -> None:
        self.id: int = i.id
        self.state: str = self.STATES.get(i.state, str(i.state))
        self.name: str = i.name.decode(errors="replace")
        self.pid: int = i.pid
        self.depth: int = i.depth
        self.capacity: int = i.capacity
        self.joined_ns: int = i.joined_ns
        c = i.counters
        self.sent: int = c.sent
        self.received: int = c.received
        self.bytes_sent: int = c.bytes_sent
        self.bytes_received: int = c.bytes_received
        self.dropped: int = c.dropped
        self.lost: int = c.lost  # dropped unread by publishers: it subscribed lossy

    def __repr__(self) -> str:
        return (f"ClientInfo(id={self.id}, state={self.state!r}, name={self.name!r}, "
                f"pid={self.pid}, depth={self.depth})")


class _Closing:
    """A context manager whose block, or the garbage collector, ends with close()."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class Bus(_Closing):
    """An attached bus. A context manager: leaving the block closes it.

    ``Bus(name)`` attaches to an existing bus (FileNotFoundError if there is none);
    ``create=True`` creates it if needed with the given sizes (0: the library's default;
    ``ring_bytes`` is each mailbox's ring in bytes, a power of two, as in shmbus_bus_opts),
    ``exclusive=True`` with it fails with FileExistsError if it exists; ``readonly=True``
    attaches for monitoring only (join and send refused). Closing the bus does not remove
    it: see destroy().
    """

    def __init__(self, name: str, *, create: bool = False, exclusive: bool = False,
                 readonly: bool = False, max_clients: int = 0, slots: int = 0,
                 msg_size: int = 0, mode: int = 0, ring_bytes: int = 0) -> None:
        self._b: Optional[int] = None
        self._clients: "weakref.WeakSet[Client]" = weakref.WeakSet()
        flags = ((_lib.OPEN_CREATE if create else 0) | (_lib.OPEN_EXCL if exclusive else 0)
                 | (_lib.OPEN_RDONLY if readonly else 0))
        opts = _lib.BusOpts(max_clients, slots, msg_size, mode, ring_bytes)
        out = ctypes.c_void_p()
        r = lib.shmbus_bus_open(_name(name), ctypes.byref(opts), flags, ctypes.byref(out))
        if r < 0:
            raise _error(r, name)
        self._b = out.value
        self.name = name
        info = self.info()
        self.msg_size: int = info.msg_size
        self.max_clients: int = info.max_clients

    def _handle(self) -> int:
        if self._b is None:
            raise ValueError("bus is closed")
        return self._b

    def info(self) -> BusInfo:
        """The bus's sizes, owner and state now."""
        i = _lib.BusInfo()
        r = lib.shmbus_bus_info(self._handle(), ctypes.byref(i))
        if r < 0:
            raise _error(r, self.name)
        return BusInfo(i)

    def join(self, id: int = 0, name: Optional[str] = None) -> "Client":
        """Join as client `id` (0: the lowest free id), optionally under a unique `name`.
        Returns a Client (a context manager that leaves the bus)."""
        out = ctypes.c_void_p()
        r = lib.shmbus_join(self._handle(), id, None if name is None else _name(name),
                            ctypes.byref(out))
        if r < 0:
            raise _error(r, f"{self.name}: join")
        c = Client(self, out.value)
        self._clients.add(c)
        return c

    def lookup(self, name: str) -> int:
        """The id of the live client called `name` (OSError EHOSTUNREACH if none)."""
        r = lib.shmbus_lookup(self._handle(), _name(name))
        if r < 0:
            raise _error(r, name)
        return r

    def clients(self) -> List[ClientInfo]:
        """The clients on the bus (live, dead not yet cleaned, joining, kept mailboxes)."""
        n = 16
        while True:
            arr = (_lib.ClientInfo * n)()
            r = lib.shmbus_list(self._handle(), arr, n)
            if r < 0:
                raise _error(r, self.name)
            if r <= n:
                return [ClientInfo(arr[i]) for i in range(r)]
            n = r

    def reap(self) -> int:
        """Clean up clients whose process died; returns how many."""
        r = lib.shmbus_reap(self._handle())
        if r < 0:
            raise _error(r, self.name)
        return r

    def close(self) -> None:
        """Leave with every client still joined through this bus, then detach. Idempotent."""
        if self._b is None:
            return
        for c in list(self._clients):
            c.close()
        lib.shmbus_bus_close(self._b)
        self._b = None

    def __repr__(self) -> str:
        state = "closed" if self._b is None else "open"
        return f"<shmbus.Bus {self.name!r} {state}>"


class Client(_Closing):
    """A client joined to a bus (Bus.join()). A context manager: leaving the block leaves
    the bus (messages still in the mailbox are discarded; see leave_keep()).

    Iterating over a client yields its messages as they arrive, forever; messages() stops
    after a quiet spell instead.
    """

    def __init__(self, bus: Bus, handle: int) -> None:
        self._c: Optional[int] = handle
        self._pid = os.getpid()  # the process that joined (see close())
        self.bus = bus
        self.id: int = lib.shmbus_client_id(handle)
        self._cap = bus.msg_size
        self._buf = ctypes.create_string_buffer(max(self._cap, 1))
        self._hdr = _lib.Msg()
        self._hdr_ref = ctypes.byref(self._hdr)
        self._fd: Optional[int] = None
        self._batch: Optional[tuple] = None  # recv_many()'s buffers, kept for the next call

    def _handle(self) -> int:
        if self._c is None:
            raise ValueError("client has left the bus")
        return self._c

    # -- sending ----------------------------------------------------------------------------

    def send(self, dst: int, data: Bytes, *, prio: int = 0, timeout: Optional[float] = None,
             nonblock: bool = False, ack: bool = False) -> None:
        """Send `data` to client `dst` at priority `prio` (0..7, higher first).

        Waits up to `timeout` seconds for room if the mailbox is full (BlockingIOError at once
        with nonblock=True); with ack=True also until the receiver has taken the message."""
        c = self._c
        if c is None:
            raise ValueError("client has left the bus")
        if type(data) is not bytes:
            data = _data(data)
        flags = 0 if prio == 0 and not nonblock and not ack else _send_flags(prio, nonblock, ack)
        ms = -1 if timeout is None else _ms(timeout)
        while True:
            r = _send(c, dst, data, len(data), flags, ms)
            if r != -_EINTR:
                break  # EINTR: a Python signal handler runs here (it may raise), then retry
        if r < 0:
            raise _error(r, f"send to {dst}")

    def send_many(self, dst: int, msgs: Iterable[Bytes], *, prio: int = 0,
                  timeout: Optional[float] = None, nonblock: bool = False) -> int:
        """Send several messages to `dst` at once (one wake-up for the lot). Returns how
        many were sent, in order: as many as fit, at least one (waiting as send() for room
        for the first)."""
        items = [m if type(m) is bytes else _data(m) for m in msgs]
        if not items:
            return 0
        # One buffer for the lot, kept alive through the call; the iovs point into it.
        blob = b"".join(items)
        base = ctypes.cast(ctypes.c_char_p(blob), ctypes.c_void_p).value or 0
        offs = []
        off = 0
        for m in items:
            offs.append((base + off, len(m)))
            off += len(m)
        iov = (_lib.Iov * len(items))(*offs)
        r = lib.shmbus_send_batch(self._handle(), dst, iov, len(items),
                                  _send_flags(prio, nonblock, False), _ms(timeout))
        if r < 0:
            raise _error(r, f"send to {dst}")
        return r

    def broadcast(self, data: Bytes, *, prio: int = 0, timeout: Optional[float] = None,
                  nonblock: bool = False) -> int:
        """Send a copy to every other live client; returns how many got it."""
        data = _data(data)
        r = lib.shmbus_broadcast(self._handle(), data, len(data),
                                 _send_flags(prio, nonblock, False), _ms(timeout))
        if r < 0:
            raise _error(r, "broadcast")
        return r

    def request(self, dst: int, data: Bytes, *, prio: int = 0, timeout: Optional[float] = None,
                nonblock: bool = False) -> Message:
        """Send a request to `dst` at priority `prio` and wait for its reply (TimeoutError
        after `timeout`). Other messages arriving meanwhile stay queued for recv()."""
        data = _data(data)
        r = lib.shmbus_request(self._handle(), dst, data, len(data), self._hdr_ref, self._buf,
                               self._cap, _send_flags(prio, nonblock, False), _ms(timeout))
        if r < 0:
            raise _error(r, f"request to {dst}")
        return Message._from(self._hdr, ctypes.string_at(self._buf, r))

    def reply(self, req: Message, data: Bytes, *, timeout: Optional[float] = None,
              nonblock: bool = False) -> None:
        """Answer request `req` (as received) with `data`, at the request's priority."""
        data = _data(data)
        h = _lib.Msg(req.src, req.dst, req.seq, req.corr, req.sent_ns, len(req.data),
                     req.prio, req.flags)
        r = lib.shmbus_reply(self._handle(), ctypes.byref(h), data, len(data),
                             _send_flags(0, nonblock, False), _ms(timeout))
        if r < 0:
            raise _error(r, f"reply to {req.src}")

    # -- receiving --------------------------------------------------------------------------

    def _recv(self, timeout: Optional[float]) -> int:
        c = self._c
        if c is None:
            raise ValueError("client has left the bus")
        ms = -1 if timeout is None else _ms(timeout)
        r = _recv(c, self._hdr_ref, self._buf, self._cap, ms)
        if r >= 0:
            return r
        deadline = None if ms <= 0 else time.monotonic() + ms / 1000
        while r == -_EINTR:
            # A signal arrived: its Python handler runs now (it may raise), then wait on.
            if deadline is not None:
                ms = _ms(max(0.0, deadline - time.monotonic()))
            r = _recv(c, self._hdr_ref, self._buf, self._cap, ms)
        if r < 0:
            raise _error(r, "recv")
        return r

    def recv(self, timeout: Optional[float] = None) -> Message:
        """Take the next message (highest priority first), waiting up to `timeout` seconds:
        TimeoutError when it passes, BlockingIOError with timeout=0 and nothing waiting."""
        n = self._recv(timeout)
        return Message._from(self._hdr, ctypes.string_at(self._buf, n))

    def recv_bytes(self, timeout: Optional[float] = None) -> bytes:
        """As recv(), the payload only (a little faster: no Message object)."""
        return _string_at(self._buf, self._recv(timeout))

    def recv_many(self, max_msgs: int = 64, timeout: Optional[float] = None) -> List[Message]:
        """Take up to `max_msgs` waiting messages at once (at least one: waits as recv())."""
        if max_msgs < 1:
            raise ValueError("max_msgs must be >= 1")
        stride = max(self._cap, 1)
        if self._batch is None or self._batch[0] < max_msgs:
            self._batch = (max_msgs, ctypes.create_string_buffer(stride * max_msgs),
                           (_lib.Msg * max_msgs)())
        _, bufs, hdrs = self._batch
        r = lib.shmbus_recv_batch(self._handle(), hdrs, bufs, stride, max_msgs, _ms(timeout))
        if r < 0:
            raise _error(r, "recv")
        base = ctypes.addressof(bufs)
        return [Message._from(hdrs[i], ctypes.string_at(base + i * stride, hdrs[i].len))
                for i in range(r)]

    def messages(self, timeout: Optional[float] = None) -> Iterator[Message]:
        """Yield messages as they arrive; stop once none came for `timeout` seconds
        (None: never stop)."""
        while True:
            try:
                yield self.recv(timeout)
            except TimeoutError:
                return

    def __iter__(self) -> Iterator[Message]:
        return self.messages(None)

    # -- event loops ------------------------------------------------------------------------

    def fileno(self) -> int:
        """The client's event-loop descriptor (see shmbus_client_fd() in shmbus.h): readable
        when messages may be waiting, once arm() was called. Owned by the client."""
        if self._fd is None:
            r = lib.shmbus_client_fd(self._handle())
            if r < 0:
                raise _error(r, "event-loop descriptor")
            self._fd = r
        return self._fd

    def arm(self) -> bool:
        """Arm the descriptor for one notification. True if a message is already waiting
        (the descriptor is then readable already)."""
        self.fileno()
        r = lib.shmbus_client_arm(self._handle())
        if r < 0:
            raise _error(r, "arm")
        return r == 1

    async def arecv(self, timeout: Optional[float] = None) -> Message:
        """Receive in asyncio: as recv(), without blocking the event loop."""
        loop = asyncio.get_running_loop()
        fd = self.fileno()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            try:
                return self.recv(0)
            except BlockingIOError:
                pass
            if self.arm():
                continue
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                raise _error(-_errno.ETIMEDOUT, "recv")
            ready = loop.create_future()
            loop.add_reader(fd, _set_ready, ready)
            try:
                # Wake at least once a second: a message held back by a sender that died
                # in mid-send is released by a reap, which a blocked recv() would do.
                await asyncio.wait((ready,), timeout=1.0 if left is None else min(left, 1.0))
            finally:
                loop.remove_reader(fd)
            if not ready.done():
                self.bus.reap()

    async def amessages(self, timeout: Optional[float] = None) -> AsyncIterator[Message]:
        """As messages(), for asyncio: ``async for msg in client.amessages(5.0)``."""
        while True:
            try:
                yield await self.arecv(timeout)
            except TimeoutError:
                return

    def __aiter__(self) -> AsyncIterator[Message]:
        return self.amessages(None)

    # -- leaving ----------------------------------------------------------------------------

    def set_spin(self, usec: int) -> None:
        """Spin up to `usec` microseconds before sleeping in recv() or on a full mailbox."""
        lib.shmbus_client_set_spin(self._handle(), usec)

    def close(self) -> None:
        """Leave the bus (pending messages are discarded). Idempotent. In a child process
        forked with a copy of this client, only forgets the handle: the client is the
        parent's."""
        if self._c is not None:
            c, self._c = self._c, None
            self._fd = None
            if os.getpid() == self._pid:
                lib.shmbus_leave(c)

    leave = close

    def leave_keep(self) -> None:
        """Leave, keeping the mailbox's messages for the next client of this id."""
        c = self._handle()
        self._c = None
        self._fd = None
        r = lib.shmbus_leave_keep(c)
        if r < 0:
            raise _error(r, "leave")

    def __repr__(self) -> str:
        state = "left" if self._c is None else "joined"
        return f"<shmbus.Client {self.id} on {self.bus.name!r} {state}>"


def _set_ready(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_result(None)
