"""The relay between instances: small contracts, each for what its callers need.

A relay delivers published events to the `Handler` of every instance that has
an interest (a local member of the room, a local connection of the user),
keeps presence across instances, and admits connections within a per-user
limit that holds across instances. It never knows the hub: it calls the
`Handler` it was given (chat.Chat, which hands deliveries to the hub).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from chatd.rooms.events import RoomEvent, StaffEvent, UserEvent


class Handler(Protocol):
    """Implemented by the chat side: where a relay delivers."""

    def deliver_room(self, ev: RoomEvent) -> None: ...

    def deliver_user(self, ev: UserEvent) -> None: ...

    def deliver_staff(self, ev: StaffEvent) -> None: ...

    def resync(self, orders: Iterable[str] | None = None) -> None:
        """The relay (re)subscribed to these rooms (None: all): refill from the
        store what may have been missed."""


class PubSub(Protocol):
    """Events to every interested instance.

    `publish_*` never blocks and never raises: the local handler gets the event
    at once, and events of one publisher are delivered in publish order;
    delivery to other instances is best effort (the store is the truth, and
    gaps are refilled from it). `healthy` is False while the relay cannot
    deliver across instances.
    """

    healthy: bool

    def publish_room(self, ev: RoomEvent) -> None: ...

    def publish_user(self, ev: UserEvent) -> None: ...

    def publish_staff(self, ev: StaffEvent) -> None:
        """To every instance with a staff connection (the staff attention queue)."""

    def watch_room(self, order: str, on: bool) -> None:
        """This instance has (no longer) a member in `order`'s room."""

    def watch_user(self, user: str, on: bool) -> None:
        """This instance has (no longer) a connection of `user`."""

    def watch_staff(self, on: bool) -> None:
        """This instance has (no longer) a staff connection."""

    def departed(self, instance: str) -> bool:
        """Whether `instance` (a received event's `origin`) has left since: stopped,
        or taken for dead. What it showed here will not be ended by it."""

    async def start(self, handler: Handler) -> None: ...

    async def aclose(self) -> None: ...


class Presence(Protocol):
    """Who is online in a room across instances (not the `presence` wire frame)."""

    def presence(self, order: str, user: str, online: bool, data: bytes) -> None:
        """A user's first (last) connection on this instance joined (left) `order`.
        The room gets `data` (a `presence` frame) only if that made them online
        (offline) across all instances."""

    def online(self, order: str) -> frozenset[str]:
        """Users online in `order` on other instances, as far as known (a room
        watched here: its presence is kept up to date; any other: nobody)."""

    async def online_now(self, orders: Sequence[str]) -> dict[str, frozenset[str]]:
        """Users online in each of `orders` on other instances, also in rooms not
        watched here (asked now: REST and thread lists reach any instance)."""

    async def load_room(self, order: str) -> None:
        """Wait until `online(order)` is known (a room just watched)."""


class Admission(Protocol):
    """The connections-per-user limit, across instances."""

    async def admit(self, user: str, limit: int, local: int) -> bool:
        """May `user`, with `local` connections here, open one more within `limit`
        across all instances? If so it is counted until `release`."""

    def release(self, user: str, local: int) -> None:
        """An admitted connection of `user` closed; `local` are left here. Other
        instances count it gone no later than they get what this one publishes next."""


class Relay(PubSub, Presence, Admission, Protocol):
    """All of it, as one object: what the composition root builds."""
