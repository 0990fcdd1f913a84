"""MPMC channels of typed elements: any number of senders and receivers, each element taken by
one receiver; an element is a numpy dtype's item (or a ``struct`` format's tuple). The peers of a Rust ``mpmc::Sender<Quote>`` /
``mpmc::Receiver<Quote>`` created with ``Options::type_name("Quote")``.

>>> import numpy as np, shmchan
>>> Quote = np.dtype([("instrument", "<u4"), ("side", "<u4"),
...                   ("price", "<i8"), ("qty", "<i8")], align=True)
>>> tx = shmchan.mpmc.Sender.create("quotes", dtype=Quote, type_name="Quote", capacity=4096)
>>> rx = shmchan.mpmc.Receiver.open("quotes", dtype=Quote, type_name="Quote")  # usually elsewhere
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
from ._shmchan import MpmcReceiver as _MpmcReceiver
from ._shmchan import MpmcSender as _MpmcSender


class Sender(_MpmcSender):
    """A sending end of an MPMC channel of typed elements.

    ``Sender.create(name, dtype=..., type_name=..., capacity=...)`` or ``Sender.open(...)``:
    ``dtype`` is a numpy dtype (prefer ``align=True`` for structs: it is the layout of a Rust
    ``#[repr(C)]`` struct), or ``format=`` a ``struct`` format; ``type_name`` is required (the
    name the Rust side gives with ``Options::type_name``). ``capacity`` counts elements;
    ``max_senders`` and ``max_receivers`` bound the endpoints attached at once.

    >>> tx.send((7, 0, 10_000, 5), timeout=1.0)   # shmchan.Timeout / shmchan.Disconnected
    >>> tx.try_send(rec)                          # shmchan.Full if there is no room now
    >>> tx.send_many(arr)                         # an ndarray of the dtype, in batches
    """

    __slots__ = ()


class Receiver(_MpmcReceiver, _AsyncRecv):
    """A receiving end of an MPMC channel of typed elements.

    >>> rec = rx.recv(timeout=1.0)          # np.void (a copy) / numpy scalar / tuple (format=)
    >>> n = rx.recv_into(buf)               # ndarray of the dtype: up to len(buf) at once
    >>> rec = await rx.recv_async()         # asyncio; cancellation takes nothing
    >>> async for rec in rx.stream(): ...   # until every sender is gone
    """

    __slots__ = ()


__all__ = ["Receiver", "Sender"]
