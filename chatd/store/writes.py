"""Writes of the store: each public method queues one closure for the group
commit and awaits its result, which exists only once the transaction committed.

A closure checks before it writes: a refused request (ChatError) leaves the
rest of its batch untouched.
"""

from __future__ import annotations

import msgspec

from chatd.auth import permissions
from chatd.errors import BadRequest, Conflict, Forbidden, Internal, NotFound
from chatd.store.records import OrderChange, OrderRecord, Person, Posted, ReadMarker, UnreadChange
from chatd.store.rows import MSG_COLS, ORDER_COLS, Actor, message_from_row, now_ms, order_from_row
from chatd.wire import AttachmentRef, DisputeState, Message, UserRef


class Writes:
    """Mixed into SqliteStore: needs `self._write(fn)` and `self.message_hooks`/`order_hooks`."""

    async def check_writable(self) -> None:
        def op(db):
            db.execute("INSERT OR REPLACE INTO health (id, ts) VALUES (1, ?)", (now_ms(),))

        await self._write(op)

    async def put_order(
        self,
        order_id: str,
        status: str | None,
        buyer: Person | None,
        supplier: Person | None,
        sales_rep: Person | None | type[...] = ...,
    ) -> OrderChange:
        """Create or update an order; `sales_rep=...` leaves it as it is."""

        def op(db):
            row = db.execute(f"SELECT {ORDER_COLS} FROM orders WHERE id = ?", (order_id,)).fetchone()
            old = order_from_row(row) if row else None
            if old is None and (buyer is None or supplier is None):
                raise BadRequest("a new order needs buyer and supplier")
            new = OrderRecord(
                id=order_id,
                status=status if status is not None else (old.status if old else "open"),
                buyer=buyer or old.buyer,
                supplier=supplier or old.supplier,
                sales_rep=(old.sales_rep if old else None) if sales_rep is ... else sales_rep,
                dispute=old.dispute if old else None,
                last_seq=old.last_seq if old else 0,
                last_ts=old.last_ts if old else 0,
                created_ts=old.created_ts if old else now_ms(),
            )
            ids = [p.id for p in (new.buyer, new.supplier, new.sales_rep) if p]
            if len(set(ids)) != len(ids):
                raise BadRequest("buyer, supplier and sales_rep must be different users")
            rep = new.sales_rep
            db.execute(
                "INSERT INTO orders (id, status, buyer_id, buyer_name, supplier_id, supplier_name, "
                "rep_id, rep_name, created_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
                "buyer_id = excluded.buyer_id, buyer_name = excluded.buyer_name, "
                "supplier_id = excluded.supplier_id, supplier_name = excluded.supplier_name, "
                "rep_id = excluded.rep_id, rep_name = excluded.rep_name",
                (
                    order_id, new.status, new.buyer.id, new.buyer.name, new.supplier.id,
                    new.supplier.name, rep.id if rep else None, rep.name if rep else None,
                    new.created_ts,
                ),
            )
            old_roles = old.roles() if old else {}
            new_roles = new.roles()
            removed = [u for u, r in old_roles.items() if new_roles.get(u) != r]
            added = [u for u, r in new_roles.items() if old_roles.get(u) != r]
            totals = []
            for user in removed:
                gone = db.execute("DELETE FROM read_markers WHERE user_id = ? AND order_id = ? RETURNING unread",
                                  (user, order_id)).fetchone()
                if gone and gone[0]:
                    totals.append(UnreadChange(user, 0, self._total(db, user), hidden=self._hidden(db, user)))
            for user in added:  # replaces a staff or bot (side) marker of theirs
                self._add_marker(db, new, user, permissions.sees_notes(new_roles[user]))
            # someone new in a slot may be joined as staff or a bot, seeing notes:
            # their connections leave the room like a removed participant's
            removed += [u for u in added if u not in old_roles and old is not None]
            changed = old is None or old.status != new.status or bool(removed) or bool(added) or (
                old.buyer != new.buyer or old.supplier != new.supplier or old.sales_rep != new.sales_rep
            )
            for hook in self.order_hooks:
                hook(db, old, new)
            return OrderChange(order=new, created=old is None, state_changed=changed, removed=removed,
                               totals=totals)

        return await self._write(op)

    @staticmethod
    def _add_marker(db, order: OrderRecord, user: str, sees_notes: bool) -> None:
        notes = "" if sees_notes else " AND kind != 'note'"
        unread, last = db.execute(
            f"SELECT COUNT(*) FILTER (WHERE sender_id != ?), COALESCE(MAX(seq), 0) FROM messages "
            f"WHERE order_id = ?{notes}",
            (user, order.id),
        ).fetchone()
        # DELETE, then a plain INSERT: an outer OR REPLACE overrides the trigger's
        # INSERT OR IGNORE into user_stats, which reset the user's total to this
        # marker's count, and it skips the delete trigger for the replaced marker
        db.execute("DELETE FROM read_markers WHERE user_id = ? AND order_id = ?", (user, order.id))
        db.execute(
            "INSERT INTO read_markers (user_id, order_id, sees_notes, read_seq, unread, "
            "last_seq, activity_ts, side) VALUES (?, ?, ?, 0, ?, ?, ?, ?)",
            (user, order.id, int(sees_notes), unread, last, order.last_ts or order.created_ts,
             int(user not in order.slots)),
        )

    @staticmethod
    def _hidden(db, user_id: str) -> int:
        """The user's unread on side markers (read_markers_side: usually no rows)."""
        return db.execute("SELECT COALESCE(SUM(unread), 0) FROM read_markers WHERE user_id = ? AND side = 1",
                          (user_id,)).fetchone()[0]

    def _load_order(self, db, order_id: str) -> OrderRecord:
        row = db.execute(f"SELECT {ORDER_COLS} FROM orders WHERE id = ?", (order_id,)).fetchone()
        if row is None:
            raise NotFound("no such order", ref=order_id)
        return order_from_row(row)

    def _find(self, db, order_id: str, sender_id: str, client_id: str) -> Message | None:
        row = db.execute(
            f"SELECT {MSG_COLS} FROM messages WHERE order_id = ? AND sender_id = ? AND client_id = ?",
            (order_id, sender_id, client_id),
        ).fetchone()
        return message_from_row(order_id, row) if row else None

    def _insert(self, db, order: OrderRecord, sender: UserRef, kind: str, text: str,
                client_id: str | None, status: str | None = None,
                attachments: list[AttachmentRef] | None = None) -> Posted | None:
        """Insert with the next seq; None if (order, sender, client_id) exists already."""
        ts = now_ms()
        seq = order.last_seq + 1
        att = msgspec.json.encode(attachments).decode() if attachments else None
        cur = db.execute(
            "INSERT INTO messages (order_id, seq, ts, kind, sender_id, sender_name, sender_role, "
            "client_id, text, status, attachments) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (order.id, seq, ts, kind, sender.id, sender.name, sender.role, client_id, text, status, att),
        )
        if cur.rowcount == 0:
            return None
        order.last_seq, order.last_ts = seq, ts
        notes_only = "" if kind != "note" else " AND m.sees_notes"
        unread = [
            UnreadChange(user, count, total, bool(side), hidden)
            for user, count, total, side, hidden in db.execute(
                "SELECT m.user_id, m.unread, s.unread_total, m.side, (SELECT COALESCE(SUM(h.unread), 0) "
                "FROM read_markers h WHERE h.user_id = m.user_id AND h.side = 1) FROM read_markers m "
                "JOIN user_stats s ON s.user_id = m.user_id "
                f"WHERE m.order_id = ? AND m.user_id != ?{notes_only}",
                (order.id, sender.id),
            )
        ]
        msg = Message(order.id, seq, ts, kind, sender, text, client_id, attachments or [], status)
        for hook in self.message_hooks:
            hook(db, order, msg)
        return Posted(message=msg, duplicate=False, unread=unread)

    def _duplicate(self, db, order_id: str, sender_id: str, client_id: str) -> Posted:
        found = self._find(db, order_id, sender_id, client_id)
        if found is None:  # the insert hit a seq clash, which BEGIN IMMEDIATE rules out
            raise Internal("seq conflict")
        return Posted(message=found, duplicate=True, unread=[])

    async def post(self, actor: Actor, order_id: str, text: str, client_id: str | None,
                   kind: str = "text", attachments: list[AttachmentRef] | None = None) -> Posted:
        """Store a `text`/`note` (or, for the system, `system`) message."""

        def op(db):
            order = self._load_order(db, order_id)
            role = actor.role_in(order)
            if kind == "note" and not permissions.sees_notes(role):
                raise Forbidden("buyers cannot write notes", ref=client_id)
            had_unread = role != "bot" and db.execute(
                "SELECT unread FROM read_markers WHERE user_id = ? AND order_id = ?", (actor.id, order_id)
            ).fetchone()
            posted = self._insert(db, order, UserRef(actor.id, actor.name, role), kind, text, client_id,
                                  attachments=attachments)
            if posted is None:
                return self._duplicate(db, order_id, actor.id, client_id)
            if had_unread and had_unread[0]:
                posted.unread.append(UnreadChange(actor.id, 0, self._total(db, actor.id),
                                                  side=actor.id not in order.slots,
                                                  hidden=self._hidden(db, actor.id)))
            return posted

        return await self._write(op)

    def _order_change(self, db, actor: Actor, order_id: str, client_id: str):
        """(order, actor's role, the earlier Posted if this client_id was seen) for
        a status or dispute change: a retry answers before any rule is checked."""
        order = self._load_order(db, order_id)
        role = actor.role_in(order)
        dup = self._find(db, order_id, actor.id, client_id)
        return order, role, Posted(message=dup, duplicate=True, unread=[]) if dup else None

    @staticmethod
    def _total(db, user_id: str) -> int:
        row = db.execute("SELECT unread_total FROM user_stats WHERE user_id = ?", (user_id,)).fetchone()
        return row[0] if row else 0

    async def set_status(self, actor: Actor, order_id: str, status: str, client_id: str,
                         text: str | None) -> Posted:
        """Change the order's status and post a `status` message, atomically."""

        def op(db):
            order, role, dup = self._order_change(db, actor, order_id, client_id)
            if dup:
                return dup
            if not permissions.may_set_status(role):
                raise Forbidden(f"role {role} cannot change the status", ref=client_id)
            db.execute("UPDATE orders SET status = ? WHERE id = ?", (status, order_id))
            order.status = status
            posted = self._insert(db, order, UserRef(actor.id, actor.name, role), "status",
                                  text or f"Status changed to {status}", client_id, status=status)
            posted.order = order
            return posted

        return await self._write(op)

    async def dispute(self, actor: Actor, order_id: str, action: str, client_id: str,
                      reason: str | None) -> Posted:
        """Open or close the order's dispute and post a `dispute` message, atomically."""

        def op(db):
            order, role, dup = self._order_change(db, actor, order_id, client_id)
            if dup:
                return dup
            current = order.dispute
            ts = now_ms()
            if action == "open":
                if not permissions.may_open_dispute(role):
                    raise Forbidden(f"role {role} cannot open a dispute", ref=client_id)
                if current and current.open:
                    raise Conflict("a dispute is already open", ref=client_id)
                order.dispute = DisputeState(open=True, reason=reason, by=actor.id, ts=ts)
                text = f"Dispute opened: {reason}" if reason else "Dispute opened"
            else:
                if not current or not current.open:
                    raise Conflict("no dispute is open", ref=client_id)
                if not permissions.may_close_dispute(role, actor.id, current.by):
                    raise Forbidden("only staff or whoever opened it can close a dispute", ref=client_id)
                order.dispute = DisputeState(open=False, reason=reason or current.reason, by=actor.id, ts=ts)
                text = f"Dispute closed: {reason}" if reason else "Dispute closed"
            d = order.dispute
            db.execute(
                "UPDATE orders SET dispute_open = ?, dispute_reason = ?, dispute_by = ?, dispute_ts = ? "
                "WHERE id = ?",
                (int(d.open), d.reason, d.by, d.ts, order_id),
            )
            posted = self._insert(db, order, UserRef(actor.id, actor.name, role), "dispute", text, client_id)
            posted.order = order
            return posted

        return await self._write(op)

    async def mark_read(self, actor: Actor | None, order_id: str, user_id: str, seq: int,
                        backward: bool = False) -> ReadMarker | None:
        """Move `user_id`'s read marker to `seq` (forward only unless `backward`).

        `actor` None means the api key acting for `user_id` (who must hold a
        marker). Returns None when nothing changed.
        """

        def op(db):
            order = self._load_order(db, order_id)
            role = ""
            if actor is not None:
                role = actor.role_in(order)
                sees = permissions.sees_notes(role)
            row = db.execute(
                "SELECT read_seq, unread, sees_notes, side FROM read_markers WHERE user_id = ? AND order_id = ?",
                (user_id, order_id),
            ).fetchone()
            if row is None:
                if actor is None:
                    raise NotFound(f"user {user_id} has no read marker on this order", ref=order_id)
                self._add_marker(db, order, user_id, sees)
                row = (0, None, int(sees), int(user_id not in order.slots))
            read_seq, _, sees, side = row
            target = max(0, min(seq, order.last_seq))
            if target == read_seq or (target < read_seq and not backward):
                return None
            notes = "" if sees else " AND kind != 'note'"
            unread = db.execute(
                f"SELECT COUNT(*) FROM messages WHERE order_id = ? AND seq > ? AND sender_id != ?{notes}",
                (order_id, target, user_id),
            ).fetchone()[0]
            db.execute(
                "UPDATE read_markers SET read_seq = ?, unread = ? WHERE user_id = ? AND order_id = ?",
                (target, unread, user_id, order_id),
            )
            plain = "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE order_id = ? AND seq <= ? AND kind != 'note'"
            return ReadMarker(read_seq=target, unread=unread, total=self._total(db, user_id), role=role,
                              side=bool(side), hidden=self._hidden(db, user_id),
                              plain_seq=db.execute(plain, (order_id, target)).fetchone()[0],
                              plain_before=db.execute(plain, (order_id, read_seq)).fetchone()[0])

        return await self._write(op)
