"""Broadcast frame topics: Rust <-> Python, every backend, Lagged with the exact count,
Evicted, start positions."""

from __future__ import annotations

import pytest

import shmchan
from shmchan import broadcast
from conftest import new_name, pattern


def test_in_one_process(name, backend):
    opts, _ = backend
    with broadcast.FramePublisher.create(name, capacity=8, max_frame=64, **opts) as pub:
        assert pub.capacity == 8 and pub.max_frame == 64 and pub.overflow == "overwrite"
        for w in (b"a", b"bb", b"ccc"):
            pub.send(w)
        late = broadcast.FrameSubscriber.open(name, start=("history", 2), **opts)
        old = broadcast.FrameSubscriber.open(name, start="oldest", **opts)
        new = broadcast.FrameSubscriber.open(name, **opts)
        with late, old, new:
            assert pub.subscriber_count() == 3
            pub.send(b"dddd")
            assert [late.recv(timeout=5) for _ in range(3)] == [b"bb", b"ccc", b"dddd"]
            assert [old.recv(timeout=5) for _ in range(4)] == [b"a", b"bb", b"ccc", b"dddd"]
            assert new.recv(timeout=5) == b"dddd"
            with pytest.raises(shmchan.Empty):
                new.try_recv()
            with pytest.raises(shmchan.Timeout):
                new.recv(timeout=0.05)
            with pytest.raises(shmchan.TooLarge):
                pub.send(b"x" * 65)
            # Lagged, with the exact count; then the oldest frame still kept.
            for i in range(20):
                pub.send(b"%d" % i)
            with pytest.raises(shmchan.Lagged) as e:
                new.recv(timeout=5)
            # (the ring keeps capacity - 1 = 7 frames: 13 were overwritten unread)
            assert e.value.missed == 13 and "13 messages" in str(e.value)
            assert new.recv(timeout=5) == b"13"
            buf = bytearray(64)
            assert new.recv_into(buf) == 2 and buf[:2] == b"14"
            assert new.lag() == 5
    # The publisher is gone: subscribers drain, then Disconnected (a closed subscriber detaches).


def test_disconnected_after_publisher_leaves(name):
    pub = broadcast.FramePublisher.create(name, capacity=8)
    with broadcast.FrameSubscriber.open(name) as sub:
        pub.send(b"last")
        pub.close()
        assert sub.recv(timeout=5) == b"last"
        with pytest.raises(shmchan.Disconnected):
            sub.recv(timeout=5)


def test_block_mode_evicts_a_stuck_subscriber(name):
    with broadcast.FramePublisher.create(
        name, capacity=4, overflow="block", evict_after=0.1
    ) as pub:
        assert pub.overflow == "block"
        with broadcast.FrameSubscriber.open(name) as sub:
            for i in range(4):
                pub.send(b"%d" % i)
            with pytest.raises(shmchan.Full):
                pub.try_send(b"no room")
            pub.send(b"4", timeout=10)  # waits, then evicts the subscriber that does not read
            with pytest.raises(shmchan.Evicted):
                for _ in range(10):
                    sub.recv(timeout=5)


def test_rust_publisher_python_subscriber(name, backend, peer_bin, spawn):
    opts, flags = backend
    # The Rust publisher creates the topic and waits for a subscriber; ours starts at the
    # oldest frame, so nothing is missed even if it subscribes late.
    peer = spawn([peer_bin, "bcast-pub", name, "--count", 500, "--capacity", 1024, *flags])
    with broadcast.FrameSubscriber.open(name, start="oldest", **opts) as sub:
        for i in range(500):
            assert sub.recv(timeout=30) == pattern(i)
        assert peer.result() == ["sent", "500"]
        with pytest.raises(shmchan.Disconnected):
            sub.recv(timeout=30)


def test_python_publisher_rust_subscriber(name, backend, rust):
    opts, flags = backend
    with broadcast.FramePublisher.create(name, capacity=1024, max_frame=300, **opts) as pub:
        peer = rust("bcast-sub", name, "--count", 500, *flags)
        pub.wait_for_subscribers(1, timeout=30)
        for i in range(500):
            pub.send(pattern(i))
        assert peer.result() == ["500", "0"]


def test_publisher_loans(name):
    """A frame written in place in the topic's ring: commit publishes a prefix; no commit,
    nothing; the publisher does nothing else while a loan is out; views must be gone first."""
    np = pytest.importorskip("numpy")
    with broadcast.FramePublisher.create(name, capacity=8, max_frame=64) as pub:
        with broadcast.FrameSubscriber.open(name) as sub:
            with pub.loan(16) as loan:
                assert len(loan) == 16
                loan[:5] = b"hello"
                loan.commit(5)
            assert sub.recv(timeout=5) == b"hello"
            with pub.loan(8) as loan:
                loan[:2] = b"no"
            with pytest.raises(shmchan.Empty):
                sub.try_recv()
            loan = pub.loan(64)
            a = np.frombuffer(loan, np.uint8)
            a[:] = 7
            with pytest.raises(BufferError):
                pub.send(b"while a loan is out")
            with pytest.raises(BufferError):
                pub.subscriber_count()
            with pytest.raises(BufferError):
                loan.commit()
            with pytest.raises(BufferError):
                pub.close()
            del a
            loan.commit()
            assert sub.recv(timeout=5) == b"\x07" * 64
            with pytest.raises(shmchan.TooLarge):
                pub.loan(65)
            assert pub.subscriber_count() == 1
    # Block mode: a loan waits for room like a send, and try (timeout=0) says Timeout.
    b = new_name()
    with broadcast.FramePublisher.create(b, capacity=2, max_frame=8, overflow="block") as pub:
        with broadcast.FrameSubscriber.open(b) as sub:
            pub.send(b"1")
            pub.send(b"2")
            with pytest.raises(shmchan.Timeout):
                pub.loan(4, timeout=0.05)
            assert sub.recv(timeout=5) == b"1"
            with pub.loan(4, timeout=5) as loan:
                loan[:3] = b"abc"
                loan.commit(3)
            assert [sub.recv(timeout=5) for _ in range(2)] == [b"2", b"abc"]
