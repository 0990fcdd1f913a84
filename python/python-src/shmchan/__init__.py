"""shmchan: lock-free channels between processes over shared memory (Linux).

Python bindings of the Rust crate ``shmchan``: a Python process can be any peer of a channel
whose other side is Rust (or Python), with zero copies where the data is large.

Frames (byte strings of any length up to ``max_frame``)::

    import numpy as np, shmchan
    tx = shmchan.FrameSender.create("frames", capacity=1 << 24)   # options as keywords
    rx = shmchan.FrameReceiver.open("frames", open_timeout=5.0)   # usually another process
    tx.send(b"bytes or any contiguous buffer")
    with tx.loan(1 << 20) as loan:          # a writable buffer in the ring
        loan[:3] = b"abc"
        loan.commit(3)                      # publish the first 3 bytes
    data = rx.recv(timeout=1.0)             # bytes; shmchan.Timeout / shmchan.Disconnected
    with rx.recv_frame() as f:              # in place, zero copy
        a = np.frombuffer(f, np.uint8)
        ...
        del a                               # no view may outlive the frame (BufferError)

Typed channels (an element is a numpy dtype's item or a ``struct`` format's tuple, under a
``type_name`` the Rust side gives with ``Options::type_name``)::

    Quote = np.dtype([("instrument", "<u4"), ("side", "<u4"),
                      ("price", "<i8"), ("qty", "<i8")], align=True)
    tx = shmchan.spsc.Sender.create("quotes", dtype=Quote, type_name="Quote", capacity=4096)
    rx = shmchan.spsc.Receiver.open("quotes", dtype=Quote, type_name="Quote")
    tx.send((7, 0, 10_000, 5)); tx.send_many(np.zeros(100, Quote))
    rec = rx.recv()                         # np.void (a copy)
    n = rx.recv_into(np.empty(4096, Quote)) # batches: the fast path

``shmchan.spsc``, ``shmchan.mpmc`` (``Sender``, ``Receiver``), ``shmchan.broadcast``
(``Publisher``, ``Subscriber``).
Pipes (binary file objects): ``shmchan.PipeWriter``, ``shmchan.PipeReader``.
Broadcast frame topics: ``shmchan.broadcast.FramePublisher``, ``FrameSubscriber``.
asyncio: ``await rx.recv_async()``, ``async for data in rx.stream()``.

Options (keywords of every ``create``/``open``): ``capacity``, ``backend`` (``"posix"``,
``"sysv"``, ``"file"`` with ``dir=...``), ``dir``, ``mode``, ``open_timeout`` (seconds),
``wait`` (``"default"``, ``"spin"``, ``"park"``), and for broadcast topics ``max_frame``,
``max_subscribers``, ``overflow`` (``"overwrite"``, ``"block"``), ``evict_after`` (seconds).

Errors are subclasses of ``shmchan.Error``; the message is the Rust library's.
"""

from . import _shmchan
from ._shmchan import (
    AlreadyExists,
    Closed,
    Disconnected,
    Empty,
    EndpointTaken,
    Error,
    Evicted,
    ForkedHandle,
    Frame,
    FrameSender,
    Full,
    Incompatible,
    InUse,
    InvalidName,
    InvalidOptions,
    Io,
    Lagged,
    Loan,
    NotFound,
    NotReady,
    Timeout,
    TooLarge,
    remove,
    sysv_key,
)
from ._aio import AsyncRecv as _AsyncRecv
from ._pipe import PipeReader, PipeWriter


class FrameReceiver(_shmchan.FrameReceiver, _AsyncRecv):
    """The receiving end of a frame channel.

    >>> rx = shmchan.FrameReceiver.open("frames")
    >>> data = rx.recv(timeout=1.0)          # bytes (a copy)
    >>> n = rx.recv_into(buffer)             # into your bytearray / ndarray
    >>> with rx.recv_frame() as f:           # zero copy: np.frombuffer(f, np.uint8)
    ...     ...
    >>> data = await rx.recv_async()         # asyncio
    >>> async for data in rx.stream(): ...   # until the sender is gone
    """

    __slots__ = ()


from . import broadcast, mpmc, spsc  # noqa: E402  (after the classes they build on)

__all__ = [
    "AlreadyExists",
    "Closed",
    "Disconnected",
    "Empty",
    "EndpointTaken",
    "Error",
    "Evicted",
    "ForkedHandle",
    "Frame",
    "FrameReceiver",
    "FrameSender",
    "Full",
    "Incompatible",
    "InUse",
    "InvalidName",
    "InvalidOptions",
    "Io",
    "Lagged",
    "Loan",
    "NotFound",
    "NotReady",
    "PipeReader",
    "PipeWriter",
    "Timeout",
    "TooLarge",
    "broadcast",
    "mpmc",
    "remove",
    "spsc",
    "sysv_key",
]
