"""chatd's Python client: bots, integrations and scripts speak the wire contract through it.

    async with chatd.client.connect("http://localhost:8080", token) as c:
        await c.join("order-1")
        await c.send("order-1", "Packed and ready")
        async for event in c:
            ...

It reconnects by itself, resumes every joined order without a gap or a
duplicate, and sends each message exactly once. Events are the server's wire
Structs (`chatd.wire`); errors are `ChatdError`s carrying the contract's
code. `chatd.client.rest` exports history over REST. See docs/client.md.
"""

from chatd.client.connection import Client, Event, connect
from chatd.client.errors import (
    BadRequest,
    BlockedContent,
    ChatdError,
    ClientClosed,
    Conflict,
    ConnectionFailed,
    Forbidden,
    Internal,
    InvalidSignature,
    NotFound,
    RateLimited,
    TooLarge,
    Unauthorized,
    Unavailable,
    error_for,
)
from chatd.wire import (
    Ack,
    HistoryPage,
    InboxPage,
    Joined,
    Left,
    Message,
    Notify,
    OrderState,
    Presence,
    Receipt,
    ReplyState,
    TypingEvent,
    Unread,
)

__all__ = [
    "Ack",
    "BadRequest",
    "BlockedContent",
    "ChatdError",
    "Client",
    "ClientClosed",
    "Conflict",
    "ConnectionFailed",
    "Event",
    "Forbidden",
    "HistoryPage",
    "InboxPage",
    "Internal",
    "InvalidSignature",
    "Joined",
    "Left",
    "Message",
    "NotFound",
    "Notify",
    "OrderState",
    "Presence",
    "RateLimited",
    "Receipt",
    "ReplyState",
    "TooLarge",
    "TypingEvent",
    "Unauthorized",
    "Unavailable",
    "Unread",
    "connect",
    "error_for",
]
