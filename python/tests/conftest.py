"""Shared fixtures: unique channel names, the three backends, peer processes (the Rust peer
`shmchan-pypeer` from python/peer, and a Python peer `pypeer.py`), and checks that nothing is
left behind (no /dev/shm entry, no System V segment, no process)."""

from __future__ import annotations

import gc
import itertools
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

import shmchan

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
PYPEER = HERE / "pypeer.py"

# The test pattern, computed the same way by python/peer/src/main.rs.
FNV0 = 0xCBF29CE484222325


def pattern(i: int, max_len: int = 300) -> bytes:
    n = (i * 37) % (max_len + 1)
    return bytes((i + 7 * j) & 0xFF for j in range(n))


def pipe_data(n: int) -> bytes:
    return bytes((31 * k + 7) % 251 for k in range(n))


def fnv(data: bytes, h: int = FNV0) -> int:
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def quote(i: int) -> tuple[int, int, int, int]:
    """Element i of the typed roles (`quote` in python/peer/src/main.rs): a Quote's fields."""
    return ((i * 7 + 1) & 0xFFFFFFFF, i % 2, i * 1_000_003 - 500_000_000, 11 - 3 * i)


_counter = itertools.count()
_names: list[str] = []


def new_name() -> str:
    """A channel name no other test (or run) uses; checked for leftovers after the test."""
    n = f"pyt-{os.getpid()}-{next(_counter)}"
    _names.append(n)
    return n


@pytest.fixture
def name() -> str:
    return new_name()


@pytest.fixture(params=["posix", "sysv", "file"])
def backend(request, tmp_path_factory):
    """Options selecting each backend in turn (the file backend in a temporary directory),
    plus the same as command-line flags for the Rust peer."""
    if request.param == "file":
        d = tempfile.mkdtemp(prefix="shmchan-pyt-")
        yield {"backend": "file", "dir": d}, ["--backend", f"file:{d}"]
        gc.collect()
        left = os.listdir(d)
        shutil.rmtree(d, ignore_errors=True)
        assert not left, f"left in {d}: {left}"
    else:
        yield {"backend": request.param}, ["--backend", request.param]


def _sysv_keys() -> set[int]:
    try:
        out = subprocess.run(["ipcs", "-m"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return set()
    return {int(line.split()[0], 16) for line in out.splitlines() if line.startswith("0x")}


@pytest.fixture
def ctrl_c():
    """Python's own SIGINT handler (KeyboardInterrupt) for the test, whatever the runner
    inherited: a shell that starts pytest in the background (`cmd &` without job control)
    leaves SIGINT ignored, Python then installs no handler, and a test that interrupts a
    blocked wait with SIGINT would wait forever instead of testing anything."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(autouse=True)
def nothing_left_behind(request):
    """Fail a test that leaves a /dev/shm entry or a System V segment of one of its channels,
    after removing it (so that one failure does not spill into the next test)."""
    del _names[:]
    yield
    gc.collect()
    names = list(_names)
    left = [n for n in names if os.path.exists(f"/dev/shm/{n}")]
    for n in left:
        try:
            shmchan.remove(n)
        except shmchan.Error:
            try:
                os.unlink(f"/dev/shm/{n}")
            except OSError:
                pass
    keys = _sysv_keys()
    sysv_left = [n for n in names if shmchan.sysv_key(n) & 0xFFFFFFFF in keys]
    for n in sysv_left:
        try:
            shmchan.remove(n, backend="sysv")
        except shmchan.Error:
            subprocess.run(["ipcrm", "-M", hex(shmchan.sysv_key(n) & 0xFFFFFFFF)], capture_output=True)
    assert not left, f"left in /dev/shm: {left}"
    assert not sysv_left, f"left System V segments: {sysv_left}"


@pytest.fixture(scope="session")
def peer_bin() -> str:
    """The Rust peer, built once per session (cargo, release profile)."""
    exe = os.environ.get("SHMCHAN_PEER")
    if exe:
        return exe
    subprocess.run(
        ["cargo", "build", "-q", "--release", "-p", "shmchan-pypeer"],
        cwd=REPO,
        check=True,
    )
    target = os.environ.get("CARGO_TARGET_DIR", str(REPO / "target"))
    return str(pathlib.Path(target) / "release" / "shmchan-pypeer")


class Peer:
    """A peer process: waits for its READY line, and is killed at the end of the test."""

    def __init__(self, argv: list[str]):
        # Unbuffered: `communicate` reads the pipes' descriptors, and would miss what a
        # buffered reader had taken past the READY line.
        self.p = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
        )
        line = b""
        while not line.endswith(b"\n"):
            c = self.p.stdout.read(1)
            if not c:
                break
            line += c
        line = line.decode().strip()
        if line != "READY":
            self.p.kill()
            _, err = self.p.communicate(timeout=30)
            raise RuntimeError(f"peer {argv} did not start: {line!r} {err}")

    def result(self, timeout: float = 60) -> list[str]:
        """The words of the RESULT line (the peer must exit within `timeout` seconds)."""
        out, err = self.p.communicate(timeout=timeout)
        out, err = out.decode(), err.decode()
        assert self.p.returncode == 0, f"peer failed ({self.p.returncode}): {err}"
        lines = [l for l in out.splitlines() if l.startswith("RESULT")]
        assert lines, f"no RESULT line: {out!r} {err!r}"
        return lines[-1].split()[1:]

    def kill9(self) -> None:
        self.p.send_signal(signal.SIGKILL)
        self.p.wait(timeout=30)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        try:
            self.p.communicate(timeout=30)
        except Exception:
            pass


@pytest.fixture
def spawn():
    """Start peer processes; every one is gone when the test ends, pass or fail."""
    peers: list[Peer] = []

    def start(argv: list[str]) -> Peer:
        p = Peer([str(a) for a in argv])
        peers.append(p)
        return p

    yield start
    for p in peers:
        p.stop()


@pytest.fixture
def rust(peer_bin, spawn):
    """Start the Rust peer: rust("frame-send", name, "--count", 10, ...)."""
    return lambda *args: spawn([peer_bin, *args])


@pytest.fixture
def python_peer(spawn):
    """Start the Python peer (tests/pypeer.py) in a fresh interpreter."""
    return lambda *args: spawn([sys.executable, str(PYPEER), *args])
