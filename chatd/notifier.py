"""Delivering notifications (scheduled by chatd.notifications in the store): caps,
the `notification` webhook and built-in e-mail.

Each instance claims due notifications with a lease, one right before its
delivery, and delivers up to SENDS at once: a stalled mail server holds up one
place, not every notification behind it. For each: over a cap
(`max_per_order_per_day`, `max_per_day`, a rolling day) it waits until the
cap allows and keeps collecting messages; otherwise the e-mail goes out
(when configured and the recipient has an address and wants e-mail, within
SEND_S) and then, in one store transaction, the notification is marked sent
and its webhook event written to the outbox. A crash between the two sends
the e-mail again, with the same Message-ID: at least once, each with an id
for de-duplication. What it covers is decided when it is sent, from the
recipient's role then: notes only to those who may see them, nothing to
someone who left the order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from chatd.auth import permissions
from chatd.config import NotifyConfig
from chatd.errors import ChatError
from chatd.mail.outbound import Mailer, Notice, mail_messages
from chatd.notifications import STAFF
from chatd.store.base import Store
from chatd.store.records import Contact, NotificationRow, OrderRecord
from chatd.tasks import stop
from chatd.wire import Message

log = logging.getLogger("chatd.notifier")

DAY_MS = 86_400_000
LEASE_MS = 120_000  # one delivery (an SMTP exchange included) finishes well within this
SEND_S = 60.0  # one e-mail, connection to QUIT ([email] timeout_s bounds each command, not the whole)
# the lease must outlast the e-mail (and the store writes after it), or another instance
# claims the notification while it is still being sent and sends it too
assert SEND_S * 1000 < LEASE_MS
MESSAGES = 20  # the newest messages a notification carries
SENDS = 8  # deliveries under way at once, per instance (each one SMTP connection at most)
RETRY_MS = (30_000, 120_000, 600_000, 3_600_000)  # after a failed e-mail, then every hour

ReplyAddress = Callable[[str, str], Awaitable[str | None]]  # (user, order) -> a Reply-To address


def _log_failure(task: asyncio.Task[int]) -> None:
    """A delivery the background loop started: nobody awaits it, so its failure is logged here."""
    if task.cancelled() or (exc := task.exception()) is None:
        return
    if isinstance(exc, ChatError):  # the store is away: the notification is claimed again after its lease
        log.warning("notification delivery: %s", exc)
    else:
        log.error("notification delivery failed", exc_info=exc)


def headline(reason: str, order: OrderRecord, count: int) -> str:
    if reason == "dispute":
        opened = bool(order.dispute and order.dispute.open)
        return f"A dispute was {'opened' if opened else 'closed'} on order {order.id}"
    if reason == "sla":
        return f"A buyer waits too long for a reply on order {order.id}"
    if reason == "help":
        return f"Help was requested on order {order.id}"
    if reason == "status":
        return f"Order {order.id} is now {order.status}"
    if count >= MESSAGES:
        return f"New messages on order {order.id}"
    return f"{count} new message{'s' if count != 1 else ''} on order {order.id}"


class Notifier:
    def __init__(
        self,
        store: Store,
        cfg: NotifyConfig,
        *,
        mailer: Mailer | None = None,
        webhooks: bool = False,
        reply_address: ReplyAddress | None = None,
        clock: Callable[[], float] = time.time,
        send_s: float = SEND_S,
    ) -> None:
        self.store = store
        self.cfg = cfg
        self.mailer = mailer  # None: no built-in e-mail
        self.webhooks = webhooks  # [webhooks] url set: a `notification` event per notification
        self.reply_address = reply_address
        self.clock = clock  # wall-clock seconds (tests inject one)
        self.send_s = min(send_s, SEND_S)  # the bound of one e-mail (tests shorten it), never past the lease
        self._task: asyncio.Task[None] | None = None
        self._places = asyncio.Semaphore(SENDS)  # shared by the background loop and `deliver_due`
        self._under_way: set[asyncio.Task[int]] = set()
        self._freed = asyncio.Event()  # a delivery ended: its place may take the next one due
        self.sent = 0
        self._busy: dict[str, int] = {}  # recipient -> their deliveries under way here (for the day's cap)
        self.backlog = (0, 0)  # (pending, due) as of the last round, for /metrics

    async def start(self) -> None:
        self.backlog = await self.store.notification_backlog(self._now())
        self._task = asyncio.create_task(self._run(), name="chatd-notifier")

    async def aclose(self) -> None:
        await stop(self._task)  # first: a delivery cancelled below wakes no loop
        await stop(*self._under_way)

    def _now(self) -> int:
        return int(self.clock() * 1000)

    async def _run(self) -> None:
        """Every poll_s, and as soon as a place frees while every place was taken, fill the
        free places with due notifications. Never waits for the deliveries themselves: one
        stalled e-mail keeps its own place, and what falls due meanwhile takes another."""
        tidied = -math.inf
        while True:
            self._freed.clear()  # a delivery ending from here on wakes the wait below
            full = False
            try:
                full = await self._fill()
                if time.monotonic() - tidied >= self.cfg.poll_s:  # once a poll, not for every place freed
                    await self.store.prune_notifications(self._now() - 2 * DAY_MS)
                    self.backlog = await self.store.notification_backlog(self._now())
                    tidied = time.monotonic()
            except ChatError as exc:  # the store is away: the next round catches up
                log.warning("notifications: %s", exc)
            except Exception:  # a defect: logged, and the next round runs all the same
                log.exception("notifications: delivery round failed")
            if full:  # more may be due: claim again once a place frees (or after poll_s)
                # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancel that comes as the
                # event is set, and the loop would run on
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.cfg.poll_s):
                        await self._freed.wait()
            else:
                await asyncio.sleep(self.cfg.poll_s)

    async def _fill(self) -> bool:
        """Claim due notifications into the places free now, each delivered in the
        background; True: stopped because every place is taken."""
        while not self._places.locked():
            task = await self._claim()
            if task is None:
                return False
            task.add_done_callback(_log_failure)
        return True

    async def deliver_due(self) -> int:
        """Deliver (or postpone) every notification due now, up to SENDS at once (places
        shared with the background loop); how many of those it claimed went out, once all of
        them have ended. Each is claimed when a place is free, right before its delivery:
        claimed in a batch, the later ones' leases ran out while the earlier ones were
        e-mailed, and another instance sent them too."""
        tasks: list[asyncio.Task[int]] = []
        try:
            while (task := await self._claim()) is not None:
                tasks.append(task)
        except asyncio.CancelledError:  # stopping: so do the deliveries under way
            for task in tasks:
                task.cancel()
            raise
        finally:  # the others' deliveries end as they would, whatever became of one
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return sum(o for o in outcomes if isinstance(o, int))

    async def _claim(self) -> asyncio.Task[int] | None:
        """Wait for a free place, claim one due notification into it and start its
        delivery; None (the place given back) when nothing is due."""
        await self._places.acquire()
        try:
            now = self._now()
            due = await self.store.claim_notifications(now, now + LEASE_MS, 1)
        except BaseException:
            self._places.release()
            raise
        if not due:
            self._places.release()
            return None
        task = asyncio.create_task(self._deliver_in(due[0], now))
        self._under_way.add(task)
        task.add_done_callback(self._under_way.discard)
        return task

    async def _deliver_in(self, row: NotificationRow, now: int) -> int:
        try:
            sent = await self._deliver(row, now)
        finally:
            self._places.release()
            self._freed.set()
        self.sent += sent
        return sent

    async def _deliver(self, row: NotificationRow, now: int) -> int:
        counts = await self.store.sent_counts(row.user, row.order, now - DAY_MS)
        waits = [
            oldest + DAY_MS
            for count, cap, oldest in (
                (counts.order, self.cfg.max_per_order_per_day, counts.order_oldest),
                (counts.user, self.cfg.max_per_day, counts.user_oldest),
            )
            if count >= cap and oldest is not None
        ]
        busy = self._busy.get(row.user, 0)  # under way to them here: not counted yet, but as good as sent
        if not waits and busy and counts.user + busy >= self.cfg.max_per_day:
            waits = [now + int(self.send_s * 1000)]  # the cap's last place is taken: after that one ends
        if waits:  # over a cap: the messages wait for the next one allowed
            await self.store.postpone_notification(row.id, max(waits))
            return 0
        self._busy[row.user] = busy + 1
        try:
            return await self._send(row, now)
        finally:
            self._busy[row.user] -= 1
            if not self._busy[row.user]:
                del self._busy[row.user]

    async def _send(self, row: NotificationRow, now: int) -> int:
        """Deliver what the notification covers now (within the caps)."""
        order = await self.store.get_order(row.order)
        role = self._role_now(row, order)
        if order is None or role is None:  # no longer on the order: nothing to tell them
            await self.store.finish_notification(row.id, now, row.last_seq, [])
            return 0
        msgs = await self._messages(row, role)
        if not msgs:  # only notes, for someone who may not see them (or their own words)
            await self.store.finish_notification(row.id, now, row.last_seq, [])
            return 0
        contact = (await self.store.contacts([row.user])).get(row.user) or Contact()
        if row.user == STAFF:
            contact = Contact(self.cfg.staff_email or None)
        link = self.cfg.link_template.replace("{order}", urllib.parse.quote(order.id, safe=""))
        title = headline(row.reason, order, len(msgs))
        reply_to = None  # where an answer by e-mail goes (chatd.mail.addresses), for the e-mail and the webhook
        if self.reply_address is not None and row.user != STAFF:
            reply_to = await self.reply_address(row.user, order.id)
        if not await self._email(row, order, msgs, contact, link, title, reply_to, now):
            return 0
        payload = self._payload(row, order, role, msgs, contact, link, title)
        payload["reply_to"] = reply_to
        events = [("notification", payload)] if self.webhooks else []
        return int(await self.store.finish_notification(row.id, now, row.last_seq, events))

    async def _email(
        self,
        row: NotificationRow,
        order: OrderRecord,
        msgs: list[Message],
        contact: Contact,
        link: str,
        title: str,
        reply_to: str | None,
        now: int,
    ) -> bool:
        """Send the e-mail if there is one to send; False: it failed and is due again later."""
        if self.mailer is None or not contact.email:
            return True
        if row.user != STAFF and not (await self.store.notify_prefs(row.user)).email:
            return True
        name = self._name(order, row.user)
        notice = Notice(
            row.id,
            contact.email,
            name,
            contact.locale,
            order.id,
            order.status,
            title,
            mail_messages(msgs),
            link,
            reply_to,
        )
        try:
            mail = self.mailer.render(notice)
            async with asyncio.timeout(self.send_s):  # a stalled server: failed, before the lease runs out
                await self.mailer.send(mail)
        except Exception as exc:  # noqa: BLE001 - any SMTP or network failure, or no end in time: try again later
            why = f"no end within {self.send_s:g} s" if type(exc) is TimeoutError else exc
            log.warning("notification %s: e-mail failed: %s", row.id, why)
            retry = RETRY_MS[min(row.attempts, len(RETRY_MS) - 1)]
            await self.store.postpone_notification(row.id, now + retry, failed=True)
            return False
        return True

    @staticmethod
    def _role_now(row: NotificationRow, order: OrderRecord | None) -> str | None:
        if row.user == STAFF:
            return "staff"
        return order.roles().get(row.user) if order is not None else None

    async def _messages(self, row: NotificationRow, role: str) -> list[Message]:
        """The newest (up to MESSAGES) of those it covers that `role` may see, but for the
        recipient's own: nothing new to them (sending reads the order, chatd.notifications)."""
        msgs, _ = await self.store.history(row.order, permissions.sees_notes(role), row.last_seq + 1, None, MESSAGES)
        return [m for m in msgs if m.seq >= row.first_seq and m.sender.id != row.user]

    @staticmethod
    def _name(order: OrderRecord, user: str) -> str:
        for p in order.participants():
            if p.id == user:
                return p.name
        return "Staff" if user == STAFF else user

    def _payload(
        self,
        row: NotificationRow,
        order: OrderRecord,
        role: str,
        msgs: list[Message],
        contact: Any,
        link: str,
        title: str,
    ) -> dict[str, Any]:
        return {
            "notification_id": row.id,
            "order": order.id,
            "reason": row.reason,
            "headline": title,
            "recipient": {
                "id": None if row.user == STAFF else row.user,
                "name": self._name(order, row.user),
                "role": role,
                "email": contact.email,
                "phone": contact.phone,
                "locale": contact.locale,
            },
            "status": order.status,
            "messages": msgs,
            "link": link or None,
        }
