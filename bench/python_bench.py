#!/usr/bin/env python3
"""Python bench: shmbus (the ctypes module) against multiprocessing.Queue,
multiprocessing.Pipe and pyzmq, in one run. Run by `make bench-python`; not in make check.

Two processes each (fork), one message size (64 bytes by default):
  round trip  the parent sends, the child echoes, N times: mean microseconds per trip;
  throughput  the child sends M messages one by one, the parent takes them one by one:
              messages per second from the start signal to the last message taken.
shmbus is measured as a program gets it by default (a receiver with nothing to take
sleeps at once), with 50 us of spinning before sleeping (Client.set_spin(), worth it with a
core to spare), and with its batch calls (send_many / recv_many).

Prints a table and each transport's ratio to multiprocessing.Queue (the target: shmbus at
least 5x faster). Options: --trips N --msgs M --size BYTES --quick.
"""
import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import shmbus  # noqa: E402

try:
    import zmq
except ImportError:  # python3-zmq (scripts/deps.sh bench)
    zmq = None

MP = multiprocessing.get_context("fork")
DONE = b""  # end of the throughput stream (payloads are never empty)


# -- shmbus ---------------------------------------------------------------------------------

class Shmbus:
    name = "shmbus (sleeping recv)"
    spin_us = 0  # the library's default: a receiver with nothing to do sleeps at once

    def __init__(self, size):
        self.bus_name = f"pybench-{os.getpid()}"
        self.bus = shmbus.Bus(self.bus_name, create=True, max_clients=4, slots=1024,
                              msg_size=max(size, 64))
        self.me = self.bus.join(1)
        self.me.set_spin(self.spin_us)

    def child(self, fn, *args):
        def run():
            with shmbus.Bus(self.bus_name) as b, b.join(2) as peer:
                peer.set_spin(self.spin_us)
                fn(peer, *args)
        return run

    @staticmethod
    def echo(peer, n):
        recv, send = peer.recv_bytes, peer.send
        for _ in range(n):
            send(1, recv())

    def trip(self, payload):
        self.me.send(2, payload)
        return self.me.recv_bytes()

    @staticmethod
    def produce(peer, go, m, payload):
        go.wait()
        send = peer.send
        for _ in range(m):
            send(1, payload)

    def consume(self, m):
        recv = self.me.recv_bytes
        for _ in range(m):
            recv()

    def wait_peer(self):
        deadline = time.monotonic() + 10
        while True:
            try:
                ids = [c.id for c in self.bus.clients() if c.state == "live"]
                if 2 in ids:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("bench peer never joined")
            time.sleep(0.001)

    def close(self):
        self.me.close()
        self.bus.close()
        shmbus.destroy(self.bus_name)


class ShmbusSpin(Shmbus):
    name = "shmbus (spin 50 us)"
    spin_us = 50  # shmbus_client_set_spin(): spin before sleeping, for a core to spare


class ShmbusBatch(Shmbus):
    name = "shmbus (batch calls)"

    @staticmethod
    def produce(peer, go, m, payload):
        go.wait()
        chunk = [payload] * 256
        left = m
        while left:
            left -= peer.send_many(1, chunk[:min(left, 256)])

    def consume(self, m):
        recv_many = self.me.recv_many
        left = m
        while left > 0:
            left -= len(recv_many(256))


# -- multiprocessing ------------------------------------------------------------------------

class MpQueue:
    name = "multiprocessing.Queue"

    def __init__(self, size):
        self.to_child, self.to_parent = MP.Queue(), MP.Queue()

    def child(self, fn, *args):
        return lambda: fn(self, *args)

    @staticmethod
    def echo(self, n):
        get, put = self.to_child.get, self.to_parent.put
        for _ in range(n):
            put(get())

    def trip(self, payload):
        self.to_child.put(payload)
        return self.to_parent.get()

    @staticmethod
    def produce(self, go, m, payload):
        go.wait()
        put = self.to_parent.put
        for _ in range(m):
            put(payload)

    def consume(self, m):
        get = self.to_parent.get
        for _ in range(m):
            get()

    def wait_peer(self):
        pass

    def close(self):
        for q in (self.to_child, self.to_parent):
            q.close()
            q.join_thread()


class MpPipe:
    name = "multiprocessing.Pipe"

    def __init__(self, size):
        self.mine, self.theirs = MP.Pipe()

    def child(self, fn, *args):
        return lambda: fn(self, *args)

    @staticmethod
    def echo(self, n):
        recv, send = self.theirs.recv_bytes, self.theirs.send_bytes
        for _ in range(n):
            send(recv())

    def trip(self, payload):
        self.mine.send_bytes(payload)
        return self.mine.recv_bytes()

    @staticmethod
    def produce(self, go, m, payload):
        go.wait()
        send = self.theirs.send_bytes
        for _ in range(m):
            send(payload)

    def consume(self, m):
        recv = self.mine.recv_bytes
        for _ in range(m):
            recv()

    def wait_peer(self):
        pass

    def close(self):
        self.mine.close()
        self.theirs.close()


# -- pyzmq ----------------------------------------------------------------------------------

class Zmq:
    name = "pyzmq (PAIR, ipc://)"

    def __init__(self, size):
        self.dir = tempfile.mkdtemp(prefix="pybench-zmq-")
        self.addr = f"ipc://{self.dir}/pair"
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PAIR)
        self.sock.bind(self.addr)

    def child(self, fn, *args):
        def run():
            ctx = zmq.Context()
            s = ctx.socket(zmq.PAIR)
            s.connect(self.addr)
            fn(s, *args)
            s.close(linger=1000)
            ctx.term()
        return run

    @staticmethod
    def echo(s, n):
        recv, send = s.recv, s.send
        for _ in range(n):
            send(recv())

    def trip(self, payload):
        self.sock.send(payload)
        return self.sock.recv()

    @staticmethod
    def produce(s, go, m, payload):
        go.wait()
        send = s.send
        for _ in range(m):
            send(payload)

    def consume(self, m):
        recv = self.sock.recv
        for _ in range(m):
            recv()

    def wait_peer(self):
        pass

    def close(self):
        self.sock.close(linger=0)
        self.ctx.term()
        shutil.rmtree(self.dir, ignore_errors=True)


# -- the runs -------------------------------------------------------------------------------

def run_child(target):
    p = MP.Process(target=target)
    p.start()
    return p


def finish(p):
    p.join(60)
    if p.is_alive():
        p.kill()
        p.join()
        raise RuntimeError("bench child did not finish")
    if p.exitcode != 0:
        raise RuntimeError(f"bench child failed (exit {p.exitcode})")


def round_trip(cls, trips, payload):
    t = cls(len(payload))
    try:
        p = run_child(t.child(cls.echo, trips))
        t.wait_peer()
        warm = min(1000, trips // 10)
        for _ in range(warm):
            t.trip(payload)
        t0 = time.perf_counter()
        for _ in range(trips - warm):
            t.trip(payload)
        dt = time.perf_counter() - t0
        finish(p)
        return dt / (trips - warm) * 1e6
    finally:
        t.close()


def throughput(cls, msgs, payload):
    t = cls(len(payload))
    try:
        go = MP.Event()
        p = run_child(t.child(cls.produce, go, msgs, payload))
        t.wait_peer()
        t0 = time.perf_counter()
        go.set()
        t.consume(msgs)
        dt = time.perf_counter() - t0
        finish(p)
        return msgs / dt
    finally:
        t.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trips", type=int, default=20000)
    ap.add_argument("--msgs", type=int, default=200000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="a tenth of the default counts")
    a = ap.parse_args()
    if a.quick:
        a.trips, a.msgs = a.trips // 10, a.msgs // 10
    if a.size < 1:
        ap.error("--size must be at least 1")
    payload = b"x" * a.size
    # The bus's key file goes to a folder of our own, removed at the end.
    tmp = tempfile.mkdtemp(prefix="pybench-")
    os.environ["SHMBUS_DIR"] = tmp
    kinds = [Shmbus, ShmbusSpin, ShmbusBatch, MpQueue, MpPipe] + ([Zmq] if zmq else [])
    try:
        rows = []
        for cls in kinds:
            rt = None if cls is ShmbusBatch else round_trip(cls, a.trips, payload)
            tp = throughput(cls, a.msgs, payload)
            rows.append((cls.name, rt, tp))
            print(f"  measured {cls.name}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = next(r for r in rows if r[0] == MpQueue.name)
    print(f"Python {sys.version.split()[0]}, shmbus {shmbus.version()}, {a.size}-byte messages, "
          f"{a.trips} round trips, {a.msgs} messages one way; 2 processes each")
    print(f"{'transport':26} {'round trip us':>14} {'vs Queue':>9} {'msgs/s 1:1':>12} "
          f"{'vs Queue':>9}")
    for name, rt, tp in rows:
        rts = f"{rt:14.1f} {base[1] / rt:8.1f}x" if rt else f"{'-':>14} {'':>9}"
        print(f"{name:26} {rts} {tp:12,.0f} {tp / base[2]:8.1f}x")
    if zmq is None:
        print("pyzmq: not installed (python3-zmq, scripts/deps.sh bench): not measured")
    for name, rt, tp in rows[:2]:
        ok = base[1] / rt >= 5 and tp / base[2] >= 5
        print(f"target (>= 5x multiprocessing.Queue in round trip and throughput), {name}: "
              f"{'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
