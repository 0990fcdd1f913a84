"""SPSC channels of typed elements: one sender, one receiver, each element a numpy dtype's
item (or a ``struct`` format's tuple), the peers of a Rust ``spsc::Sender<Quote>`` /
``spsc::Receiver<Quote>`` created with ``Options::type_name("Quote")``.

>>> import numpy as np, shmchan
>>> Quote = np.dtype([("instrument", "<u4"), ("side", "<u4"),
...                   ("price", "<i8"), ("qty", "<i8")], align=True)
>>> tx = shmchan.spsc.Sender.create("quotes", dtype=Quote, type_name="Quote", capacity=4096)
>>> rx = shmchan.spsc.Receiver.open("quotes", dtype=Quote, type_name="Quote")  # usually elsewhere
>>> tx.send((7, 0, 10_000, 5))              # a tuple, an np.void of Quote, or 24 bytes
>>> tx.send_many(np.zeros(100, Quote))      # batches: one call
>>> rx.recv()                               # an np.void (a copy)
np.void((7, 0, 10000, 5), dtype=...)
>>> buf = np.empty(4096, Quote)
>>> n = rx.recv_into(buf)                   # the fast path: up to 4096 in one call
>>> n
100

``format="<IIqq"`` instead of ``dtype=`` needs no numpy: values are tuples (``struct``).
"""

from __future__ import annotations

from ._aio import AsyncRecv as _AsyncRecv
from ._shmchan import SpscReceiver as _SpscReceiver
from ._shmchan import SpscSender as _SpscSender


class Sender(_SpscSender):
    """The sending end of an SPSC channel of typed elements.

    ``Sender.create(name, dtype=..., type_name=..., capacity=...)`` or ``Sender.open(...)``:
    ``dtype`` is a numpy dtype (prefer ``align=True`` for structs: it is the layout of a Rust
    ``#[repr(C)]`` struct), or ``format=`` a ``struct`` format; ``type_name`` is required (the
    name the Rust side gives with ``Options::type_name``). ``capacity`` counts elements.

    >>> tx.send((7, 0, 10_000, 5), timeout=1.0)   # shmchan.Timeout / shmchan.Disconnected
    >>> tx.try_send(rec)                          # shmchan.Full if there is no room now
    >>> tx.send_many(arr)                         # an ndarray of the dtype, in batches
    """

    __slots__ = ()


class Receiver(_SpscReceiver, _AsyncRecv):
    """The receiving end of an SPSC channel of typed elements.

    >>> rec = rx.recv(timeout=1.0)          # np.void (a copy) / numpy scalar / tuple (format=)
    >>> n = rx.recv_into(buf)               # ndarray of the dtype: up to len(buf) at once
    >>> rec = await rx.recv_async()         # asyncio; cancellation takes nothing
    >>> async for rec in rx.stream(): ...   # until the sender is gone
    """

    __slots__ = ()


__all__ = ["Receiver", "Sender"]
