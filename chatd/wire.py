"""Wire types: one tagged msgspec Struct per frame of the contract.

Client frames form one union decoded by one `Decoder`; server frames are
encoded once (`encode`) and the same bytes go to every recipient. The
contract is docs/protocol.md. Imports no chatd module.
"""

from __future__ import annotations

import struct
from typing import Annotated, Any, Literal, TypeVar, overload

import msgspec
from msgspec import Meta, Struct

# --- bounds of client input (docs/protocol.md, "Field bounds") -------------
# Checked while decoding, so a handler never sees a value the store cannot hold
# (SQLite integers are signed 64-bit) or a string that would be copied into
# every message. Text, reasons and attachment counts have configured limits.

MAX_INT = 2**63 - 1
MAX_LIMIT = 2**31 - 1  # page sizes: larger than any cap, small enough for arithmetic
ID_CHARS = 200  # order ids, user ids, names
CLIENT_ID_CHARS = 128
STATUS_CHARS = 64
TOKEN_CHARS = 8192
CURSOR_CHARS = 256  # inbox: "<ms>:<order id>"
INBOX_ONLY = 200  # inbox: the most order ids one `only` names
ATTACHMENT_ID_CHARS = 64
ATTACHMENTS_PER_FRAME = 100

# No string holds U+0000: PostgreSQL's text cannot, and one contract holds on every backend.
NO_NUL = "^[^\x00]*$"
Id = Annotated[str, Meta(min_length=1, max_length=ID_CHARS, pattern=NO_NUL)]
Name = Annotated[str, Meta(max_length=ID_CHARS, pattern=NO_NUL)]
ClientId = Annotated[str, Meta(min_length=1, max_length=CLIENT_ID_CHARS, pattern=NO_NUL)]
Status = Annotated[str, Meta(min_length=1, max_length=STATUS_CHARS, pattern=NO_NUL)]
Seq = Annotated[int, Meta(ge=0, le=MAX_INT)]
Limit = Annotated[int, Meta(ge=0, le=MAX_LIMIT)]
Cursor = Annotated[str, Meta(max_length=CURSOR_CHARS, pattern=NO_NUL)]
AttachmentIds = Annotated[
    list[Annotated[str, Meta(min_length=1, max_length=ATTACHMENT_ID_CHARS, pattern=NO_NUL)]],
    Meta(max_length=ATTACHMENTS_PER_FRAME),
]

# --- client -> server ---------------------------------------------------


class Auth(Struct, tag="auth", forbid_unknown_fields=False):
    token: Annotated[str, Meta(max_length=TOKEN_CHARS)]


class Join(Struct, tag="join"):
    order: Id
    since: Seq | None = None
    limit: Limit | None = None


class Leave(Struct, tag="leave"):
    order: Id


class Send(Struct, tag="send"):
    order: Id
    client_id: ClientId
    text: str
    kind: Literal["text", "note"] = "text"
    attachments: AttachmentIds = []


class Typing(Struct, tag="typing"):
    order: Id
    active: bool
    note: bool = False  # writing an internal note: told to note readers only


class Read(Struct, tag="read"):
    order: Id
    seq: Seq


class History(Struct, tag="history"):
    order: Id
    before: Seq | None = None
    after: Seq | None = None
    limit: Limit | None = None


class Inbox(Struct, tag="inbox"):
    limit: Limit | None = None
    cursor: Cursor | None = None
    only: Annotated[list[Id], Meta(max_length=INBOX_ONLY)] | None = None  # just these orders (a page's badges)


class SetStatus(Struct, tag="set_status"):
    order: Id
    status: Status
    client_id: ClientId
    text: str | None = None


class Dispute(Struct, tag="dispute"):
    order: Id
    action: Literal["open", "close"]
    client_id: ClientId
    reason: str | None = None


class NoReplyNeeded(Struct, tag="no_reply_needed"):
    """The supplier side (or staff): the buyer's message `seq` asks nothing of us."""

    order: Id
    seq: Seq


class Help(Struct, tag="help"):
    """A participant asks the platform's staff for help (chatd.attention)."""

    order: Id
    client_id: ClientId
    text: str | None = None


class Resolve(Struct, tag="resolve"):
    """Staff: the order's help request is handled (without a message)."""

    order: Id


class Follow(Struct, tag="follow"):
    """Staff: keep the order in my attention queue."""

    order: Id


class Unfollow(Struct, tag="unfollow"):
    order: Id


class Ping(Struct, tag="ping"):
    pass


ClientFrame = (
    Auth
    | Join
    | Leave
    | Send
    | Typing
    | Read
    | History
    | Inbox
    | SetStatus
    | Dispute
    | NoReplyNeeded
    | Help
    | Resolve
    | Follow
    | Unfollow
    | Ping
)

decoder = msgspec.json.Decoder(ClientFrame)


T = TypeVar("T")


@overload
def decode_json(data: bytes | str) -> ClientFrame: ...
@overload
def decode_json(data: bytes | str, type: type[T]) -> T: ...
@overload
def decode_json(data: bytes | str, type: Any) -> Any: ...
def decode_json(data: bytes | str, type: Any = ClientFrame) -> Any:
    """Decode hostile JSON (a client frame by default): nesting too deep for the
    decoder is a `DecodeError` like any other malformed input, not a `RecursionError`."""
    try:
        return decoder.decode(data) if type is ClientFrame else msgspec.json.decode(data, type=type)
    except RecursionError:
        raise msgspec.DecodeError("JSON is nested too deeply") from None


class _Refs(Struct):
    order: Any = None
    client_id: Any = None


_refs_decoder = msgspec.json.Decoder(_Refs)


def ref_of(data: bytes | str) -> str | None:
    """What an `error` for an undecodable frame names: its `client_id`, else its
    `order`, when the frame is a JSON object that has a plausible one."""
    try:
        refs = _refs_decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None
    for value, most in ((refs.client_id, CLIENT_ID_CHARS), (refs.order, ID_CHARS)):
        if isinstance(value, str) and 0 < len(value) <= most:
            return value
    return None


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
    by_name: str  # the name `by` had then: a staff opener is no participant a client could look up


class Participant(Struct):
    id: str
    name: str
    role: str
    online: bool = False
    avatar_url: str | None = None


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
    forced: bool = False  # a status set outside the order's workflow (api key, `force`)


# --- server -> client ---------------------------------------------------


class Ready(Struct, tag="ready"):
    user: UserRef
    heartbeat_s: float


class NextStatus(Struct):
    """A status of the order's workflow, with its label and tone: one the receiving user
    may move the order to (`next_statuses`), or any of the pipeline (`statuses`)."""

    status: str
    label: str
    tone: str


class AwaitingReply(Struct):
    """The buyer waits for the supplier side: since their message `seq` at `since`;
    a reply is due by `due_at` (ms; `[sla] reply_within_s`; null when that is 0: no
    reply is ever due); `overdue`: escalated."""

    seq: int
    since: int
    due_at: int | None
    overdue: bool


class ReplyState(Struct, tag="reply_state"):
    """To the supplier side, staff and bots of a room: the reply clock started or stopped."""

    order: str
    awaiting_reply: AwaitingReply | None


class ReadMark(Struct):
    """Another participant's read marker, as a `receipt` frame would carry it."""

    user: str
    seq: int


class Joined(Struct, tag="joined"):
    order: str
    status: str
    dispute: DisputeState | None
    participants: list[Participant]
    last_seq: int
    read_seq: int
    unread: int
    truncated: bool = False
    workflow: str = "free"
    status_label: str = ""
    status_tone: str = "neutral"
    next_statuses: list[NextStatus] = []  # for the receiving user's role
    statuses: list[NextStatus] = []  # the whole pipeline, in order: how past statuses show (free: none)
    closed: bool = False  # participants may read but not post, upload or type
    closed_reason: str | None = None  # the terminal status that closed it
    closes_at: int | None = None  # ms: when the chat closes (or closed)
    awaiting_reply: AwaitingReply | None = None  # never for buyers
    receipts: list[ReadMark] = []  # the other participants' markers ("Seen by" after a reload)


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


class Unread(Struct, tag="unread", omit_defaults=True):
    order: str
    count: int
    total: int
    reasons: list[str] | None = None  # staff only: why the order is in their queue ([]: it left it)


class Presence(Struct, tag="presence"):
    order: str
    user: str
    online: bool


class OrderState(Struct, tag="order"):
    order: str
    status: str
    dispute: DisputeState | None
    participants: list[Participant]
    workflow: str = "free"
    status_label: str = ""
    status_tone: str = "neutral"
    next_statuses: list[NextStatus] = []  # for the receiving user's role
    statuses: list[NextStatus] = []  # the whole pipeline, in order: how past statuses show (free: none)
    closed: bool = False
    closed_reason: str | None = None
    closes_at: int | None = None
    awaiting_reply: AwaitingReply | None = None  # never for buyers


class HistoryPage(Struct, tag="history"):
    order: str
    messages: list[Message]
    has_more: bool


class InboxEntry(Struct, omit_defaults=True):
    order: str
    status: str
    unread: int
    dispute_open: bool
    last_message: Message | None
    reasons: list[str] | None = None  # staff only: an entry of their attention queue, and why
    awaiting_reply: AwaitingReply | None = None  # the supplier side, staff and bots: the buyer waits


class InboxPage(Struct, tag="inbox", omit_defaults=True):
    orders: list[InboxEntry]
    total_unread: int
    next_cursor: str | None
    only: list[str] | None = None  # the request's `only`, echoed: this page is of those orders, not the inbox


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

ServerFrame = (
    Ready
    | Joined
    | Left
    | Message
    | Ack
    | TypingEvent
    | Receipt
    | Unread
    | Presence
    | OrderState
    | ReplyState
    | HistoryPage
    | InboxPage
    | Notify
    | ErrorFrame
    | Pong
)

# Only server-side Structs: `typing`, `history` and `inbox` name a frame in each direction.
server_decoder = msgspec.json.Decoder(ServerFrame)
