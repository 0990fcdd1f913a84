"""asyncio: recv_async and stream without a thread per waiter; cancellation takes nothing."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import shmchan
from shmchan import broadcast
from conftest import pattern


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_recv_async_and_stream(name, rust):
    with shmchan.FrameReceiver.create(name, capacity=1 << 12) as rx:
        before = threading.active_count()

        async def main():
            peer = rust("frame-send", name, "--count", 2000)
            first = await rx.recv_async()
            rest = [f async for f in rx.stream()]  # until the sender is gone
            assert threading.active_count() == before  # no thread per waiter
            return peer, [first] + rest

        peer, got = run(main())
        assert got == [pattern(i) for i in range(2000)]
        assert peer.result() == ["sent", "2000"]


def test_many_loops_and_a_sleeping_waiter(name):
    tx = shmchan.FrameSender.create(name)
    rx = shmchan.FrameReceiver.open(name)
    with tx, rx:
        async def main():
            # The loop stays responsive while the receive waits.
            task = asyncio.ensure_future(rx.recv_async())
            ticks = 0
            for _ in range(10):
                await asyncio.sleep(0.01)
                ticks += 1
            assert not task.done() and ticks == 10
            threading.Timer(0.05, tx.send, (b"late",)).start()
            return await task

        assert run(main()) == b"late"
        # A second event loop gets its own eventfd.
        tx.send(b"again")
        assert run(rx.recv_async()) == b"again"


def test_cancellation_takes_nothing(name):
    tx = shmchan.FrameSender.create(name)
    rx = shmchan.FrameReceiver.open(name)
    with tx, rx:
        async def main():
            task = asyncio.ensure_future(rx.recv_async())
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The Rust future was dropped: the handle is free for a plain receive, and the
            # frame sent now was not taken by the cancelled receive.
            tx.send(b"after cancel")
            assert rx.recv(timeout=5) == b"after cancel"
            # wait_for's timeout cancels too.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(rx.recv_async(), 0.05)
            tx.send(b"kept")
            return await rx.recv_async()

        assert run(main()) == b"kept"


def test_disconnected(name):
    tx = shmchan.FrameSender.create(name)
    rx = shmchan.FrameReceiver.open(name)
    with rx:
        async def main():
            threading.Timer(0.05, tx.close).start()
            with pytest.raises(shmchan.Disconnected):
                await rx.recv_async()

        run(main())


def test_broadcast_subscriber_async(name):
    with broadcast.FramePublisher.create(name, capacity=64) as pub:
        with broadcast.FrameSubscriber.open(name) as sub:
            def publish():
                for i in range(50):
                    pub.send(b"%d" % i)
                    time.sleep(0.001)

            async def main():
                t = threading.Thread(target=publish)
                t.start()
                got = [await sub.recv_async() for _ in range(50)]
                t.join()
                return got

            assert run(main()) == [b"%d" % i for i in range(50)]
