"""Holding a test peer's answers (a webhook receiver's responses, an SMTP server's
DATA replies), or an in-process export between its chunks, for as long as a test
says: a slow or stalled peer or reader, without sleeps."""

from __future__ import annotations

import asyncio
from typing import Any


class Holding:
    """Mixed into a peer whose handlers wait on `gate` while it is set and call
    `_arrived(gate)` on the test's loop. After `hold()` each waits, unanswered,
    until `release()` (those held then; the next are held again) or `open()` (all,
    and no more holding). `_new` wakes `wait_held`; `_set` sets an event on the
    loop its handlers wait on."""

    gate: asyncio.Event | None = None  # handlers wait on it
    held = 0  # handlers waiting now (on `gate`)
    _new: asyncio.Event

    def _set(self, gate: asyncio.Event) -> None:
        gate.set()

    def _arrived(self, gate: asyncio.Event) -> None:
        if gate is self.gate:
            self.held += 1
            self._new.set()

    def hold(self) -> None:
        self.gate = asyncio.Event()

    def release(self) -> None:
        """Answer what is held now; what comes next is held again."""
        assert self.gate is not None
        gate, self.gate, self.held = self.gate, asyncio.Event(), 0
        self._set(gate)

    def open(self) -> None:
        """Answer everything held, and hold no more."""
        if self.gate is not None:
            gate, self.gate, self.held = self.gate, None, 0
            self._set(gate)

    async def wait_held(self, n: int, timeout: float = 10.0) -> None:
        """Wait until `n` are held."""

        async def loop() -> None:
            while self.held < n:
                self._new.clear()
                await self._new.wait()

        await asyncio.wait_for(loop(), timeout)


def hold_export(store: Any, monkeypatch: Any) -> tuple[asyncio.Event, asyncio.Event]:
    """`store`'s export in chunks of 2, held after the first until `go on` is set:
    (paused, go on). A slow reader, made deterministic: the test changes the order,
    or the connection, while the export is between chunks."""
    real = store.export
    paused, go_on = asyncio.Event(), asyncio.Event()

    async def held(*args, **kw):
        async for chunk in real(*args, **{**kw, "chunk": 2}):
            yield chunk
            if not go_on.is_set():
                paused.set()
                await go_on.wait()

    monkeypatch.setattr(store, "export", held)
    return paused, go_on
