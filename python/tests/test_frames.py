"""Frame channels: in one process, and across processes with Rust and Python peers, on every
backend; kills of either side; zero-copy frames and the views that must not outlive them."""

from __future__ import annotations

import gc
import os
import threading
import time

import pytest

import shmchan
from conftest import new_name, pattern

np = pytest.importorskip("numpy")


def pair(name, opts, capacity=1 << 16):
    tx = shmchan.FrameSender.create(name, capacity=capacity, **opts)
    rx = shmchan.FrameReceiver.open(name, **opts)
    return tx, rx


def test_roundtrip_in_one_process(name, backend):
    opts, _ = backend
    tx, rx = pair(name, opts, capacity=4096)
    with tx, rx:
        assert tx.capacity == 4096 and rx.capacity == 4096
        assert tx.max_frame == 4080 == rx.max_frame
        for n in (0, 1, 7, 8, 100, 2000):
            data = os.urandom(n)
            tx.send(data)
            assert rx.recv(timeout=5) == data
        # The largest frame: it waits for the receiver to pass the padding at the ring's end.
        data = os.urandom(4080)
        t = threading.Thread(target=tx.send, args=(data,))
        t.start()
        assert rx.recv(timeout=5) == data
        t.join()
        # Every contiguous buffer goes in.
        tx.send(bytearray(b"ab"))
        tx.send(memoryview(b"xxcdxx")[2:4])
        tx.send(np.arange(4, dtype=np.uint16))
        assert rx.recv() == b"ab"
        assert rx.recv() == b"cd"
        assert rx.recv() == np.arange(4, dtype=np.uint16).tobytes()
        # try_ forms and timeouts.
        with pytest.raises(shmchan.Empty):
            rx.try_recv()
        with pytest.raises(shmchan.Timeout) as e:
            rx.recv(timeout=0.05)
        assert isinstance(e.value, TimeoutError) and "timed out" in str(e.value)
        tx.try_send(b"x" * 3000)
        with pytest.raises(shmchan.Full):
            tx.try_send(b"y" * 1100)
        with pytest.raises(shmchan.Timeout):
            tx.send(b"y" * 1100, timeout=0.05)
        assert rx.try_recv() == b"x" * 3000
        # recv_into: a frame longer than the buffer stays for the next receive.
        tx.send(b"0123456789")
        small = bytearray(4)
        with pytest.raises(ValueError):
            rx.recv_into(small)
        big = np.zeros(64, np.uint8)
        assert rx.recv_into(big) == 10 and big[:10].tobytes() == b"0123456789"
        # Too large: nothing sent.
        with pytest.raises(shmchan.TooLarge):
            tx.send(b"z" * 4081)
        assert tx.is_connected() and rx.is_connected()
        tx.wait_for_peer(timeout=1)
        rx.wait_for_peer(timeout=1)
    assert tx.closed and rx.closed
    with pytest.raises(ValueError):
        tx.send(b"after close")


def test_loans(name, backend):
    opts, _ = backend
    tx, rx = pair(name, opts)
    with tx, rx:
        with tx.loan(16) as loan:
            assert len(loan) == 16
            loan[:5] = b"hello"
            loan.commit(5)
        assert rx.recv() == b"hello"
        with tx.loan(16) as loan:
            loan[:2] = b"no"  # no commit: nothing published
        with pytest.raises(shmchan.Empty):
            rx.try_recv()
        loan = tx.loan(1000)
        a = np.frombuffer(loan, np.uint8)  # writable, in the ring
        a[:] = 7
        with pytest.raises(BufferError):
            loan.commit(1000)  # a view is alive
        with pytest.raises(BufferError):
            tx.send(b"while a loan is out")
        del a
        loan.commit(1000)
        assert rx.recv() == b"\x07" * 1000
        with pytest.raises(ValueError):
            loan.commit(1)  # already committed
        # Queries are answered while a loan is out.
        loan = tx.loan(8)
        assert len(tx) == 0 and tx.is_connected()
        tx.wait_for_peer(timeout=1)
        loan.abandon()
        # A loan dropped without commit publishes nothing and frees the sender.
        loan = tx.loan(8)
        del loan
        gc.collect()
        tx.send(b"next")
        assert rx.recv() == b"next"


def mapping_of(name: str, opts) -> tuple[int, int]:
    """The address range where this process maps the channel (from /proc/self/maps)."""
    if opts.get("backend") == "sysv":
        return None
    path = f"/dev/shm/{name}" if opts.get("backend") == "posix" else os.path.join(opts["dir"], name)
    with open("/proc/self/maps") as f:
        for line in f:
            if line.rstrip().endswith(path):
                lo, hi = line.split()[0].split("-")
                return int(lo, 16), int(hi, 16)
    raise AssertionError(f"{path} not mapped")


def test_recv_frame_is_zero_copy_and_pinned(name, backend):
    opts, _ = backend
    tx, rx = pair(name, opts, capacity=1 << 20)
    with tx, rx:
        payload = np.arange(100_000, dtype=np.uint8)
        tx.send(payload)
        with rx.recv_frame() as f:
            assert len(f) == 100_000
            a = np.frombuffer(f, np.uint8)
            b = np.frombuffer(f, np.uint8)
            assert np.shares_memory(a, b)
            assert (a == payload).all()
            assert not a.flags.writeable  # read-only
            rng = mapping_of(name, opts)
            if rng:
                assert rng[0] <= a.ctypes.data < rng[1], "the array is not in the mapping"
            assert f[0] == 0 and f[1:4] == b"\x01\x02\x03" and bytes(f)[:2] == b"\x00\x01"
            with pytest.raises(BufferError):
                f.release()  # views alive
            with pytest.raises(BufferError):
                rx.recv(timeout=0)  # no other receive while the frame is held
            del a, b
            # Queries are answered while the frame is held (through the frame's receiver),
            # and do not release it.
            assert len(rx) > 0 and rx.is_connected()
            rx.wait_for_peer(timeout=1)
            assert not f.released
        assert f.released
        with pytest.raises(ValueError):
            memoryview(f)

        # Leaving the block with a view alive raises, and the slot stays held.
        tx.send(b"abc")
        with pytest.raises(BufferError):
            with rx.recv_frame() as f:
                m = memoryview(f)
        assert not f.released
        tx.send(b"def")
        with pytest.raises(BufferError):
            rx.recv(timeout=0)
        m.release()
        # Views gone: the next receive releases the frame by itself (as the Rust receiver
        # releases a leaked frame).
        assert rx.recv(timeout=5) == b"def"
        assert f.released

        # A frame object that goes away gives its slot back.
        tx.send(b"ghi")
        f = rx.recv_frame()
        del f
        gc.collect()
        assert len(rx) == 0


def test_writable_views_of_a_frame_are_refused(name):
    tx, rx = pair(name, {})
    with tx, rx:
        tx.send(b"abc")
        with rx.recv_frame() as f:
            a = np.frombuffer(f, np.uint8)
            with pytest.raises(ValueError):
                a.setflags(write=True)
            del a
            import ctypes

            with pytest.raises((BufferError, TypeError)):
                (ctypes.c_char * 3).from_buffer(f)


def test_rust_sender_python_receiver(name, backend, rust):
    opts, flags = backend
    buf = bytearray(400)
    with shmchan.FrameReceiver.create(name, capacity=1 << 12, **opts) as rx:
        peer = rust("frame-send", name, "--count", 3000, *flags)
        for i in range(3000):
            if i % 3 == 0:
                got = rx.recv(timeout=30)
            elif i % 3 == 1:
                n = rx.recv_into(buf, timeout=30)
                got = bytes(buf[:n])
            else:
                with rx.recv_frame(timeout=30) as f:
                    got = bytes(f)
            assert got == pattern(i), f"frame {i}"
        assert peer.result() == ["sent", "3000"]
        with pytest.raises(shmchan.Disconnected):
            rx.recv(timeout=30)


def test_python_sender_rust_receiver(name, backend, rust):
    opts, flags = backend
    peer = rust("frame-recv", name, "--create", "--count", 3000, "--capacity", 4096, *flags)
    with shmchan.FrameSender.open(name, **opts) as tx:
        for i in range(3000):
            if i % 2:
                tx.send(pattern(i), timeout=30)
            else:
                p = pattern(i)
                with tx.loan(len(p) + 3, timeout=30) as loan:
                    loan[: len(p)] = p
                    loan.commit(len(p))
    assert peer.result() == ["3000", "0"]


@pytest.mark.parametrize("kind", ["rust", "python"])
def test_killed_sender_then_restarted(name, backend, rust, python_peer, kind):
    opts, flags = backend
    import json

    start = (lambda *a: rust(*a, *flags)) if kind == "rust" else (
        lambda *a: python_peer(*a, "--options", json.dumps(opts)))
    with shmchan.FrameReceiver.create(name, capacity=1 << 12, **opts) as rx:
        peer = start("frame-send", name, "--count", 10**9)
        for i in range(50):
            assert rx.recv(timeout=30) == pattern(i)
        peer.kill9()
        # What the killed sender committed is delivered, then Disconnected.
        with pytest.raises(shmchan.Disconnected):
            for _ in range(10**6):
                rx.recv(timeout=30)
        assert not rx.is_connected()
        # A new sender takes the place; the same receiver works again.
        peer = start("frame-send", name, "--count", 20)
        for i in range(20):
            assert rx.recv(timeout=30) == pattern(i)
        peer.result()
        with pytest.raises(shmchan.Disconnected):
            rx.recv(timeout=30)


@pytest.mark.parametrize("kind", ["rust", "python"])
def test_killed_receiver_then_restarted(name, backend, rust, python_peer, kind):
    opts, flags = backend
    import json

    start = (lambda *a: rust(*a, *flags)) if kind == "rust" else (
        lambda *a: python_peer(*a, "--options", json.dumps(opts)))
    with shmchan.FrameSender.create(name, capacity=1 << 12, **opts) as tx:
        peer = start("frame-recv", name, "--count", 10**9)
        tx.wait_for_peer(timeout=30)
        for i in range(100):
            tx.send(pattern(i), timeout=30)
        peer.kill9()
        # The sender notices: sends fail with Disconnected (within the ring's worth).
        with pytest.raises(shmchan.Disconnected):
            for i in range(10**6):
                tx.send(pattern(i), timeout=30)
        assert not tx.is_connected()
        # A restarted receiver gets what was left in the ring, then what we send now.
        peer = start("frame-recv", name, "--count", 10**9)
        tx.wait_for_peer(timeout=30)
        for i in range(200):
            tx.send(pattern(i), timeout=30)
        tx.close()
        n, _bad = peer.result()
        assert int(n) >= 200


def test_fork_inherited_handles_refuse(name):
    tx, rx = pair(name, {})
    with tx, rx:
        tx.send(b"parent's")
        pid = os.fork()
        if pid == 0:  # the child: every use of the parent's handles raises ForkedHandle
            code = 0
            for op in (lambda: rx.recv(timeout=0), lambda: tx.send(b"x"), rx.is_connected):
                try:
                    op()
                    code = 1
                except shmchan.ForkedHandle as e:
                    if "open the channel in the child" not in str(e):
                        code = 2
                except BaseException:
                    code = 3
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # The parent's handles are untouched.
        assert rx.recv(timeout=5) == b"parent's"
        assert tx.is_connected()


def test_gil_released_while_blocked(name):
    """A receive blocked on an empty ring lets another thread run."""
    tx, rx = pair(name, {})
    with tx, rx:
        count = 0
        stop = False

        def spin():
            nonlocal count
            while not stop:
                count += 1

        t = threading.Thread(target=spin)
        t.start()
        try:
            with pytest.raises(shmchan.Timeout):
                rx.recv(timeout=1.0)
        finally:
            stop = True
            t.join()
        # With the GIL held through the wait the thread would not have run at all (a few
        # hundred increments at most around the switch interval).
        assert count > 100_000


def test_ctrl_c_interrupts_a_blocked_receive(name, ctrl_c):
    import signal

    tx, rx = pair(name, {})
    with tx, rx:
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                rx.recv(timeout=30)  # the hang guard
        finally:
            timer.cancel()
        # The receiver still works.
        tx.send(b"after")
        assert rx.recv(timeout=5) == b"after"


def test_concurrent_users_of_one_handle_do_not_deadlock(name):
    """A thread blocked in recv holds the handle; another thread asking it something waits
    (without the GIL) instead of deadlocking."""
    tx, rx = pair(name, {})
    with tx, rx:
        got = []
        t = threading.Thread(target=lambda: got.append(rx.recv(timeout=30)))
        t.start()
        time.sleep(0.1)
        tx.send(b"wake")
        t.join(timeout=30)
        assert got == [b"wake"]
        assert len(rx) == 0
