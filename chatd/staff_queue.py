"""The staff side of the attention queue (chatd.attention has the rules): resolving a
help request, following orders, and marking many threads read or unread for staff as
a whole. The store writes; the chat service publishes to every staff connection."""

from __future__ import annotations

from typing import TypedDict

from chatd import attention
from chatd.auth import permissions
from chatd.auth.tokens import Identity
from chatd.chat import Chat, actor_of
from chatd.errors import BadRequest, Forbidden


class ThreadRead(TypedDict):
    order: str
    read_seq: int
    unread: int


class ThreadsRead(TypedDict, total=False):
    orders: list[ThreadRead]
    changed: list[str]
    total: int  # a staff caller's bell total after the change


class StaffQueue:
    """Use cases of staff (and the api key) on the queue; `help` itself is the chat service's."""

    def __init__(self, chat: Chat, max_orders: int = attention.MAX_BULK) -> None:
        self.chat = chat
        self.store = chat.store
        self.max_orders = max_orders

    async def resolve(self, ident: Identity, order_id: str) -> None:
        """Staff close the order's open help request without a message (a staff reply in
        the chat closes it too); every staff connection hears the order's new reasons."""
        self.chat.publish_staff(await self.store.resolve_help(actor_of(ident), order_id))

    async def follow(self, ident: Identity, order_id: str, on: bool) -> None:
        """A staff member follows (or stops following) an order: it stays in their own
        queue until they unfollow. Their staff connections hear its place either way."""
        _, view = await self.store.follow(actor_of(ident), order_id, on)
        self.chat.publish_staff(view, only=ident.id)

    async def read_threads(
        self, viewer: Identity | None, orders: list[str], seq: int | None, unread: bool
    ) -> ThreadsRead:
        """Mark many threads read (up to `seq`, or their newest message) or `unread` for
        staff as a whole, in one write (`viewer` None: the api key)."""
        if viewer is not None and viewer.role != permissions.QUEUE_ROLE:
            raise Forbidden("api key or staff token required")
        ids = list(dict.fromkeys(orders))
        if not ids or len(ids) > self.max_orders:
            raise BadRequest(f"orders must name 1 to {self.max_orders} orders")
        if unread and seq is not None:
            raise BadRequest("give seq (read up to it) or unread: true, not both")
        if seq is not None and seq < 0:
            raise BadRequest("seq must not be negative")
        done = await self.store.mark_staff_read(ids, seq, unread, viewer.id if viewer else None)
        for view, moved in done:
            if moved:
                self.chat.publish_staff(view)
        out: ThreadsRead = {
            "orders": [{"order": v.order, "read_seq": v.read_seq, "unread": v.unread} for v, _ in done],
            "changed": [v.order for v, moved in done if moved],
        }
        if viewer is not None:
            out["total"] = await self.store.visible_total(viewer)
        return out
