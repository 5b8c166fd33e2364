"""The SQLite implementation of the Store contract (chatd.store.base)."""

from chatd.store.sqlite.attachments import Attachments
from chatd.store.sqlite.attention import Attention
from chatd.store.sqlite.engine import Engine
from chatd.store.sqlite.markers import Markers
from chatd.store.sqlite.messages import Messages
from chatd.store.sqlite.notifications import Notifications
from chatd.store.sqlite.orders import Orders
from chatd.store.sqlite.outbox import Outbox
from chatd.store.sqlite.reply_tokens import ReplyTokens
from chatd.store.sqlite.responses import Responses
from chatd.store.sqlite.threads import Threads


class SqliteStore(
    Engine, Orders, Messages, Markers, Attention, Notifications, Responses, ReplyTokens, Attachments, Outbox, Threads
):
    """SQLite in WAL mode with group commit (see engine); SQL per concern beside it."""


__all__ = ["SqliteStore"]
