"""Pipes as binary file objects (``io.RawIOBase``): a byte stream, no message boundaries."""

from __future__ import annotations

import io

from ._shmchan import _PipeReader, _PipeWriter


class PipeWriter(io.RawIOBase):
    """The writing end of a pipe: a binary file object. Closing it (or the process dying) is
    end of file for the reader, once it has read everything.

    >>> w = shmchan.PipeWriter.create("bulk", capacity=1 << 22)
    >>> w.wait_for_peer(timeout=5.0)        # a pipe goes with its last end: wait for the reader
    >>> w.write(b"any bytes")               # writes everything; BrokenPipeError if the reader is gone
    >>> w.close()
    """

    def __init__(self, name: str, *, create: bool = False, **options) -> None:
        super().__init__()
        self._w = _PipeWriter(name, create=create, **options)

    @classmethod
    def create(cls, name: str, **options) -> "PipeWriter":
        """Create the pipe ``name`` (exclusively) and attach as its writer."""
        return cls(name, create=True, **options)

    @classmethod
    def open(cls, name: str, **options) -> "PipeWriter":
        """Open the existing pipe ``name`` and attach as its writer."""
        return cls(name, create=False, **options)

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        """Write all of ``b`` (any contiguous buffer), waiting for room; returns its length."""
        if self.closed:
            raise ValueError("write to a closed PipeWriter")
        return self._w.write(b)

    def close(self) -> None:
        w = getattr(self, "_w", None)
        if w is not None and not self.closed:
            w.close()
        super().close()

    @property
    def name(self) -> str:
        return self._w.name

    @property
    def capacity(self) -> int:
        return self._w.capacity

    def is_connected(self) -> bool:
        """Is the reader attached and alive now?"""
        return self._w.is_connected()

    def wait_for_peer(self, timeout: float | None = None) -> None:
        """Wait until a reader is attached, at most ``timeout`` seconds (``shmchan.Timeout``)."""
        self._w.wait_for_peer(timeout)


class PipeReader(io.RawIOBase):
    """The reading end of a pipe: a binary file object (``read``, ``readinto``, ``readline``,
    iteration by lines, ``shutil.copyfileobj``...). ``read`` returns ``b""`` only at end of file:
    the writer gone and everything read.

    >>> r = shmchan.PipeReader.open("bulk")
    >>> data = r.read()                     # to end of file
    """

    def __init__(self, name: str, *, create: bool = False, **options) -> None:
        super().__init__()
        self._r = _PipeReader(name, create=create, **options)

    @classmethod
    def create(cls, name: str, **options) -> "PipeReader":
        """Create the pipe ``name`` (exclusively) and attach as its reader."""
        return cls(name, create=True, **options)

    @classmethod
    def open(cls, name: str, **options) -> "PipeReader":
        """Open the existing pipe ``name`` and attach as its reader."""
        return cls(name, create=False, **options)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        """Read what is there into ``b`` (at least one byte, waiting for some); 0 at end of file."""
        if self.closed:
            raise ValueError("read from a closed PipeReader")
        return self._r.readinto(b)

    def close(self) -> None:
        r = getattr(self, "_r", None)
        if r is not None and not self.closed:
            r.close()
        super().close()

    @property
    def name(self) -> str:
        return self._r.name

    @property
    def capacity(self) -> int:
        return self._r.capacity

    def is_connected(self) -> bool:
        """Is the writer attached and alive now?"""
        return self._r.is_connected()

    def wait_for_peer(self, timeout: float | None = None) -> None:
        """Wait until a writer is attached, at most ``timeout`` seconds (``shmchan.Timeout``)."""
        self._r.wait_for_peer(timeout)
