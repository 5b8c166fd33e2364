"""What travels through the relay: already-encoded frames plus routing facts.

The publishing instance encodes a frame once; every instance delivers the
same bytes. Structs are `array_like` so the Redis relay sends them compactly.
"""

from __future__ import annotations

import msgspec


class RoomEvent(msgspec.Struct, array_like=True):
    """A frame for the members of one order's room.

    `seq` is set on message frames (replay de-duplication, gap detection);
    `notes` marks frames buyers must never get; `skip_user` is not sent to
    that user's connections (a typing event is not echoed to the typist).
    `kick` asks hubs to end that user's membership first (access removed).
    """

    order: str
    data: bytes
    seq: int = 0
    notes: bool = False
    skip_user: str | None = None


class UserEvent(msgspec.Struct, array_like=True):
    """Frames for every connection of one user, wherever it is.

    `data` (an `unread` frame, may be empty) goes to all of them; `notify` to
    those that asked for `inbox` and have not joined `order`; `removed` makes
    hubs drop the user's membership of `order` and send `left` (reason
    removed) instead.
    """

    user: str
    data: bytes = b""
    order: str = ""
    notify: bytes = b""
    removed: bytes = b""
