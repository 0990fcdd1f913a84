"""Broadcast topics: one publisher, any number of subscribers, each getting every message (or
told exactly how many it missed, ``shmchan.Lagged``).

This module holds the frame topics (byte strings); typed topics (numpy dtypes) will come
beside them.

>>> pub = shmchan.broadcast.FramePublisher.create("ticks", capacity=64, max_frame=4096)
>>> sub = shmchan.broadcast.FrameSubscriber.open("ticks", start="latest")   # another process
>>> pub.send(b"tick")
>>> sub.recv(timeout=1.0)
b'tick'
"""

from ._aio import AsyncRecv as _AsyncRecv
from ._shmchan import Evicted, Lagged
from ._shmchan import FramePublisher as _FramePublisher
from ._shmchan import FrameSubscriber as _FrameSubscriber


class FramePublisher(_FramePublisher):
    """The publisher of a broadcast frame topic (one per topic).

    ``overflow="overwrite"`` (default): ``send`` never waits, and a subscriber a ring behind is
    told how many frames it lost. ``overflow="block"``: the publisher waits for the slowest live
    subscriber (``evict_after=seconds`` drops one that is stuck).
    """

    __slots__ = ()


class FrameSubscriber(_FrameSubscriber, _AsyncRecv):
    """A subscriber of a broadcast frame topic: ``start="latest"`` (default), ``"oldest"`` or
    ``("history", n)``. ``recv`` raises ``shmchan.Lagged`` (``.missed``) when the publisher
    overwrote frames before they were read, then goes on with the oldest frame kept."""

    __slots__ = ()


__all__ = ["Evicted", "FramePublisher", "FrameSubscriber", "Lagged"]
