"""Frames rebuilt from frames already encoded: what an instance sends on its own
for events another instance published (their pub/sub copy was lost, or that
instance went quiet), without asking the store for the message again."""

from __future__ import annotations

import msgspec

from chatd.rooms.events import RoomEvent
from chatd.wire import TypingEvent, UserRef, encode, encode_frame, frame


class _Sent(msgspec.Struct):
    sender: UserRef


def payload(data: bytes) -> bytes:
    """The JSON inside a frame `wire.frame` wrote (unmasked, so only the length varies)."""
    n = data[1] & 0x7F
    return data[2 if n < 126 else 4 if n == 126 else 10 :]


def sender_of(ev: RoomEvent) -> str:
    """The id of who sent the message of a message event."""
    return msgspec.json.decode(payload(ev.data), type=_Sent).sender.id


def notify_of(order: str, ev: RoomEvent) -> bytes:
    """The `notify` frame of a message event, as `Chat.publish_posted` builds it."""
    return frame(b'{"type":"notify","order":' + encode(order) + b',"message":' + payload(ev.data) + b"}")


def typing_stopped(ev: RoomEvent) -> RoomEvent:
    """The `active: false` of a typing event that showed someone typing (to the same readers)."""
    shown = msgspec.json.decode(payload(ev.data), type=TypingEvent)
    stop = TypingEvent(shown.order, shown.user, False)
    return RoomEvent(ev.order, encode_frame(stop), skip_user=ev.skip_user, notes=ev.notes, typing=False)
