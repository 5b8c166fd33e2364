"""Orders: the upsert (participants, markers of who joined or left a slot) and reads."""

from __future__ import annotations

import sqlite3
from types import EllipsisType

from chatd.auth import permissions
from chatd.errors import BadRequest, NotFound
from chatd.store.records import OrderChange, OrderRecord, Person, UnreadChange
from chatd.store.rows import ORDER_COLS, now_ms, order_from_row
from chatd.store.sqlite import outbox
from chatd.store.sqlite.engine import StoreMixin


class Orders(StoreMixin):
    """Mixed into SqliteStore."""

    async def get_order(self, order_id: str) -> OrderRecord | None:
        with self._reading():
            row = self.reader.execute(f"SELECT {ORDER_COLS} FROM orders WHERE id = ?", (order_id,)).fetchone()
        return order_from_row(row) if row else None

    @staticmethod
    def _load_order(db: sqlite3.Connection, order_id: str) -> OrderRecord:
        row = db.execute(f"SELECT {ORDER_COLS} FROM orders WHERE id = ?", (order_id,)).fetchone()
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
    ) -> OrderChange:
        """Create or update an order; `sales_rep=...` leaves it as it is."""

        def op(db: sqlite3.Connection) -> OrderChange:
            row = db.execute(f"SELECT {ORDER_COLS} FROM orders WHERE id = ?", (order_id,)).fetchone()
            old = order_from_row(row) if row else None
            if old is not None:
                new_buyer, new_supplier = buyer or old.buyer, supplier or old.supplier
            elif buyer is None or supplier is None:
                raise BadRequest("a new order needs buyer and supplier")
            else:
                new_buyer, new_supplier = buyer, supplier
            new = OrderRecord(
                id=order_id,
                status=status if status is not None else (old.status if old else "open"),
                buyer=new_buyer,
                supplier=new_supplier,
                sales_rep=(old.sales_rep if old else None) if sales_rep is ... else sales_rep,
                dispute=old.dispute if old else None,
                last_seq=old.last_seq if old else 0,
                last_ts=old.last_ts if old else 0,
                created_ts=old.created_ts if old else now_ms(),
            )
            ids = [p.id for p in (new.buyer, new.supplier, new.sales_rep) if p]
            if len(set(ids)) != len(ids):
                raise BadRequest("buyer, supplier and sales_rep must be different users")
            events = self.events_for_order(old, new) if self.events_for_order else []  # before any write
            rep = new.sales_rep
            db.execute(
                "INSERT INTO orders (id, status, buyer_id, buyer_name, supplier_id, supplier_name, "
                "rep_id, rep_name, created_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
                "buyer_id = excluded.buyer_id, buyer_name = excluded.buyer_name, "
                "supplier_id = excluded.supplier_id, supplier_name = excluded.supplier_name, "
                "rep_id = excluded.rep_id, rep_name = excluded.rep_name",
                (
                    order_id,
                    new.status,
                    new.buyer.id,
                    new.buyer.name,
                    new.supplier.id,
                    new.supplier.name,
                    rep.id if rep else None,
                    rep.name if rep else None,
                    new.created_ts,
                ),
            )
            old_roles = old.roles() if old else {}
            new_roles = new.roles()
            removed = [u for u, r in old_roles.items() if new_roles.get(u) != r]
            added = [u for u, r in new_roles.items() if old_roles.get(u) != r]
            totals = []
            for user in removed:
                gone = db.execute(
                    "DELETE FROM read_markers WHERE user_id = ? AND order_id = ? RETURNING unread", (user, order_id)
                ).fetchone()
                if gone and gone[0]:
                    totals.append(UnreadChange(user, 0, self._total(db, user), hidden=self._hidden(db, user)))
            for user in added:  # replaces a staff or bot (side) marker of theirs
                self._add_marker(db, new, user, permissions.sees_notes(new_roles[user]))
            # someone new in a slot may be joined as staff or a bot, seeing notes:
            # their connections leave the room like a removed participant's
            removed += [u for u in added if u not in old_roles and old is not None]
            changed = (
                old is None
                or old.status != new.status
                or bool(removed)
                or bool(added)
                or (old.buyer != new.buyer or old.supplier != new.supplier or old.sales_rep != new.sales_rep)
            )
            self._outbox_written += outbox.enqueue(db, events)
            return OrderChange(order=new, created=old is None, state_changed=changed, removed=removed, totals=totals)

        return await self._write(op)
