"""asyncio support: one eventfd per event loop, no thread per waiter.

A pending ``recv_async`` keeps its Rust future inside the handle; the future's waker (run by the
library's reactor thread, without the GIL) records a token and writes the loop's eventfd. The
loop's reader callback wakes the asyncio future of each token, whose task then polls its Rust
future again. Cancelling the task drops the Rust future, which undoes its registration; nothing
is taken from the ring by a receive that did not complete.
"""

from __future__ import annotations

import asyncio
import itertools
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ._shmchan import Disconnected, LoopWaker

_tokens = itertools.count(1)
_states: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState]" = (
    weakref.WeakKeyDictionary()
)


class _LoopState:
    """The eventfd of one event loop, and the asyncio futures waiting on it by token."""

    __slots__ = ("waker", "waiters", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.waker = LoopWaker()
        self.waiters: dict[int, asyncio.Future[None]] = {}
        loop.add_reader(self.waker.fileno(), self._on_ready)

    def _on_ready(self) -> None:
        for token in self.waker.drain():
            fut = self.waiters.pop(token, None)
            if fut is not None and not fut.done():
                fut.set_result(None)


def _state(loop: asyncio.AbstractEventLoop) -> _LoopState:
    st = _states.get(loop)
    if st is None:
        st = _states[loop] = _LoopState(loop)
    return st


def waiting_tokens() -> int:
    """How many receives wait on the running loop (for tests)."""
    return len(_state(asyncio.get_running_loop()).waiters)


class AsyncRecv:
    """``recv_async`` and ``stream`` for a native class with ``_poll_recv``/``_cancel_recv``."""

    __slots__ = ()

    if TYPE_CHECKING:

        def _poll_recv(self, waker: LoopWaker, token: int) -> Any: ...
        def _cancel_recv(self, token: int | None = None) -> None: ...

    async def recv_async(self) -> Any:
        """The next message (``bytes`` of a frame channel, an element of a typed one), without
        blocking the event loop (and without a thread). Raises ``Disconnected`` once the peer
        is gone and everything is read. Cancellation-safe: a cancelled receive takes nothing
        from the ring."""
        loop = asyncio.get_running_loop()
        st = _state(loop)
        token = next(_tokens)
        try:
            while True:
                data = self._poll_recv(st.waker, token)
                if data is not None:
                    return data
                fut = loop.create_future()
                st.waiters[token] = fut
                try:
                    await fut
                finally:
                    st.waiters.pop(token, None)
        except BaseException:
            self._cancel_recv(token)
            raise

    async def stream(self) -> AsyncIterator[Any]:
        """``async for data in rx.stream()``: the messages until the peer is gone."""
        while True:
            try:
                data = await self.recv_async()
            except Disconnected:
                return
            yield data
