"""What the scale data set holds and in which order it happens: seeded, pure, no I/O.

A `Plan` is built from a `Spec` (how many orders and messages, the user with many
orders, the long orders a replay is measured on, the seed) and yields `actions()`
in time order: orders registered, messages and notes posted, statuses set,
disputes opened by buyers and closed by staff, participants reading. Each action
is one call chatd makes on a client's behalf (`generate` writes them through the
store; the tests post a small plan through a real server), so the database that
results is chatd's own state after those requests, whichever path wrote it.
"""

from __future__ import annotations

import heapq
import math
import random
import uuid
from collections.abc import Iterator

import msgspec

from scripts.scale.words import Texts

DAY_MS = 86_400_000
END_MS = 1_782_864_000_000  # 2026-07-01T00:00:00Z: the newest message is just before it
BIG_USER_ID = "u-keyrep"  # the sales rep in `big_orders` orders
STAFF_IDS = ("staff-1", "staff-2", "staff-3")
SHARED = "staff"  # staff share one read marker per order: a staff member's read or message moves it


class Spec(msgspec.Struct, frozen=True):
    orders: int = 100_000
    messages: int = 1_000_000  # every one a message chatd stores: texts, notes, statuses, disputes
    big_orders: int = 10_000  # orders where BIG_USER_ID is the sales rep
    long_orders: int = 3  # orders with `long_messages` messages each (replay is measured on the first)
    long_messages: int = 12_000
    seed: int = 16
    span_days: int = 365  # the messages spread over this many days before END_MS
    dispute_share: float = 0.015  # of the orders with 8 messages or more: the buyer opens a dispute, staff close it

    def check(self) -> None:
        if self.orders < 1 or self.big_orders > self.orders - self.long_orders or self.long_orders > self.orders:
            raise ValueError("need big_orders + long_orders <= orders")
        if self.messages < self.long_orders * self.long_messages + (self.orders - self.long_orders):
            raise ValueError("too few messages: each long order gets long_messages, every other order one at least")


class User(msgspec.Struct, frozen=True):
    id: str
    name: str
    role: str  # the token role: buyer, supplier, sales_rep, staff


class NewOrder(msgspec.Struct, frozen=True, tag=True):
    order: str
    ts: int
    buyer: User
    supplier: User
    rep: User | None


class Post(msgspec.Struct, frozen=True, tag=True):
    order: str
    ts: int
    user: User
    kind: str  # text or note
    text: str
    client_id: str


class Status(msgspec.Struct, frozen=True, tag=True):
    order: str
    ts: int
    user: User
    status: str
    client_id: str


class Dispute(msgspec.Struct, frozen=True, tag=True):
    order: str
    ts: int
    user: User
    action: str  # open or close
    reason: str
    client_id: str


class Read(msgspec.Struct, frozen=True, tag=True):
    order: str
    user: User
    seq: int


Action = NewOrder | Post | Status | Dispute | Read
WRITES_MESSAGE = (Post, Status, Dispute)  # each stores exactly one message

# how likely each participant reads what is new before the next message comes
READ_CHANCE = {"buyer": 0.22, "supplier": 0.22, "sales_rep": 0.12, "staff": 0.3}
BIG_USER_READ_CHANCE = 0.03  # the busy rep leaves most of it unread: an inbox with unread everywhere
NOTE_CHANCE = 0.07  # a supplier-side message that is an internal note


class _Order:
    """One order as the timeline reaches it: who is in it and what comes next."""

    __slots__ = ("id", "n", "times", "buyer", "supplier", "rep", "created", "k", "read", "statuses", "dispute", "staff")

    def __init__(self, oid: str, n: int, times: list[int], buyer: User, supplier: User, rep: User | None) -> None:
        self.id, self.n, self.times = oid, n, times
        self.buyer, self.supplier, self.rep = buyer, supplier, rep
        self.created = False
        self.k = 0  # messages so far: the order's last seq
        self.read: dict[str, int] = {}  # user id (SHARED for staff) -> the seq their marker is at
        self.statuses: dict[int, str] = {}
        if n >= 4:  # the supplier moves the order along: confirmed, then (longer talks) shipped, delivered
            self.statuses = {max(2, round(0.15 * n)): "confirmed"}
        if n >= 12:
            self.statuses |= {round(0.6 * n): "shipped", round(0.9 * n): "delivered"}
        self.dispute: tuple[int, int] | None = None  # (open at seq, close at seq)
        self.staff: User | None = None


def _keys(i: int, times: list[int]) -> Iterator[int]:
    """An order's times as sort keys: the time, then the order's index (at most 2^20 orders)."""
    return ((t << 20) | i for t in times)


class Plan:
    def __init__(self, spec: Spec) -> None:
        spec.check()
        self.spec = spec
        rng = self.rng = random.Random(spec.seed)
        self.texts = Texts(rng)
        n = spec.orders
        buyers = [User(f"b-{i:06d}", self.texts.person(), "buyer") for i in range(max(1, n // 4))]
        suppliers = [User(f"s-{i:05d}", self.texts.company(), "supplier") for i in range(max(1, n // 40))]
        reps = [User(f"r-{i:04d}", self.texts.person(), "sales_rep") for i in range(max(1, n // 250))]
        self.big_user = User(BIG_USER_ID, "Mara Lindqvist", "sales_rep")
        self.staff = [User(s, f"Support {s[-1]}", "staff") for s in STAFF_IDS]
        big = set(rng.sample(range(spec.long_orders, n), spec.big_orders))
        counts = self._counts()
        self.orders: list[_Order] = []
        start_lo, start_hi = END_MS - spec.span_days * DAY_MS, END_MS - 3_600_000
        for i in range(n):
            rep = self.big_user if i in big else (rng.choice(reps) if rng.random() < 0.8 else None)
            start = start_lo if i < spec.long_orders else rng.randrange(start_lo, start_hi)
            times = self._times(start, counts[i])
            order = _Order(f"PO-{100_000 + i}", counts[i], times, rng.choice(buyers), rng.choice(suppliers), rep)
            if counts[i] >= 8 and rng.random() < spec.dispute_share:
                order.dispute = (round(0.5 * counts[i]) + 1, round(0.85 * counts[i]) + 1)
                order.staff = rng.choice(self.staff)
                order.statuses = {k: s for k, s in order.statuses.items() if k not in order.dispute}
            self.orders.append(order)
        self.long_order_ids = [o.id for o in self.orders[: spec.long_orders]]
        self.big_order_ids = sorted(self.orders[i].id for i in big)

    def _counts(self) -> list[int]:
        """Messages per order: the long orders' share, the rest skewed (most orders a few, some many)."""
        s, rng = self.spec, self.rng
        short = s.orders - s.long_orders
        rest = s.messages - s.long_orders * s.long_messages - short  # beyond one each
        weights = [rng.lognormvariate(0.0, 1.1) for _ in range(short)]
        total = sum(weights) or 1.0
        counts = [1 + math.floor(w / total * rest) for w in weights]
        for _ in range(s.messages - s.long_orders * s.long_messages - sum(counts)):
            counts[rng.randrange(short)] += 1
        return [s.long_messages] * s.long_orders + counts

    def _times(self, start: int, n: int) -> list[int]:
        """Creation time, then `n` message times: bursts minutes apart, a day or so between
        bursts, squeezed to end before END_MS. Strictly increasing (ms)."""
        rng = self.rng
        gaps = [
            rng.expovariate(1 / 360_000) if rng.random() < 0.7 else rng.expovariate(1 / 100_000_000) for _ in range(n)
        ]
        room = END_MS - 60_000 - start
        scale = min(1.0, room / (sum(gaps) + 1))
        out, t, last = [start], float(start), start
        for g in gaps:
            t += g * scale
            last = max(last + 1, int(t))
            out.append(last)
        return out

    def actions(self) -> Iterator[Action]:
        """Every action in time order (ties: by order), the orders' creation included."""
        for key in heapq.merge(*(_keys(i, o.times) for i, o in enumerate(self.orders))):
            order = self.orders[key & 0xFFFFF]
            ts = key >> 20
            if not order.created:
                order.created = True
                yield NewOrder(order.id, ts, order.buyer, order.supplier, order.rep)
                continue
            yield from self._slot(order, ts)

    def _uuid(self) -> str:
        """A client_id as clients make them (random, version 4), from the seeded generator."""
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _slot(self, o: _Order, ts: int) -> Iterator[Action]:
        """The order's next message, and the reads of those who looked in before it."""
        rng, seq = self.rng, o.k + 1
        people = [o.buyer, o.supplier] + ([o.rep] if o.rep else [])
        open_dispute = o.dispute is not None and o.dispute[0] < seq <= o.dispute[1]
        if open_dispute and o.staff is not None:
            people.append(o.staff)
        for p in people:
            chance = BIG_USER_READ_CHANCE if p.id == BIG_USER_ID else READ_CHANCE[p.role]
            key = SHARED if p.role == "staff" else p.id
            if o.k > o.read.get(key, 0) and rng.random() < chance:
                o.read[key] = o.k
                yield Read(o.id, p, o.k)
        o.k = seq
        if seq in o.statuses:
            action: Action = Status(o.id, ts, o.supplier, o.statuses[seq], self._uuid())
        elif o.dispute is not None and seq == o.dispute[0]:
            action = Dispute(o.id, ts, o.buyer, "open", self.texts.dispute_reason(), self._uuid())
        elif o.dispute is not None and o.staff is not None and seq == o.dispute[1]:
            action = Dispute(o.id, ts, o.staff, "close", "resolved with both sides", self._uuid())
        else:
            user = self._sender(o, open_dispute)
            note = user.role in ("supplier", "sales_rep") and rng.random() < NOTE_CHANCE
            action = Post(o.id, ts, user, "note" if note else "text", self.texts.message(user.role, note), self._uuid())
        o.read[SHARED if action.user.role == "staff" else action.user.id] = seq  # sending reads the order
        yield action

    def _sender(self, o: _Order, open_dispute: bool) -> User:
        r = self.rng.random()
        if open_dispute and o.staff is not None and r < 0.3:
            return o.staff
        r = self.rng.random()
        rep_share = 0.0 if o.rep is None else (0.04 if o.rep.id == BIG_USER_ID else 0.13)
        if r < rep_share:
            assert o.rep is not None
            return o.rep
        return o.buyer if r < rep_share + (1 - rep_share) * 0.52 else o.supplier
