"""The relay between instances: a small contract, and the in-process default.

A broker delivers published events to the hub of every instance that has an
interest (a local member of the room, a local connection of the user). It
never knows the hub: it calls the `Handler` it was given.
"""

from __future__ import annotations

from typing import Protocol

from chatd.rooms.events import RoomEvent, UserEvent


class Handler(Protocol):
    def deliver_room(self, ev: RoomEvent) -> None: ...

    def deliver_user(self, ev: UserEvent) -> None: ...

    def resync(self, orders=None) -> None:
        """The relay (re)subscribed to these rooms (None: all): refill from the
        store what may have been missed."""


class Broker(Protocol):
    """Relay contract.

    `publish_*` never blocks and never raises: events of one publisher are
    delivered in publish order; delivery to other instances is best effort
    (the store is the truth, and gaps are refilled from it). `healthy` is
    False while the relay cannot deliver across instances.
    """

    healthy: bool

    def publish_room(self, ev: RoomEvent) -> None: ...

    def publish_user(self, ev: UserEvent) -> None: ...

    def presence(self, order: str, user: str, online: bool, data: bytes) -> None:
        """A user's first (last) connection on this instance joined (left) `order`.
        The room gets `data` (a `presence` frame) only if that made them online
        (offline) across all instances."""

    def online(self, order: str) -> frozenset[str]:
        """Users online in `order` on other instances, as far as known."""

    async def admit(self, user: str, limit: int, local: int) -> bool:
        """May `user`, with `local` connections here, open one more within `limit`
        across all instances? If so it is counted until `release`."""

    def release(self, user: str, local: int) -> None:
        """An admitted connection of `user` closed; `local` are left here."""

    async def load_room(self, order: str) -> None:
        """Wait until `online(order)` is known (a room just watched)."""

    def watch_room(self, order: str, on: bool) -> None: ...

    def watch_user(self, user: str, on: bool) -> None: ...

    async def start(self, handler: Handler) -> None: ...

    async def aclose(self) -> None: ...


class LocalBroker:
    """One process: publishing is delivering, synchronously and in order."""

    healthy = True

    def __init__(self) -> None:
        self._handler: Handler | None = None

    async def start(self, handler: Handler) -> None:
        self._handler = handler

    def publish_room(self, ev: RoomEvent) -> None:
        self._handler.deliver_room(ev)

    def publish_user(self, ev: UserEvent) -> None:
        self._handler.deliver_user(ev)

    def presence(self, order: str, user: str, online: bool, data: bytes) -> None:
        self._handler.deliver_room(RoomEvent(order, data))

    def online(self, order: str) -> frozenset[str]:
        return frozenset()  # the local hub knows everyone

    async def admit(self, user: str, limit: int, local: int) -> bool:
        return local < limit

    def release(self, user: str, local: int) -> None:
        pass

    async def load_room(self, order: str) -> None:
        return None  # nothing to wait for: join stays free of suspension points

    def watch_room(self, order: str, on: bool) -> None:
        pass

    def watch_user(self, user: str, on: bool) -> None:
        pass

    async def aclose(self) -> None:
        self._handler = None
