"""Pipes as binary file objects, Rust <-> Python, on every backend; end of file when the
writer goes (closed or killed), BrokenPipeError when the reader does."""

from __future__ import annotations

import io
import shutil
import threading

import pytest

import shmchan
from conftest import fnv, pipe_data


def test_file_object_in_one_process(name, backend):
    opts, _ = backend
    w = shmchan.PipeWriter.create(name, capacity=1 << 12, **opts)
    r = shmchan.PipeReader.open(name, **opts)
    with w, r:
        assert isinstance(w, io.RawIOBase) and isinstance(r, io.RawIOBase)
        assert w.writable() and r.readable() and not r.writable()
        data = b"first line\nsecond line\n" + bytes(range(256)) * 100
        t = threading.Thread(target=lambda: (w.write(data), w.close()))
        t.start()
        assert r.readline() == b"first line\n"
        assert next(iter(r)) == b"second line\n"
        assert r.read() == bytes(range(256)) * 100  # to end of file
        t.join()
        assert r.read() == b""
        assert w.closed
    with pytest.raises(ValueError):
        w.write(b"closed")


def test_buffered_wrappers(name):
    w = shmchan.PipeWriter.create(name, capacity=1 << 16)
    r = shmchan.PipeReader.open(name)
    with io.BufferedWriter(w) as bw, io.BufferedReader(r) as br:
        t = threading.Thread(target=lambda: (bw.write(b"x" * 100_000), bw.close()))
        t.start()
        out = io.BytesIO()
        shutil.copyfileobj(br, out)
        t.join()
        assert out.getvalue() == b"x" * 100_000


def test_rust_writer_python_reader(name, backend, rust):
    opts, flags = backend
    n = 3_000_000
    with shmchan.PipeReader.create(name, capacity=1 << 16, **opts) as r:
        peer = rust("pipe-write", name, "--bytes", n, *flags)
        data = r.read()
        assert len(data) == n and data == pipe_data(n)
        size, h = peer.result()
        assert int(size) == n and int(h) == fnv(data)


def test_python_writer_rust_reader(name, backend, rust):
    opts, flags = backend
    n = 1_000_000
    data = pipe_data(n)
    peer = rust("pipe-read", name, "--create", "--capacity", 1 << 14, *flags)
    with shmchan.PipeWriter.open(name, **opts) as w:
        for i in range(0, n, 9973):
            assert w.write(memoryview(data)[i : i + 9973]) == len(data[i : i + 9973])
    size, h = peer.result()
    assert int(size) == n and int(h) == fnv(data)


def test_killed_writer_is_end_of_file(name, rust):
    with shmchan.PipeReader.create(name, capacity=1 << 12) as r:
        peer = rust("pipe-write", name, "--bytes", 10**12)
        first = r.read(1000)
        assert first and pipe_data(len(first)) == first
        peer.kill9()
        while r.read(1 << 16):  # what it wrote, then end of file
            pass
        assert r.read(10) == b""
        assert not r.is_connected()


def test_killed_reader_is_broken_pipe(name, rust):
    peer = rust("pipe-read", name, "--create", "--capacity", 1 << 12)
    with shmchan.PipeWriter.open(name) as w:
        w.write(b"x" * 10_000)
        peer.kill9()
        with pytest.raises(BrokenPipeError):
            for _ in range(10**6):
                w.write(b"y" * 1000)


def test_waits_release_the_gil_and_ctrl_c_interrupts_them(name, ctrl_c):
    """A read waiting for data and a write waiting for room wait in slices with the GIL
    released: other threads run, and Ctrl-C interrupts them; the pipe still works after."""
    import os
    import signal
    import threading

    w = shmchan.PipeWriter.create(name, capacity=4096)
    r = shmchan.PipeReader.open(name)
    with w, r:
        count = 0
        stop = False

        def spin():
            nonlocal count
            while not stop:
                count += 1

        t = threading.Thread(target=spin)
        t.start()
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                r.read(10)  # nothing written: waits
        finally:
            stop = True
            t.join()
            timer.cancel()
        assert count > 50_000
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                w.write(b"x" * 100_000)  # more than the ring holds: waits for room
        finally:
            timer.cancel()
        got = r.read(4096)
        assert got and set(got) == {ord("x")}
        w.write(b"after")
        while not got.endswith(b"after"):
            got += r.read(100_000)
