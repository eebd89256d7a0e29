"""The Python module: what a script relies on.

send/recv of bytes with their header, iteration, exceptions that are the right OSError
subclass with the library's message, timeouts that return in time, asyncio through the
event-loop descriptor, and several processes on one bus.
"""
import asyncio
import errno
import multiprocessing
import os
import threading
import time

import pytest

import shmbus

MP = multiprocessing.get_context("fork")


def test_send_recv_bytes_and_header(bus):
    with bus.join(1, "alice") as a, bus.join(2) as b:
        a.send(2, b"hello")
        a.send(2, bytearray(b"\x00\xff binary"))
        a.send(2, memoryview(b"view"))
        m = b.recv(timeout=1)
        assert (m.data, m.src, m.dst, m.seq) == (b"hello", 1, 2, 1)
        assert abs(m.sent_ns - time.monotonic_ns()) < 10 * 10**9
        assert b.recv(1).data == b"\x00\xff binary"
        assert b.recv_bytes(1) == b"view"
        assert bus.lookup("alice") == 1


def test_priority_order(bus):
    with bus.join(1) as a, bus.join(2) as b:
        a.send(2, b"low", prio=0)
        a.send(2, b"high", prio=7)
        assert [m.data for m in b.messages(timeout=0.05)] == [b"high", b"low"]


def test_iteration_stops_after_quiet_spell(bus):
    with bus.join(1) as a, bus.join(2) as b:
        sent = [f"m{k}".encode() for k in range(5)]
        assert a.send_many(2, sent) == 5
        assert [m.data for m in b.messages(timeout=0.1)] == sent
        for k in range(3):
            a.send(2, bytes([k]))
        got = []
        for m in b:  # forever, until we stop
            got.append(m.data)
            if len(got) == 3:
                break
        assert got == [b"\x00", b"\x01", b"\x02"]


def test_recv_many(bus):
    with bus.join(1) as a, bus.join(2) as b:
        for k in range(6):
            a.send(2, b"x" * k)
        got = b.recv_many(4, timeout=1)
        assert [len(m.data) for m in got] == [0, 1, 2, 3]
        assert [len(m.data) for m in b.recv_many(10, timeout=1)] == [4, 5]


def test_request_reply(bus):
    with bus.join(1) as a, bus.join(2) as b:
        def serve():
            req = b.recv(timeout=5)
            assert req.is_request
            b.reply(req, req.data.upper())
        t = threading.Thread(target=serve)
        t.start()
        rep = a.request(2, b"ping", timeout=5)
        t.join(5)
        assert rep.data == b"PING" and rep.is_reply


def test_errors_are_oserror_subclasses_with_library_text(bus_name, bus):
    with pytest.raises(FileNotFoundError) as e:
        shmbus.Bus(bus_name + "-nosuch")
    assert e.value.errno == errno.ENOENT
    assert shmbus.strerror(-errno.ENOENT) in str(e.value)
    with pytest.raises(FileExistsError):
        shmbus.Bus(bus_name, create=True, exclusive=True)
    with bus.join(1) as a:
        with pytest.raises(FileExistsError):
            bus.join(1)
        with pytest.raises(OSError) as e:
            a.send(5, b"to nobody")
        assert e.value.errno == errno.EHOSTUNREACH
        assert shmbus.strerror(errno.EHOSTUNREACH) in str(e.value)
        with pytest.raises(OSError) as e:
            a.send(1, b"x" * 257)  # msg_size is 256
        assert e.value.errno == errno.EMSGSIZE
        with pytest.raises(ValueError):
            a.send(1, b"x", prio=8)
        with pytest.raises(TypeError):
            a.send(1, "text is not bytes")
    with pytest.raises(ValueError):
        a.send(1, b"after leaving")


def test_readonly_refuses_join(bus_name, bus):
    with shmbus.Bus(bus_name, readonly=True) as ro:
        with pytest.raises(OSError) as e:
            ro.join()
        assert e.value.errno == errno.EROFS


def test_timeouts(bus):
    with bus.join(1) as a, bus.join(2) as b:
        with pytest.raises(BlockingIOError):
            b.recv(0)
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            b.recv(timeout=0.2)
        assert 0.19 <= time.monotonic() - t0 < 1.2
        # Fill the mailbox's ring with the largest messages: a full one says so at once.
        n = 0
        with pytest.raises(BlockingIOError):
            while n < 1000:
                a.send(2, b"f" * 256, nonblock=True)
                n += 1
        assert 4 <= n <= 8, n  # "slots=8" sizes the ring, rounded down to a power of two
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            a.send(2, b"f" * 256, timeout=0.2)
        assert 0.19 <= time.monotonic() - t0 < 1.2


def test_ring_bytes_sizes_each_mailbox(bus_name):
    # 4 KiB rings and 1 KiB messages: the bus says so, and a ring holds 3 large records
    # (each 48 + 1024 bytes rounded up to 1088) but many small ones.
    with shmbus.Bus(bus_name, create=True, exclusive=True, msg_size=1024,
                    ring_bytes=4096) as b:
        try:
            assert b.info().ring_bytes == 4096
            with b.join(1) as a, b.join(2) as r:
                n = 0
                while True:
                    try:
                        a.send(2, b"x" * 1024, timeout=0)
                    except BlockingIOError:
                        break
                    n += 1
                assert n == 3
                for _ in range(n):
                    assert len(r.recv(timeout=1).data) == 1024
                for i in range(20):
                    a.send(2, b"%d" % i, timeout=0)
                assert [r.recv(timeout=1).data for _ in range(20)] == [b"%d" % i for i in range(20)]
        finally:
            shmbus.destroy(bus_name)
    with pytest.raises(OSError) as e:
        shmbus.Bus(bus_name, create=True, ring_bytes=1000)
    assert e.value.errno == errno.EINVAL


def test_context_managers_leave_and_close(bus_name):
    with shmbus.Bus(bus_name, create=True) as b:
        with b.join(3):
            assert [ci.id for ci in b.clients()] == [3]
        assert b.clients() == []
        c2 = b.join(4)
    # Closing the bus made its clients leave.
    with pytest.raises(ValueError):
        c2.recv(0)
    with shmbus.Bus(bus_name) as b:
        assert b.clients() == []
    assert bus_name in shmbus.bus_names()
    shmbus.destroy(bus_name)
    assert bus_name not in shmbus.bus_names()


def _producer(name, k, count):
    with shmbus.Bus(name) as b, b.join() as me:
        for i in range(count):
            me.send(1, f"{k}:{i}".encode(), timeout=10)


def _start(target, *args):
    p = MP.Process(target=target, args=args)
    p.start()
    return p


def _join_all(procs, timeout=20):
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.kill()
        p.join(5)
    assert not alive, "a child process did not finish in time"
    assert all(p.exitcode == 0 for p in procs)


def test_multi_process(bus_name, bus):
    with bus.join(1) as me:
        procs = [_start(_producer, bus_name, k, 200) for k in range(3)]
        got = {0: [], 1: [], 2: []}
        try:
            for _ in range(600):
                k, i = me.recv(timeout=10).data.decode().split(":")
                got[int(k)].append(int(i))
        finally:
            _join_all(procs)
        assert all(v == list(range(200)) for v in got.values())  # each sender in order


def _sender_on_event(name, go):
    go.wait(10)  # set once the receiver is waiting in its event loop
    with shmbus.Bus(name) as b, b.join(2) as me:
        me.send(1, b"from another process")
        me.send(1, b"second")


def test_asyncio_wakes_on_message_from_other_process(bus_name, bus):
    go = MP.Event()

    async def main(me):
        other = asyncio.Event()
        ticks = 0

        async def ticker():  # the loop keeps running while we wait
            nonlocal ticks
            while not other.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        t = asyncio.ensure_future(ticker())
        first = asyncio.ensure_future(me.arecv(timeout=10))
        await asyncio.sleep(0)  # arecv ran up to its wait: armed, reader added
        assert not first.done()
        go.set()
        got = [(await first).data]
        async for m in me.amessages(timeout=0.2):
            got.append(m.data)
        other.set()
        await t
        return got, ticks

    with bus.join(1) as me:
        p = _start(_sender_on_event, bus_name, go)
        try:
            got, ticks = asyncio.run(main(me))
        finally:
            go.set()
            _join_all([p])
        assert got == [b"from another process", b"second"]
        assert ticks >= 5  # the loop was not blocked while arecv waited


def test_asyncio_timeout_and_cancel(bus):
    async def main(me):
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            await me.arecv(timeout=0.2)
        assert 0.19 <= time.monotonic() - t0 < 1.2
        task = asyncio.ensure_future(me.arecv())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The descriptor still works after a cancelled wait.
        asyncio.get_running_loop().call_later(0.05, lambda: other.send(1, b"late"))
        return await me.arecv(timeout=5)

    with bus.join(1) as me, bus.join(2) as other:
        assert asyncio.run(main(me)).data == b"late"


def test_fileno_with_selectors(bus):
    import selectors
    with bus.join(1) as me, bus.join(2) as other:
        sel = selectors.DefaultSelector()
        sel.register(me, selectors.EVENT_READ)  # uses fileno()
        assert me.arm() is False
        assert sel.select(timeout=0) == []
        other.send(1, b"wake")
        assert len(sel.select(timeout=5)) == 1
        assert me.recv(0).data == b"wake"
        sel.close()


def test_asyncio_example(bus_name):
    """examples/asyncio_receiver.py prints what a sender sends it, then stops when quiet."""
    import subprocess
    import sys
    top = os.path.join(os.path.dirname(__file__), "..", "..")
    env = dict(os.environ, PYTHONPATH=os.path.join(top, "python"))
    ex = subprocess.Popen([sys.executable, os.path.join(top, "examples", "asyncio_receiver.py"),
                           "1"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:  # until the example has created the bus and joined as client 2
            try:
                with shmbus.Bus("demo") as b:
                    b.lookup("receiver")
                    with b.join(1) as me:
                        me.send(2, b"hello from pytest")
                    break
            except OSError:
                assert time.monotonic() < deadline, "the example never joined"
                time.sleep(0.02)
        out, _ = ex.communicate(timeout=15)
    finally:
        if ex.poll() is None:
            ex.kill()
            ex.wait(5)
        try:
            shmbus.destroy("demo")
        except FileNotFoundError:
            pass
    assert ex.returncode == 0
    assert "from 1: hello from pytest" in out
    assert "tick" in out


def test_forked_child_closing_a_copy_leaves_parent_joined(bus):
    """A child that inherited a Client (os.fork) and closes it does not make the parent
    leave nor take its event-loop descriptor away."""
    with bus.join(1) as me, bus.join(2) as other:
        me.fileno()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                me.close()
                bus.close()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert [c.id for c in bus.clients()] == [1, 2]
        assert me.arm() is False
        other.send(1, b"still here")
        import selectors
        with selectors.DefaultSelector() as sel:
            sel.register(me, selectors.EVENT_READ)
            assert len(sel.select(timeout=5)) == 1
        assert me.recv(0).data == b"still here"
