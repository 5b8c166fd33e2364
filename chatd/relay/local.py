"""The in-process relay: one instance, so publishing is delivering."""

from __future__ import annotations

from collections.abc import Sequence

from chatd.relay.base import Handler
from chatd.rooms.events import RoomEvent, StaffEvent, UserEvent


class LocalRelay:
    """One process: publishing is delivering, synchronously and in order.
    Implements chatd.relay.base.Relay."""

    healthy = True

    def __init__(self) -> None:
        self._handler: Handler | None = None

    @property
    def _live_handler(self) -> Handler:
        assert self._handler is not None  # set by start(), until aclose()
        return self._handler

    async def start(self, handler: Handler) -> None:
        self._handler = handler

    def publish_room(self, ev: RoomEvent) -> None:
        self._live_handler.deliver_room(ev)

    def publish_user(self, ev: UserEvent) -> None:
        self._live_handler.deliver_user(ev)

    def publish_staff(self, ev: StaffEvent) -> None:
        self._live_handler.deliver_staff(ev)

    def presence(self, order: str, user: str, online: bool, data: bytes) -> None:
        self._live_handler.deliver_room(RoomEvent(order, data))

    def online(self, order: str) -> frozenset[str]:
        return frozenset()  # the local hub knows everyone

    async def online_now(self, orders: Sequence[str]) -> dict[str, frozenset[str]]:
        return dict.fromkeys(orders, frozenset())

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

    def watch_staff(self, on: bool) -> None:
        pass

    def departed(self, instance: str) -> bool:
        return False  # no other instance

    async def aclose(self) -> None:
        self._handler = None
