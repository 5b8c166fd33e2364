"""Wire types: one tagged msgspec Struct per frame of the contract.

Client frames form one union decoded by one `Decoder`; server frames are
encoded once (`encode`) and the same bytes go to every recipient. The
contract is docs/protocol.md. Imports no chatd module.
"""

from __future__ import annotations

import struct
from typing import Literal, Union

import msgspec
from msgspec import Struct

# --- client -> server ---------------------------------------------------


class Auth(Struct, tag="auth", forbid_unknown_fields=False):
    token: str


class Join(Struct, tag="join"):
    order: str
    since: int | None = None
    limit: int | None = None


class Leave(Struct, tag="leave"):
    order: str


class Send(Struct, tag="send"):
    order: str
    client_id: str
    text: str
    kind: Literal["text", "note"] = "text"
    attachments: list[str] = []


class Typing(Struct, tag="typing"):
    order: str
    active: bool


class Read(Struct, tag="read"):
    order: str
    seq: int


class History(Struct, tag="history"):
    order: str
    before: int | None = None
    after: int | None = None
    limit: int | None = None


class Inbox(Struct, tag="inbox"):
    limit: int | None = None
    cursor: str | None = None


class SetStatus(Struct, tag="set_status"):
    order: str
    status: str
    client_id: str
    text: str | None = None


class Dispute(Struct, tag="dispute"):
    order: str
    action: Literal["open", "close"]
    client_id: str
    reason: str | None = None


class Ping(Struct, tag="ping"):
    pass


ClientFrame = Union[Auth, Join, Leave, Send, Typing, Read, History, Inbox, SetStatus, Dispute, Ping]

decoder = msgspec.json.Decoder(ClientFrame)

# --- shared values ------------------------------------------------------


class UserRef(Struct):
    id: str
    name: str
    role: str


class AttachmentRef(Struct):
    id: str
    name: str
    mime: str
    size: int


class DisputeState(Struct):
    open: bool
    reason: str | None
    by: str
    ts: int


class Participant(Struct):
    id: str
    name: str
    role: str
    online: bool = False


class Message(Struct, tag="message", omit_defaults=True):
    """A stored message; `status` only on kind `status`."""

    order: str
    seq: int
    ts: int
    kind: str
    sender: UserRef
    text: str
    client_id: str | None
    attachments: list[AttachmentRef]
    status: str | None = None


# --- server -> client ---------------------------------------------------


class Ready(Struct, tag="ready"):
    user: UserRef
    heartbeat_s: float


class Joined(Struct, tag="joined"):
    order: str
    status: str
    dispute: DisputeState | None
    participants: list[Participant]
    last_seq: int
    read_seq: int
    unread: int
    truncated: bool = False


class Left(Struct, tag="left"):
    order: str
    reason: Literal["leave", "removed"]


class Ack(Struct, tag="ack"):
    order: str
    client_id: str
    seq: int
    ts: int
    duplicate: bool


class TypingEvent(Struct, tag="typing"):
    order: str
    user: UserRef
    active: bool


class Receipt(Struct, tag="receipt"):
    order: str
    user: str
    seq: int


class Unread(Struct, tag="unread"):
    order: str
    count: int
    total: int


class Presence(Struct, tag="presence"):
    order: str
    user: str
    online: bool


class OrderState(Struct, tag="order"):
    order: str
    status: str
    dispute: DisputeState | None
    participants: list[Participant]


class HistoryPage(Struct, tag="history"):
    order: str
    messages: list[Message]
    has_more: bool


class InboxEntry(Struct):
    order: str
    status: str
    unread: int
    dispute_open: bool
    last_message: Message | None


class InboxPage(Struct, tag="inbox"):
    orders: list[InboxEntry]
    total_unread: int
    next_cursor: str | None


class Notify(Struct, tag="notify"):
    order: str
    message: Message


class ErrorFrame(Struct, tag="error", omit_defaults=True):
    code: str
    message: str
    ref: str | None = None


class Pong(Struct, tag="pong"):
    pass


_encoder = msgspec.json.Encoder()
encode = _encoder.encode
_pack_16 = struct.Struct("!BBH").pack
_pack_64 = struct.Struct("!BBQ").pack


def frame(payload: bytes) -> bytes:
    """Wrap JSON bytes in one unmasked, final WebSocket text frame (RFC 6455 5.2).

    Built once per broadcast so every recipient's socket gets the same bytes.
    """
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return _pack_16(0x81, 126, n) + payload
    return _pack_64(0x81, 127, n) + payload


def encode_frame(msg: Struct) -> bytes:
    """Encode a server frame and wrap it for the socket: done once per event."""
    return frame(_encoder.encode(msg))


# --- decoding server frames (clients: the SDK, tests) -----------------------

ServerFrame = Union[
    Ready, Joined, Left, Message, Ack, TypingEvent, Receipt, Unread, Presence, OrderState,
    HistoryPage, InboxPage, Notify, ErrorFrame, Pong,
]

# Only server-side Structs: `typing`, `history` and `inbox` name a frame in each direction.
server_decoder = msgspec.json.Decoder(ServerFrame)
