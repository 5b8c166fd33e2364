"""Orders: the upsert (participants, markers of who joined or left a slot) and reads.
Mirrors chatd.store.sqlite.orders."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import EllipsisType
from typing import TYPE_CHECKING

from chatd.auth import permissions
from chatd.errors import BadRequest, NotFound
from chatd.store.base import OrderRule
from chatd.store.postgres import attention as staff
from chatd.store.postgres import outbox, reply_tokens
from chatd.store.postgres.batch import Statements
from chatd.store.postgres.engine import StoreMixin, locked_order, pooled_read
from chatd.store.records import Contact, OrderChange, OrderPlan, OrderRecord, Person, StaffView, UnreadChange
from chatd.store.rows import ORDER_COLS, SYSTEM, order_from_row
from chatd.wire import UserRef

if TYPE_CHECKING:
    import asyncpg


async def _save_contacts(db: asyncpg.Connection, contacts: Mapping[str, Contact] | None) -> None:
    """Upsert users' contact data: a field given replaces, None keeps, "" clears."""
    for user, c in sorted((contacts or {}).items()):
        await db.execute(
            "INSERT INTO contacts (user_id, email, phone, locale) VALUES ($1, NULLIF($2, ''), NULLIF($3, ''), "
            "NULLIF($4, '')) ON CONFLICT (user_id) DO UPDATE SET "
            "email = CASE WHEN $2::text IS NULL THEN contacts.email ELSE excluded.email END, "
            "phone = CASE WHEN $3::text IS NULL THEN contacts.phone ELSE excluded.phone END, "
            "locale = CASE WHEN $4::text IS NULL THEN contacts.locale ELSE excluded.locale END",
            user,
            c.email,
            c.phone,
            c.locale,
        )


async def _queue_moved(
    db: asyncpg.Connection, old: OrderRecord | None, new: OrderRecord
) -> tuple[list[str], StaffView | None]:
    """As chatd.store.sqlite.orders.Orders._queue_moved."""
    if old is None:
        return [], None
    moved = {u for u in set(old.slots) ^ set(new.slots) if u}
    place = await staff.view(db, new) if moved else None
    users = sorted(u for u in moved if place and (place.reasons or u in place.followers))
    return users, place if users else None


class Orders(StoreMixin):
    """Mixed into PostgresStore."""

    @pooled_read
    async def contacts(self, db: asyncpg.Connection, user_ids: Sequence[str]) -> dict[str, Contact]:
        rows = await db.fetch(
            "SELECT user_id, email, phone, locale FROM contacts WHERE user_id = ANY($1::text[])", list(user_ids)
        )
        return {r[0]: Contact(r[1], r[2], r[3]) for r in rows}

    @pooled_read
    async def get_order(self, db: asyncpg.Connection, order_id: str) -> OrderRecord | None:
        row = await db.fetchrow(f"SELECT {ORDER_COLS} FROM orders WHERE id = $1", order_id)
        return order_from_row(row) if row else None

    @pooled_read
    async def orders(self, db: asyncpg.Connection, order_ids: Sequence[str]) -> dict[str, OrderRecord]:
        rows = await db.fetch(f"SELECT {ORDER_COLS} FROM orders WHERE id = ANY($1::text[])", list(order_ids))
        return {r[0]: order_from_row(r) for r in rows}

    @staticmethod
    async def _load_order(db: asyncpg.Connection, order_id: str, lock: bool = False) -> OrderRecord:
        """The order, its row locked for the transaction when `lock`: every write
        that allocates a seq takes it first, so seqs are gapless across hosts. The
        batch being committed may have locked and read it already (`locked_order`)."""
        if lock and (locked := locked_order(order_id)) is not None:
            return locked
        read = db.fetchrow_order if isinstance(db, Statements) else db.fetchrow
        row = await read(f"SELECT {ORDER_COLS} FROM orders WHERE id = $1" + (" FOR UPDATE" if lock else ""), order_id)
        if row is None:
            raise NotFound("no such order", ref=order_id)
        return order_from_row(row)

    async def put_order(
        self,
        order_id: str,
        status: str | None,
        buyer: Person | None,
        supplier: Person | None,
        sales_rep: Person | None | EllipsisType = ...,
        *,
        rule: OrderRule | None = None,
        present: frozenset[str] = frozenset(),
        contacts: Mapping[str, Contact] | None = None,
    ) -> OrderChange:
        """Create or update an order; `sales_rep=...` leaves it as it is (a new order,
        or one whose rep follows its buyer, gets the buyer's rep)."""

        async def op(db: asyncpg.Connection) -> OrderChange:
            if buyer is not None:  # before the order's lock, as set_buyer_rep takes them
                await db.execute("SELECT pg_advisory_xact_lock(hashtext($1))", "buyer:" + buyer.id)
            change = await self._upsert_order(db, order_id, status, buyer, supplier, sales_rep, rule, present)
            await _save_contacts(db, contacts)  # after the checks: a refused upsert leaves them
            return change

        return await self._write(op, key=order_id)

    async def set_buyer_rep(
        self, buyer_id: str, sales_rep: Person | None, contacts: Mapping[str, Contact] | None = None
    ) -> list[OrderChange]:
        """Assign (None: unassign) the buyer's rep; every order of the buyer whose rep
        follows the buyer gets it, in one transaction (one change per order)."""

        async def op(db: asyncpg.Connection) -> list[OrderChange]:
            # one buyer's assignments serialise; their orders are locked in id order
            await db.execute("SELECT pg_advisory_xact_lock(hashtext($1))", "buyer:" + buyer_id)
            if sales_rep is not None:  # refused before anything is written
                if sales_rep.id == buyer_id:
                    raise BadRequest("a buyer cannot be their own sales_rep")
                clash = await db.fetchval(
                    "SELECT id FROM orders WHERE buyer_id = $1 AND rep_from_buyer = 1 AND supplier_id = $2 LIMIT 1",
                    buyer_id,
                    sales_rep.id,
                )
                if clash is not None:
                    raise BadRequest("buyer, supplier and sales_rep must be different users", ref=clash)
            if sales_rep is None:
                await db.execute("DELETE FROM buyer_reps WHERE buyer_id = $1", buyer_id)
            else:
                await db.execute(
                    "INSERT INTO buyer_reps (buyer_id, rep_id, rep_name, rep_avatar) VALUES ($1, $2, $3, $4) "
                    "ON CONFLICT (buyer_id) DO UPDATE SET rep_id = excluded.rep_id, rep_name = excluded.rep_name, "
                    "rep_avatar = excluded.rep_avatar",
                    buyer_id,
                    sales_rep.id,
                    sales_rep.name,
                    sales_rep.avatar_url,
                )
            rows = await db.fetch(
                "SELECT id FROM orders WHERE buyer_id = $1 AND rep_from_buyer = 1 ORDER BY id", buyer_id
            )
            changes = [await self._upsert_order(db, r[0], None, None, None, ..., None, frozenset()) for r in rows]
            await _save_contacts(db, contacts)
            return changes

        return await self._write(op, key="buyer:" + buyer_id)

    @pooled_read
    async def buyer_rep(self, db: asyncpg.Connection, buyer_id: str) -> Person | None:
        row = await db.fetchrow("SELECT rep_id, rep_name, rep_avatar FROM buyer_reps WHERE buyer_id = $1", buyer_id)
        return Person(row[0], row[1], row[2]) if row else None

    async def _upsert_order(
        self,
        db: asyncpg.Connection,
        order_id: str,
        status: str | None,
        buyer: Person | None,
        supplier: Person | None,
        sales_rep: Person | None | EllipsisType,
        rule: OrderRule | None,
        present: frozenset[str],
    ) -> OrderChange:
        # a new order's id is locked too: two hosts creating it serialise here
        await db.execute("SELECT pg_advisory_xact_lock(hashtext($1))", "order:" + order_id)
        row = await db.fetchrow(f"SELECT {ORDER_COLS}, rep_from_buyer FROM orders WHERE id = $1 FOR UPDATE", order_id)
        old = order_from_row(row) if row else None
        if old is not None:
            new_buyer, new_supplier = buyer or old.buyer, supplier or old.supplier
        elif buyer is None or supplier is None:
            raise BadRequest("a new order needs buyer and supplier")
        else:
            new_buyer, new_supplier = buyer, supplier
        if rule is not None:
            plan = rule(old)  # against the order as locked by this write
        else:
            plan = OrderPlan(
                old.workflow if old else "free",
                status if status is not None else (old.status if old else "open"),
                old.closes_at if old else None,
            )
        from_buyer = sales_rep is ... and (old is None or bool(row[-1]))
        if sales_rep is not ...:
            rep_now = sales_rep
        elif from_buyer:  # the buyer's rep (as assigned now), also after a buyer change
            got = await db.fetchrow(
                "SELECT rep_id, rep_name, rep_avatar FROM buyer_reps WHERE buyer_id = $1", new_buyer.id
            )
            rep_now = Person(got[0], got[1], got[2]) if got else None
        else:
            rep_now = old.sales_rep if old else None
        new = OrderRecord(
            id=order_id,
            status=plan.status,
            buyer=new_buyer,
            supplier=new_supplier,
            sales_rep=rep_now,
            dispute=old.dispute if old else None,
            last_seq=old.last_seq if old else 0,
            last_ts=old.last_ts if old else 0,
            created_ts=old.created_ts if old else int(self.clock() * 1000),  # the store's clock, as a message's ts
            workflow=plan.workflow,
            closes_at=plan.closes_at,
            waiting=old.waiting if old else None,
            help=old.help if old else None,
        )
        ids = [p.id for p in (new.buyer, new.supplier, new.sales_rep) if p]
        if len(set(ids)) != len(ids):
            raise BadRequest("buyer, supplier and sales_rep must be different users")
        events = self.events_for_order(old, new) if self.events_for_order else []  # before any write
        rep = new.sales_rep
        await db.execute(
            "INSERT INTO orders (id, status, buyer_id, buyer_name, supplier_id, supplier_name, "
            "rep_id, rep_name, created_ts, workflow, closes_at, rep_from_buyer, "
            "buyer_avatar, supplier_avatar, rep_avatar) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) "
            "ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
            "buyer_id = excluded.buyer_id, buyer_name = excluded.buyer_name, "
            "supplier_id = excluded.supplier_id, supplier_name = excluded.supplier_name, "
            "rep_id = excluded.rep_id, rep_name = excluded.rep_name, "
            "workflow = excluded.workflow, closes_at = excluded.closes_at, rep_from_buyer = excluded.rep_from_buyer, "
            "buyer_avatar = excluded.buyer_avatar, supplier_avatar = excluded.supplier_avatar, "
            "rep_avatar = excluded.rep_avatar",
            order_id,
            new.status,
            new.buyer.id,
            new.buyer.name,
            new.supplier.id,
            new.supplier.name,
            rep.id if rep else None,
            rep.name if rep else None,
            new.created_ts,
            new.workflow,
            new.closes_at,
            int(from_buyer),
            new.buyer.avatar_url,
            new.supplier.avatar_url,
            rep.avatar_url if rep else None,
        )
        old_roles = old.roles() if old else {}
        new_roles = new.roles()
        removed = [u for u, r in old_roles.items() if new_roles.get(u) != r]
        added = [u for u, r in new_roles.items() if old_roles.get(u) != r]
        had: dict[str, int] = {}
        now: dict[str, int] = {}
        for user in removed:
            had[user] = await db.fetchval(
                "DELETE FROM read_markers WHERE user_id = $1 AND order_id = $2 RETURNING unread", user, order_id
            )
        for user in added:  # replaces a staff or bot (side) marker of theirs
            await self._add_marker(db, new, user, permissions.sees_notes(new_roles[user]))
            now[user] = await db.fetchval(
                "SELECT unread FROM read_markers WHERE user_id = $1 AND order_id = $2", user, order_id
            )
        # totals once every marker is in place: one for a user whose role changed, not a passing one
        totals: list[UnreadChange] = []
        entered: list[UnreadChange] = []
        for user in dict.fromkeys([*removed, *added]):
            if had.get(user) or now.get(user):
                total, hidden = await self._total(db, user), await self._hidden(db, user)
                (entered if user in now else totals).append(UnreadChange(user, now.get(user, 0), total, hidden=hidden))
        queue_moved, place = await _queue_moved(db, old, new)
        removed += [u for u in added if u not in old_roles and old is not None]
        await reply_tokens.revoke(db, order_id, removed)  # their reply addresses stop working with this commit
        changed = (
            old is None
            or old.status != new.status
            or bool(removed)
            or bool(added)
            or (old.buyer != new.buyer or old.supplier != new.supplier or old.sales_rep != new.sales_rep)
            or old.workflow != new.workflow
            or old.closes_at != new.closes_at
        )
        self._outbox_written += await outbox.enqueue(db, events)
        posted = None
        if plan.post and old is not None:  # after the markers: everyone in the slots counts it unread
            posted = await self._insert(
                db,
                new,
                UserRef(SYSTEM.id, SYSTEM.name, "bot"),
                "status",
                plan.text or f"Status changed to {new.status}",
                None,
                status=new.status,
                present=present,
                forced=plan.forced,
            )
        return OrderChange(
            order=new,
            created=old is None,
            state_changed=changed,
            removed=removed,
            totals=totals,
            posted=posted,
            entered=entered,
            queue_moved=queue_moved,
            staff=place,
        )
