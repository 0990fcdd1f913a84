"""Typed channels (shmchan.spsc, shmchan.mpmc, shmchan.broadcast.Publisher/Subscriber): numpy
dtypes and struct formats, Rust <-> Python peers in both directions on every backend (the Rust
side a `#[repr(C)] Quote` under `Options::type_name("Quote")`), mismatches, kills and
restarts, batches, asyncio, fork."""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import threading

import pytest

import shmchan
from shmchan import broadcast
from conftest import new_name, quote

np = pytest.importorskip("numpy")

QUOTE = np.dtype(
    [("instrument", "<u4"), ("side", "<u4"), ("price", "<i8"), ("qty", "<i8")], align=True
)
FMT = "<IIqq"
Q = {"dtype": QUOTE, "type_name": "Quote"}

# kind -> (sending class, receiving class)
KINDS = {
    "spsc": (shmchan.spsc.Sender, shmchan.spsc.Receiver),
    "mpmc": (shmchan.mpmc.Sender, shmchan.mpmc.Receiver),
    "bcast": (broadcast.Publisher, broadcast.Subscriber),
}


def quotes(start: int, n: int) -> "np.ndarray":
    """Elements start .. start + n of the pattern, as an array of QUOTE."""
    i = np.arange(start, start + n, dtype=np.int64)
    a = np.empty(n, QUOTE)
    a["instrument"] = (i * 7 + 1) & 0xFFFFFFFF
    a["side"] = i % 2
    a["price"] = i * 1_000_003 - 500_000_000
    a["qty"] = 11 - 3 * i
    return a


def pair(kind: str, name: str, opts: dict, capacity: int = 64, element=Q, **kw):
    """A sender (publisher) that creates `name`, and a receiver (subscriber, from the oldest)."""
    tx_cls, rx_cls = KINDS[kind]
    tx = tx_cls.create(name, capacity=capacity, **element, **opts, **kw)
    if kind == "bcast":
        rx = rx_cls.open(name, start="oldest", **element, **opts)
    else:
        rx = rx_cls.open(name, **element, **opts)
    return tx, rx


@pytest.mark.parametrize("kind", KINDS)
def test_roundtrip_in_one_process(kind, name, backend):
    opts, _ = backend
    tx, rx = pair(kind, name, opts)
    with tx, rx:
        assert tx.capacity == 64 and rx.capacity == 64
        assert tx.dtype == QUOTE and tx.format is None and tx.type_name == "Quote"
        assert (tx.itemsize, tx.alignment) == (24, 8)
        assert "Quote" in repr(rx) and name in repr(tx)
        # A tuple, an np.void of the dtype, bytes of one element.
        tx.send(quote(0))
        tx.send(quotes(1, 1)[0])
        tx.send(quotes(2, 1).tobytes())
        tx.try_send(quote(3))
        got = [rx.recv(timeout=5) for _ in range(4)]
        assert all(isinstance(g, np.void) and g.dtype == QUOTE for g in got)
        assert [g.item() for g in got] == [quote(i) for i in range(4)]
        # Each received record is a copy of its own: later receives do not touch it.
        tx.send(quote(4))
        again = rx.recv(timeout=5)
        assert got[0].item() == quote(0) and again.item() == quote(4)
        got[0]["qty"] = 99  # writable, and only ours
        # Batches: send_many of an array, of bytes, of a list; recv_into an array.
        tx.send_many(quotes(10, 20))
        tx.send_many(quotes(30, 5).tobytes())
        tx.send_many([quote(35), quote(36)])
        buf = np.zeros(64, QUOTE)
        n = rx.recv_into(buf, timeout=5)
        assert n == 27 and (buf[:n] == quotes(10, 27)).all()
        raw = bytearray(24 * 3)
        tx.send_many(quotes(40, 2))
        assert rx.recv_into(raw) == 2 and bytes(raw[:48]) == quotes(40, 2).tobytes()
        # try_ forms and timeouts.
        with pytest.raises(shmchan.Empty):
            rx.try_recv()
        with pytest.raises(shmchan.Timeout):
            rx.recv(timeout=0.05)
        with pytest.raises(shmchan.Timeout):
            rx.recv_into(buf, timeout=0.05)
        assert tx.is_connected() and rx.is_connected()
        rx.wait_for_peer(timeout=5)
        if kind == "bcast":
            assert tx.subscriber_count() == 1 and rx.lag() == 0 and tx.overflow == "overwrite"
            tx.wait_for_subscribers(1, timeout=5)
        else:
            assert len(tx) == 0 == len(rx)
            tx.wait_for_peer(timeout=5)
    assert tx.closed and rx.closed
    with pytest.raises(ValueError):
        tx.send(quote(0))
    with pytest.raises(ValueError):
        rx.recv(timeout=0)


@pytest.mark.parametrize("kind", ["spsc", "mpmc"])
def test_full_and_send_many_timeout_says_how_many_went(kind, name):
    tx, rx = pair(kind, name, {}, capacity=16)
    with tx, rx:
        with pytest.raises(shmchan.Timeout) as e:
            tx.send_many(quotes(0, 40), timeout=0.1)
        assert e.value.sent == 16
        with pytest.raises(shmchan.Full):
            tx.try_send(quote(0))
        with pytest.raises(shmchan.Timeout) as e:
            tx.send(quote(0), timeout=0.05)
        assert e.value.sent == 0
        buf = np.empty(100, QUOTE)
        assert rx.recv_into(buf) == 16 and (buf[:16] == quotes(0, 16)).all()
        # A send_many waits for room while the receiver drains.
        got = []

        def drain():
            while sum(map(len, got)) < 100:
                n = rx.recv_into(buf, timeout=10)
                got.append(buf[:n].copy())

        t = threading.Thread(target=drain)
        t.start()
        tx.send_many(quotes(0, 100), timeout=10)
        t.join()
        assert (np.concatenate(got) == quotes(0, 100)).all()
        rx.close()
        with pytest.raises(shmchan.Disconnected) as e:
            for _ in range(100):
                tx.send_many(quotes(0, 4), timeout=5)
        assert e.value.sent >= 0


def test_format_elements_without_numpy_values(name):
    """format= (struct): tuples in, tuples out; the alignment a C compiler would give."""
    tx = shmchan.spsc.Sender.create(name, format=FMT, type_name="Quote", capacity=16)
    rx = shmchan.spsc.Receiver.open(name, format=FMT, type_name="Quote")
    with tx, rx:
        assert (tx.itemsize, tx.alignment, tx.format, tx.dtype) == (24, 8, FMT, None)
        tx.send(quote(1))
        tx.send(list(quote(2)))
        tx.send(struct.pack(FMT, *quote(3)))
        tx.send_many([quote(4), quote(5)])
        tx.send_many(struct.pack(FMT, *quote(6)) * 2)
        assert [rx.recv(timeout=5) for _ in range(7)] == [quote(i) for i in (1, 2, 3, 4, 5, 6, 6)]
        tx.send(quote(7))
        buf = bytearray(24 * 4)
        assert rx.recv_into(buf) == 1 and struct.unpack_from(FMT, buf) == quote(7)
        with pytest.raises(TypeError):
            tx.send(5)  # four fields, not one
    # A format with padding a C struct has at its end must say so.
    with pytest.raises(ValueError, match="padding"):
        shmchan.spsc.Sender.create(new_name(), format="<qI", type_name="X")
    # One field: a bare value goes too; and the format agrees with a dtype of that layout.
    u = new_name()
    with shmchan.spsc.Sender.create(u, format="<QI4x", type_name="Pair") as tx:
        with shmchan.spsc.Receiver.open(
            u, dtype=np.dtype([("a", "<u8"), ("b", "<u4")], align=True), type_name="Pair"
        ) as rx:
            tx.send((1, 2))
            r = rx.recv(timeout=5)
            assert (int(r["a"]), int(r["b"])) == (1, 2)
    v = new_name()
    with shmchan.spsc.Sender.create(v, format="d", type_name="f64") as tx:
        with shmchan.spsc.Receiver.open(v, dtype=np.float64, type_name="f64") as rx:
            tx.send(2.5)
            assert rx.recv(timeout=5) == 2.5


def test_plain_dtypes(name):
    tx = shmchan.spsc.Sender.create(name, dtype=np.uint8, type_name="u8", capacity=16)
    rx = shmchan.spsc.Receiver.open(name, dtype="u1", type_name="u8")
    with tx, rx:
        tx.send(255)
        tx.send(np.uint8(7))
        tx.send(b"\x03")
        with pytest.raises(OverflowError):
            tx.send(256)
        with pytest.raises(OverflowError):
            tx.send(-1)
        got = [rx.recv(timeout=5) for _ in range(3)]
        assert got == [255, 7, 3] and all(type(g) is np.uint8 for g in got)
    i = new_name()
    with shmchan.spsc.Sender.create(i, dtype=np.int16, type_name="i16") as tx:
        with shmchan.spsc.Receiver.open(i, dtype=np.int16, type_name="i16") as rx:
            tx.send(-32768)
            tx.send(32767)
            with pytest.raises(OverflowError):
                tx.send(32768)
            tx.send(np.float32(3.0))  # numpy's conversion
            assert [int(rx.recv(timeout=5)) for _ in range(3)] == [-32768, 32767, 3]


def test_element_errors(name):
    with pytest.raises(TypeError, match="type_name"):
        shmchan.spsc.Sender.create(name, dtype=QUOTE)
    with pytest.raises(TypeError, match="dtype= .* or format="):
        shmchan.spsc.Sender.create(name, type_name="Quote")
    with pytest.raises(TypeError, match="not both"):
        shmchan.spsc.Sender.create(name, dtype=QUOTE, format=FMT, type_name="Quote")
    with pytest.raises(TypeError, match="Python objects"):
        shmchan.spsc.Sender.create(name, dtype=object, type_name="Obj")
    with pytest.raises(TypeError, match="Python objects"):
        shmchan.spsc.Sender.create(name, dtype=[("a", "u8"), ("o", "O")], type_name="Obj")
    with pytest.raises(TypeError, match="sub-array"):
        shmchan.spsc.Sender.create(name, dtype=("u1", 16), type_name="Sub")
    with pytest.raises(shmchan.InvalidOptions):
        shmchan.spsc.Sender.create(name, dtype=QUOTE, type_name="a::b")
    assert not os.path.exists(f"/dev/shm/{name}")
    tx, rx = pair("spsc", name, {})
    with tx, rx:
        with pytest.raises(ValueError, match="exactly one element"):
            tx.send(b"x" * 23)
        with pytest.raises(TypeError, match="dtype"):
            tx.send_many(np.zeros(3, np.int64))
        with pytest.raises(ValueError, match="whole number"):
            tx.send_many(b"x" * 25)
        with pytest.raises(ValueError, match="C-contiguous"):
            tx.send_many(quotes(0, 10)[::2])
        with pytest.raises(TypeError, match="dtype"):
            rx.recv_into(np.zeros(4, np.int64))
        with pytest.raises(ValueError):
            rx.recv_into(bytearray(25))
        with pytest.raises(ValueError):
            rx.recv_into(np.zeros(0, QUOTE))
        with pytest.raises(ValueError, match="C-contiguous"):
            rx.recv_into(np.zeros(8, QUOTE)[::2])
        ro = np.zeros(8, QUOTE)
        ro.flags.writeable = False
        with pytest.raises(ValueError, match="writable"):
            rx.recv_into(ro)
        with pytest.raises((TypeError, BufferError)):
            rx.recv_into(b"read-only" * 8)
        with pytest.raises(ValueError):
            tx.send((1, 2))  # numpy: two fields for four
        tx.send(quote(1))
        assert rx.recv(timeout=5).item() == quote(1)  # the handles still work


MISMATCHES = {
    "type_name": ({"dtype": QUOTE, "type_name": "Quote2"}, "Quote2"),
    "size": ({"dtype": np.dtype([("a", "<u8")], align=True), "type_name": "Quote"}, "8 bytes"),
    "alignment": (
        {"dtype": np.dtype(QUOTE.descr), "type_name": "Quote"},  # packed: alignment 1
        "align=True",
    ),
    "format": ({"format": "<IIqqq", "type_name": "Quote"}, "32 bytes"),
}


@pytest.mark.parametrize("mismatch", MISMATCHES)
@pytest.mark.parametrize("kind", KINDS)
def test_mismatched_element_is_incompatible(kind, mismatch, name):
    tx_cls, rx_cls = KINDS[kind]
    other, says = MISMATCHES[mismatch]
    with tx_cls.create(name, **Q):
        with pytest.raises(shmchan.Incompatible) as e:
            rx_cls.open(name, **other)
        msg = str(e.value)
        # Both sides: the channel's element (24 bytes, alignment 8) and this handle's.
        assert "24-byte" in msg and "alignment 8" in msg and says in msg, msg


def test_rust_side_mismatch_is_incompatible(name, rust):
    peer = rust("typed-recv", "spsc", name, "--create", "--count", 1)
    with pytest.raises(shmchan.Incompatible, match="Quot"):
        shmchan.spsc.Sender.open(name, dtype=QUOTE, type_name="Quot")
    with pytest.raises(shmchan.Incompatible, match="alignment 1"):
        shmchan.spsc.Sender.open(name, dtype=np.dtype(QUOTE.descr), type_name="Quote")
    with shmchan.spsc.Sender.open(name, format=FMT, type_name="Quote") as tx:
        tx.send(quote(0))
    assert peer.result() == ["1", "0"]


def open_receiver(kind: str, name: str, opts: dict, create: bool):
    _, rx_cls = KINDS[kind]
    if kind == "bcast":
        return rx_cls.open(name, start="oldest", **Q, **opts)
    return rx_cls.create(name, capacity=256, **Q, **opts) if create else rx_cls.open(
        name, **Q, **opts
    )


@pytest.mark.parametrize("kind", KINDS)
def test_rust_sender_python_receiver(kind, name, backend, rust):
    opts, flags = backend
    count = 3000
    if kind == "bcast":  # the Rust publisher creates the topic (Block mode: lossless)
        peer = rust("typed-send", kind, name, "--count", count, "--batch", 7, "--block",
                    "--capacity", 256, *flags)
        rx = open_receiver(kind, name, opts, False)
    else:
        rx = open_receiver(kind, name, opts, True)
        peer = rust("typed-send", kind, name, "--count", count, "--batch", 7, *flags)
    with rx:
        got = []
        buf = np.empty(50, QUOTE)
        while len(got) < count:
            if len(got) % 3:
                got.append(rx.recv(timeout=30).item())
            else:
                n = rx.recv_into(buf[: min(50, count - len(got))], timeout=30)
                got.extend(r.item() for r in buf[:n])
        assert got == [quote(i) for i in range(count)]
        assert peer.result() == ["sent", str(count)]
        with pytest.raises(shmchan.Disconnected):
            rx.recv(timeout=30)


@pytest.mark.parametrize("kind", KINDS)
def test_python_sender_rust_receiver(kind, name, backend, rust):
    opts, flags = backend
    tx_cls, _ = KINDS[kind]
    count = 3000
    if kind == "bcast":
        tx = tx_cls.create(name, capacity=256, overflow="block", **Q, **opts)
        peer = rust("typed-recv", kind, name, "--count", count, "--batch", 64, *flags)
        tx.wait_for_subscribers(1, timeout=30)
    else:
        peer = rust("typed-recv", kind, name, "--create", "--count", count, "--batch", 64,
                    "--capacity", 256, *flags)
        tx = tx_cls.open(name, **Q, **opts)
    with tx:
        values = quotes(0, count)
        i = 0
        while i < count:
            if i % 100 == 0:
                tx.send_many(values[i : i + 90], timeout=30)
                i += 90
            elif i % 3 == 0:
                tx.send(values[i], timeout=30)
                i += 1
            else:
                tx.send(quote(i), timeout=30)
                i += 1
        assert peer.result() == [str(count), "0"]


def test_recv_into_batches_from_rust(name, rust):
    count = 200_000
    with shmchan.spsc.Receiver.create(name, capacity=8192, **Q) as rx:
        peer = rust("typed-send", "spsc", name, "--count", count, "--batch", 4096)
        buf = np.empty(4096, QUOTE)
        parts, n = [], 0
        while n < count:
            k = rx.recv_into(buf, timeout=30)
            parts.append(buf[:k].copy())
            n += k
        assert n == count
        assert (np.concatenate(parts) == quotes(0, count)).all()
        assert peer.result() == ["sent", str(count)]


@pytest.mark.parametrize("kind", KINDS)
def test_killed_sender_then_restarted(kind, name, backend, rust):
    opts, flags = backend
    extra = ["--block", "--capacity", 256] if kind == "bcast" else []
    start = lambda count: rust("typed-send", kind, name, "--count", count, *extra, *flags)
    if kind == "bcast":
        peer = start(10**12)
        rx = open_receiver(kind, name, opts, False)
    else:
        rx = open_receiver(kind, name, opts, True)
        peer = start(10**12)
    with rx:
        for i in range(50):
            assert rx.recv(timeout=30).item() == quote(i)
        peer.kill9()
        # What the killed sender sent is delivered (in order), then Disconnected.
        i = 50
        with pytest.raises(shmchan.Disconnected):
            while True:
                assert rx.recv(timeout=30).item() == quote(i)
                i += 1
        assert not rx.is_connected()
        # A new sender (a publisher taking the topic over) and the same receiver go on.
        peer = start(20)
        for i in range(20):
            assert rx.recv(timeout=30).item() == quote(i)
        assert peer.result() == ["sent", "20"]
        with pytest.raises(shmchan.Disconnected):
            rx.recv(timeout=30)


@pytest.mark.parametrize("kind", ["spsc", "mpmc"])
def test_killed_receiver_then_restarted(kind, name, backend, rust):
    opts, flags = backend
    tx_cls, _ = KINDS[kind]
    with tx_cls.create(name, capacity=64, **Q, **opts) as tx:
        peer = rust("typed-recv", kind, name, "--count", 10**12, *flags)
        tx.wait_for_peer(timeout=30)
        tx.send_many(quotes(0, 100), timeout=30)
        peer.kill9()
        with pytest.raises(shmchan.Disconnected):
            for i in range(10**6):
                tx.send(quote(i), timeout=30)
        assert not tx.is_connected()
        # A restarted receiver gets what was left in the ring (from where the dead one
        # stopped), then what we send now.
        left = len(tx)
        peer = rust("typed-recv", kind, name, "--count", left + 200, *flags)
        tx.wait_for_peer(timeout=30)
        tx.send_many(quotes(0, 200), timeout=30)
        n, _bad = peer.result()
        assert int(n) == left + 200


def test_broadcast_lagged_and_evicted(name):
    with broadcast.Publisher.create(name, capacity=8, **Q) as pub:
        with broadcast.Subscriber.open(name, **Q) as sub:
            pub.send_many(quotes(0, 20))
            with pytest.raises(shmchan.Lagged) as e:
                sub.recv(timeout=5)
            assert e.value.missed == 13  # the ring keeps capacity - 1
            assert sub.lag() == 7
            buf = np.empty(16, QUOTE)
            assert sub.recv_into(buf) == 7 and (buf[:7] == quotes(13, 7)).all()
    b = new_name()
    with broadcast.Publisher.create(b, capacity=4, overflow="block", evict_after=0.1,
                                    **Q) as pub:
        assert pub.overflow == "block"
        with broadcast.Subscriber.open(b, **Q) as sub:
            pub.send_many(quotes(0, 4))
            with pytest.raises(shmchan.Full):
                pub.try_send(quote(4))
            pub.send(quote(4), timeout=10)  # waits, then evicts the subscriber
            with pytest.raises(shmchan.Evicted):
                for _ in range(10):
                    sub.recv(timeout=5)


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.mark.parametrize("kind", KINDS)
def test_asyncio_receive_and_cancellation(kind, name):
    tx, rx = pair(kind, name, {}, capacity=256)
    with tx, rx:
        before = threading.active_count()

        async def main():
            # A receive that waits, then is cancelled: it takes nothing.
            task = asyncio.ensure_future(rx.recv_async())
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(rx.recv_async(), 0.05)
            tx.send(quote(1))
            first = await rx.recv_async()
            # Two receives waiting at once on one handle each get one element.
            a = asyncio.ensure_future(rx.recv_async())
            b = asyncio.ensure_future(rx.recv_async())
            await asyncio.sleep(0.02)
            threading.Timer(0.02, tx.send_many, (quotes(2, 2),)).start()
            pair_ = sorted(r.item() for r in await asyncio.gather(a, b))
            assert threading.active_count() <= before + 1  # the Timer at most
            # The stream, until the sender is gone.
            def rest():
                tx.send_many(quotes(4, 100))
                tx.close()

            threading.Timer(0.02, rest).start()
            streamed = [r.item() async for r in rx.stream()]
            return first.item(), pair_, streamed

        first, pair_, streamed = run(main())
        assert first == quote(1)
        assert pair_ == sorted([quote(2), quote(3)])
        assert streamed == [quote(i) for i in range(4, 104)]


def test_asyncio_format_receiver_from_rust(name, rust):
    with shmchan.spsc.Receiver.create(name, format=FMT, type_name="Quote", capacity=64) as rx:
        async def main():
            peer = rust("typed-send", "spsc", name, "--count", 500)
            got = [r async for r in rx.stream()]
            return peer, got

        peer, got = run(main())
        assert got == [quote(i) for i in range(500)]
        assert peer.result() == ["sent", "500"]


def test_fork_inherited_handles_refuse(name):
    tx, rx = pair("spsc", name, {})
    with tx, rx:
        tx.send(quote(0))
        pid = os.fork()
        if pid == 0:
            code = 0
            for op in (lambda: rx.recv(timeout=0), lambda: tx.send(quote(1)), rx.is_connected,
                       lambda: tx.send_many(quotes(0, 2)), lambda: len(tx)):
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
        assert rx.recv(timeout=5).item() == quote(0)
        assert tx.is_connected()


def test_blocked_receive_releases_the_gil_and_ctrl_c_interrupts_it(name, ctrl_c):
    tx, rx = pair("spsc", name, {})
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
                rx.recv(timeout=0.5)
        finally:
            stop = True
            t.join()
        assert count > 50_000
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                rx.recv_into(np.empty(16, QUOTE), timeout=30)
        finally:
            timer.cancel()
        tx.send(quote(5))
        assert rx.recv(timeout=5).item() == quote(5)
