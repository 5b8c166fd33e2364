"""What travels through the relay: already-encoded frames plus routing facts.

The publishing instance encodes a frame once; every instance delivers the
same bytes. Structs are `array_like` so the Redis relay sends them compactly.
"""

from __future__ import annotations

import msgspec


class RoomEvent(msgspec.Struct, array_like=True):
    """A frame for the members of one order's room.

    `seq` is set on message frames (replay de-duplication, gap detection);
    `notes` marks frames buyers must never get; `plain` frames go only to
    members who do not see notes (a receipt clamped below the notes);
    `skip_user` is not sent to that user's connections (a typing event is
    not echoed to the typist); `role`, when set, only to members of that role
    on the order (an `order` frame says what each role may do next).

    `typing` is set on a `typing` frame (its `active`; `skip_user` is the
    typist), so an instance that gets it from another can end it itself when
    that instance goes quiet; `origin` is that other instance, set by the
    relay that received the event (empty: published here).
    """

    order: str
    data: bytes
    seq: int = 0
    notes: bool = False
    skip_user: str | None = None
    plain: bool = False
    role: str = ""
    typing: bool | None = None
    origin: str = ""


class UserEvent(msgspec.Struct, array_like=True):
    """Frames for every connection of one user, wherever it is.

    `data` (an `unread` frame, may be empty) goes to all of them; `notify` to
    those that asked for `inbox` and have not joined `order`; `removed` makes
    hubs drop the user's membership of `order` and send `left` (reason
    removed) instead.

    Read state is the user id's, but what a connection may see is its token's:
    `side` events (about a marker outside the order's slots, kept for a staff
    member or a bot) reach only connections whose token covers `order`;
    `hidden` is the part of the frame's total on such markers, recounted for
    connections that do not cover every order.
    """

    user: str
    data: bytes = b""
    order: str = ""
    notify: bytes = b""
    removed: bytes = b""
    side: bool = False
    hidden: int = 0


class StaffEvent(msgspec.Struct, array_like=True):
    """Frames for the platform's staff connections, wherever they are (chatd.attention).

    Each staff connection whose queue holds `order` gets an `unread` frame:
    `followed` if its user follows the order, else `unread` (the frames differ in
    `reasons`; each connection's `total` is its own, read by its hub). `queued`: the
    order is in every staff member's queue; `moved`: it entered or left it, so every
    staff connection hears; `only`: for that staff member alone (follow, unfollow).
    `notify` (a new message) goes to connections that asked for `inbox`, have not
    joined the order and did not send it (`sender`), where it is in their queue. A
    staff token whose id is in `slots` is that participant on the order: none of this.
    """

    order: str
    unread: bytes
    followed: bytes
    notify: bytes = b""
    sender: str = ""
    followers: list[str] = []
    slots: list[str] = []
    queued: bool = False
    moved: bool = False
    only: str = ""
