#!/usr/bin/env python3
"""asyncio_receiver: join bus "demo" as client 2 and print its messages from inside an
asyncio event loop, next to another task (a clock), until none comes for 10 s.

Run it, then in another terminal: ./sender hello world (examples/sender.c), or
    python3 -c 'import shmbus; b = shmbus.Bus("demo"); c = b.join(1); c.send(2, b"hi")'
The module is found once installed (make install); from the source tree run it with
PYTHONPATH=python.
"""
import asyncio
import sys
import time

import shmbus


async def clock(stop: asyncio.Event) -> None:
    """Another task of the same loop: it keeps ticking while we wait for messages."""
    while not stop.is_set():
        print(time.strftime("%H:%M:%S"), "tick", flush=True)
        try:
            await asyncio.wait_for(stop.wait(), timeout=2)
        except asyncio.TimeoutError:
            pass


async def main(quiet: float) -> None:
    with shmbus.Bus("demo", create=True) as bus, bus.join(2, "receiver") as me:
        stop = asyncio.Event()
        ticker = asyncio.create_task(clock(stop))
        # Waits through the client's event-loop descriptor (loop.add_reader), never
        # blocking the loop; stops after `quiet` seconds without a message.
        async for msg in me.amessages(timeout=quiet):
            print(f"from {msg.src}: {msg.data.decode(errors='replace')}", flush=True)
        stop.set()
        await ticker


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0))
