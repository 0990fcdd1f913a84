"""Benchmarks of the Python bindings, each beside its reference in the same run.

    python python/bench/bench.py            # full
    python python/bench/bench.py --short    # the CI's quick run

1. 8-byte frames between two Python processes: a `send` loop in one, a `recv` loop in the
   other (msg/s at the receiver), and `multiprocessing.Queue` the same way.
2. A frame read into numpy in place with `recv_frame` (1 MiB and 16 MiB): time from the call to
   an ndarray over the ring, then back; the array checked to lie in the channel's mapping.
   `recv` (a copy) of the same frames beside it.
3. A thread blocked in `recv` on an empty channel: another Python thread's speed beside its
   speed alone.
4. Typed channels (`shmchan.spsc`, a `<u8` dtype named `u64`): a `send` loop of Python ints in
   one Python process and a `recv` loop in another (msg/s at the receiver, beside the
   `multiprocessing.Queue` rate of part 1); and `recv_into` batches of 4096 from a Rust sender
   (`shmchan-pypeer bench-send`, `send_slice` of 4096) beside the Rust receiver's
   `spsc::Receiver::<u64>::recv_slice` of 4096 fed by the same sender (`bench-recv`).

Load averages (`os.getloadavg()`) are printed before and after: on a busy machine the figures
mean less.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pathlib
import statistics
import subprocess
import sys
import threading
import time

import shmchan

try:
    import numpy as np
except ImportError:  # the frame-into-numpy part needs numpy
    np = None

MSG = b"12345678"


def _name(tag: str) -> str:
    return f"bench-{os.getpid()}-{tag}"


# --- 1. 8-byte messages between two processes -----------------------------------------------


def _sender(name: str, n: int) -> None:
    tx = shmchan.FrameSender.open(name, open_timeout=30)
    tx.wait_for_peer(30)
    send = tx.send
    msg = MSG
    for _ in range(n):
        send(msg)
    tx.close()


def frames_between_processes(n: int) -> float:
    name = _name("frames")
    ctx = mp.get_context("spawn")
    with shmchan.FrameReceiver.create(name, capacity=1 << 20) as rx:
        p = ctx.Process(target=_sender, args=(name, n))
        p.start()
        recv = rx.recv
        assert recv(timeout=60) == MSG  # the first one starts the clock
        t0 = time.perf_counter()
        for _ in range(n - 1):
            recv()
        dt = time.perf_counter() - t0
        p.join(60)
    return (n - 1) / dt


def _queue_sender(q, n: int) -> None:
    put = q.put
    for _ in range(n):
        put(MSG)


def queue_between_processes(n: int) -> float:
    ctx = mp.get_context("spawn")
    q = ctx.Queue(maxsize=1 << 16)
    p = ctx.Process(target=_queue_sender, args=(q, n))
    p.start()
    get = q.get
    assert get(timeout=60) == MSG
    t0 = time.perf_counter()
    for _ in range(n - 1):
        get()
    dt = time.perf_counter() - t0
    p.join(60)
    return (n - 1) / dt


# --- 2. a large frame into numpy, in place --------------------------------------------------


def _mapping(name: str) -> tuple[int, int]:
    with open("/proc/self/maps") as f:
        for line in f:
            if line.rstrip().endswith(f"/dev/shm/{name}"):
                lo, hi = line.split()[0].split("-")
                return int(lo, 16), int(hi, 16)
    raise RuntimeError("channel not mapped")


def frame_into_numpy(size: int, reps: int) -> dict:
    name = _name(f"big{size}")
    payload = np.random.default_rng(1).integers(0, 256, size, dtype=np.uint8)
    tx = shmchan.FrameSender.create(name, capacity=4 * size)
    rx = shmchan.FrameReceiver.open(name)
    with tx, rx:
        lo, hi = _mapping(name)
        in_place, copies, shares, inside = [], [], True, True
        # Sending 16 MiB evicts the caches, which would make the next steps slower for the
        # large frame than for the small one for reasons unrelated to its size: both sizes are
        # measured after the same sweep of a 64 MiB buffer.
        sweep = np.ones(64 << 20, np.uint8)
        for _ in range(reps):
            tx.send(payload)
            int(sweep.sum())
            t0 = time.perf_counter()
            with rx.recv_frame() as f:
                a = np.frombuffer(f, np.uint8)
                t1 = time.perf_counter()
                shares &= np.shares_memory(a, np.frombuffer(f, np.uint8))
                inside &= lo <= a.ctypes.data < hi
                ok = a[-1] == payload[-1]
                del a
            in_place.append(t1 - t0)
            assert ok
            tx.send(payload)
            t0 = time.perf_counter()
            b = rx.recv()
            copies.append(time.perf_counter() - t0)
            assert len(b) == size
    return {
        "in_place_us": statistics.median(in_place) * 1e6,
        "copy_us": statistics.median(copies) * 1e6,
        "shares_memory": bool(shares),
        "in_mapping": inside,
    }


# --- 3. a blocked recv and another thread -----------------------------------------------------


def _count_for(seconds: float) -> float:
    n = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(1000):
            n += 1
    return n / seconds


def blocked_recv_lets_threads_run(seconds: float) -> tuple[float, float]:
    solo = _count_for(seconds)
    name = _name("gil")
    tx = shmchan.FrameSender.create(name)
    rx = shmchan.FrameReceiver.open(name)
    with tx, rx:
        def wait():
            try:
                rx.recv(timeout=seconds + 1.0)
            except shmchan.Timeout:
                pass

        t = threading.Thread(target=wait)
        t.start()
        time.sleep(0.05)
        beside = _count_for(seconds)
        t.join()
    return solo, beside


# --- 4. typed channels -----------------------------------------------------------------------


def _typed_sender(name: str, n: int) -> None:
    tx = shmchan.spsc.Sender.open(name, dtype="<u8", type_name="u64", open_timeout=30)
    tx.wait_for_peer(30)
    send = tx.send
    for i in range(n):
        send(i)
    tx.close()


def typed_between_processes(n: int) -> float:
    """8-byte elements, `send(i)` in one Python process and `recv()` in another."""
    name = _name("typed")
    ctx = mp.get_context("spawn")
    with shmchan.spsc.Receiver.create(
        name, dtype="<u8", type_name="u64", capacity=1 << 16
    ) as rx:
        p = ctx.Process(target=_typed_sender, args=(name, n))
        p.start()
        recv = rx.recv
        assert recv(timeout=60) == 0  # the first one starts the clock
        t0 = time.perf_counter()
        for _ in range(n - 2):
            recv()
        last = recv()
        dt = time.perf_counter() - t0
        p.join(60)
    assert last == n - 1
    return (n - 1) / dt


def _peer_bin() -> str | None:
    """The Rust peer (python/peer): $SHMCHAN_PEER, or built with cargo in the repository."""
    exe = os.environ.get("SHMCHAN_PEER")
    if exe:
        return exe
    repo = pathlib.Path(__file__).resolve().parent.parent.parent
    try:
        subprocess.run(
            ["cargo", "build", "-q", "--release", "-p", "shmchan-pypeer"], cwd=repo, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    target = os.environ.get("CARGO_TARGET_DIR", str(repo / "target"))
    return str(pathlib.Path(target) / "release" / "shmchan-pypeer")


def _start(argv: list[str]) -> subprocess.Popen:
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    if line != "READY":
        p.kill()
        raise RuntimeError(f"{argv} did not start: {line!r} {p.communicate()[1]}")
    return p


def _result(p: subprocess.Popen) -> list[str]:
    out, err = p.communicate(timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"peer failed: {err}")
    return [l for l in out.splitlines() if l.startswith("RESULT")][-1].split()[1:]


def recv_into_batches(peer: str, n: int) -> tuple[float, float]:
    """`recv_into` of 4096 `<u8` elements from the Rust sender, and the Rust receiver's
    `recv_slice` of 4096 from the same sender: (Python rate, Rust rate), elements/s."""
    name = _name("batch")
    with shmchan.spsc.Receiver.create(
        name, dtype="<u8", type_name="u64", capacity=1 << 16
    ) as rx:
        tx = _start([peer, "bench-send", name, "--count", str(n)])
        try:
            buf = np.empty(4096, np.uint64)
            recv_into = rx.recv_into
            got = recv_into(buf, timeout=60)  # the first batch starts the clock
            first = got
            t0 = time.perf_counter()
            while got < n:
                got += recv_into(buf)
            dt = time.perf_counter() - t0
            last = int(buf[(n - 1) % 4096]) if n % 4096 == 0 else None
        finally:
            _result(tx)
    assert got == n and (last is None or last == n - 1)
    py_rate = (n - first) / dt
    name = _name("batch-rust")
    rx = _start([peer, "bench-recv", name, "--create", "--count", str(n)])
    tx = _start([peer, "bench-send", name, "--count", str(n)])
    _result(tx)
    count, total, rate = _result(rx)
    assert int(count) == n and int(total) == n * (n - 1) // 2 % (1 << 64)
    return py_rate, float(rate)


def main() -> None:
    short = "--short" in sys.argv
    n = 500_000 if short else 2_000_000
    nq = 100_000 if short else 300_000
    reps = 5 if short else 20
    secs = 0.5 if short else 1.0
    print(f"shmchan Python bench ({'short' if short else 'full'}), CPU count {os.cpu_count()}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    rate = frames_between_processes(n)
    qrate = queue_between_processes(nq)
    print(f"8 B frames, Python -> Python processes: {rate / 1e6:6.2f} M msg/s ({n} messages)")
    print(f"multiprocessing.Queue, same:            {qrate / 1e6:6.3f} M msg/s ({nq} messages)")
    print(f"  ratio: {rate / qrate:.1f}x   (targets: >= 2 M msg/s, >= 30x)")

    if np is not None:
        for size in (1 << 20, 16 << 20):
            r = frame_into_numpy(size, reps)
            print(
                f"{size >> 20:2d} MiB frame -> numpy via recv_frame: {r['in_place_us']:8.1f} us "
                f"(in the mapping: {r['in_mapping']}, np.shares_memory: {r['shares_memory']}); "
                f"recv (copy): {r['copy_us']:8.1f} us"
            )
    else:
        print("numpy missing: frame-into-numpy part skipped")

    solo, beside = blocked_recv_lets_threads_run(secs)
    print(
        f"thread beside a blocked recv: {beside / solo:.2f}x its solo speed "
        f"({beside / 1e6:.1f} M vs {solo / 1e6:.1f} M increments/s; target >= 0.9x)"
    )
    trate = typed_between_processes(n)
    print(
        f"typed 8 B (<u8) send/recv, Python -> Python: {trate / 1e6:6.2f} M msg/s ({n} messages); "
        f"{trate / qrate:.1f}x multiprocessing.Queue   (targets: >= 2 M msg/s, >= 30x)"
    )
    peer = _peer_bin() if np is not None else None
    if peer:
        nb = 20_000_000 if short else 100_000_000
        py_rate, rust_rate = recv_into_batches(peer, nb)
        print(
            f"recv_into batches of 4096 (<u8) from a Rust sender: {py_rate / 1e6:7.1f} M elem/s; "
            f"Rust recv_slice, same sender: {rust_rate / 1e6:7.1f} M elem/s; "
            f"ratio {py_rate / rust_rate:.2f}x   (target >= 0.3x)"
        )
    else:
        print("the Rust peer (or numpy) is missing: recv_into batches part skipped")
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
