"""The PostgreSQL implementation of the Store contract (chatd.store.base), over asyncpg."""

from chatd.store.postgres.attachments import Attachments
from chatd.store.postgres.attention import Attention
from chatd.store.postgres.engine import Engine
from chatd.store.postgres.markers import Markers
from chatd.store.postgres.messages import Messages
from chatd.store.postgres.notifications import Notifications
from chatd.store.postgres.orders import Orders
from chatd.store.postgres.outbox import Outbox
from chatd.store.postgres.reply_tokens import ReplyTokens
from chatd.store.postgres.responses import Responses
from chatd.store.postgres.threads import Threads


class PostgresStore(
    Engine, Orders, Messages, Markers, Attention, Notifications, Responses, ReplyTokens, Attachments, Outbox, Threads
):
    """An asyncpg pool with group commit (see engine); SQL per concern beside it."""


__all__ = ["PostgresStore"]
