"""Broadcast topics: one publisher, any number of subscribers, each getting every message (or
told exactly how many it missed, ``shmchan.Lagged``).

Frame topics (byte strings): ``FramePublisher``, ``FrameSubscriber``.

>>> pub = shmchan.broadcast.FramePublisher.create("ticks", capacity=64, max_frame=4096)
>>> sub = shmchan.broadcast.FrameSubscriber.open("ticks", start="latest")   # another process
>>> pub.send(b"tick")
>>> sub.recv(timeout=1.0)
b'tick'

Typed topics (a numpy dtype or a ``struct`` format, named with ``type_name``): ``Publisher``,
``Subscriber``, the peers of Rust's ``broadcast::Publisher<Tick>`` / ``Subscriber<Tick>``
created with ``Options::type_name("Tick")``.

>>> Tick = np.dtype([("seq", "<u8"), ("price", "<f8")], align=True)
>>> pub = shmchan.broadcast.Publisher.create("ticks", dtype=Tick, type_name="Tick", capacity=1024)
>>> sub = shmchan.broadcast.Subscriber.open("ticks", dtype=Tick, type_name="Tick", start="oldest")
>>> pub.send((1, 99.5))
>>> sub.recv(timeout=1.0)
np.void((1, 99.5), dtype=...)
"""

from ._aio import AsyncRecv as _AsyncRecv
from ._shmchan import Evicted, Lagged
from ._shmchan import FramePublisher as _FramePublisher
from ._shmchan import FrameSubscriber as _FrameSubscriber
from ._shmchan import Publisher as _Publisher
from ._shmchan import Subscriber as _Subscriber


class FramePublisher(_FramePublisher):
    """The publisher of a broadcast frame topic (one per topic).

    ``overflow="overwrite"`` (default): ``send`` never waits, and a subscriber a ring behind is
    told how many frames it lost. ``overflow="block"``: the publisher waits for the slowest live
    subscriber (``evict_after=seconds`` drops one that is stuck). ``loan(n)`` lends a
    writable buffer in the ring (``commit(k)`` publishes its first ``k`` bytes), as
    ``FrameSender.loan`` does.
    """

    __slots__ = ()


class FrameSubscriber(_FrameSubscriber, _AsyncRecv):
    """A subscriber of a broadcast frame topic: ``start="latest"`` (default), ``"oldest"`` or
    ``("history", n)``. ``recv`` raises ``shmchan.Lagged`` (``.missed``) when the publisher
    overwrote frames before they were read, then goes on with the oldest frame kept."""

    __slots__ = ()


class Publisher(_Publisher):
    """The publisher of a broadcast topic of typed elements (one per topic).

    ``Publisher.create(name, dtype=..., type_name=..., capacity=...)`` (or ``open``, to take
    over a topic whose publisher is gone); ``capacity`` counts elements. ``send(value)``,
    ``try_send``, ``send_many(array)`` as for ``shmchan.spsc.Sender``. ``overflow="overwrite"``
    (default): sends never wait and a subscriber a ring behind is told how many it lost;
    ``overflow="block"``: the publisher waits for the slowest live subscriber.
    """

    __slots__ = ()


class Subscriber(_Subscriber, _AsyncRecv):
    """A subscriber of a broadcast topic of typed elements.

    ``Subscriber.open(name, dtype=..., type_name=..., start="latest")`` (or ``"oldest"``,
    ``("history", n)``). ``recv``, ``try_recv``, ``recv_into(array)``, ``recv_async``,
    ``stream`` as for ``shmchan.spsc.Receiver``; ``recv`` raises ``shmchan.Lagged``
    (``.missed``) when elements were overwritten before they were read, then goes on with the
    oldest kept, and ``shmchan.Evicted`` in ``"block"`` mode.
    """

    __slots__ = ()


__all__ = ["Evicted", "FramePublisher", "FrameSubscriber", "Lagged", "Publisher", "Subscriber"]
