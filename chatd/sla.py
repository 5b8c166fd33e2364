"""Escalating buyers who wait too long for a reply (`[sla] reply_within_s`).

Every `check_every_s` each instance asks the store for orders whose buyer has
waited longer than that and were not escalated yet, and escalates each once:
the store flags the waiting period, posts a system note (which only the
supplier side, staff and bots see: a note) and writes the `sla.breached`
webhook, in one transaction that another instance cannot repeat. Then the
note and the `reply_state` go out like any message. The clock is injected
(tests move it; `sweep` runs one round).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from chatd import metrics
from chatd.chat import Chat
from chatd.errors import ChatError
from chatd.responses import breach_notice
from chatd.store.base import BreachEvents
from chatd.tasks import stop

log = logging.getLogger("chatd.sla")

BATCH = 200  # orders escalated per store read


class Escalator:
    def __init__(
        self,
        chat: Chat,
        reply_within_s: float,
        check_every_s: float = 60.0,
        *,
        events: BreachEvents | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.chat = chat
        self.store = chat.store
        self.reply_within_ms = int(reply_within_s * 1000)  # 0: never escalate
        self.notice = breach_notice(reply_within_s)
        self.check_every_s = check_every_s
        self.events = events  # the outbox events of an escalation (webhooks on)
        self.clock = clock  # wall-clock seconds (tests inject one)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.reply_within_ms:
            self._task = asyncio.create_task(self._run(), name="chatd-sla")

    async def aclose(self) -> None:
        await stop(self._task)

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except ChatError as exc:  # the store is away: the next round catches up
                log.warning("sla: %s", exc)
            except Exception:  # a defect: logged, and the next round runs all the same
                log.exception("sla: escalation round failed")
            await asyncio.sleep(self.check_every_s)

    async def sweep(self) -> int:
        """Escalate every buyer waiting too long right now; how many were escalated here."""
        if not self.reply_within_ms:
            return 0
        now = int(self.clock() * 1000)
        done = 0
        while True:
            due = await self.store.overdue(now - self.reply_within_ms, BATCH)
            for order_id, seq in due:
                # who is joined (any instance) reads the note live: no e-mail or webhook for them
                present = await self.chat.online_now(order_id)
                posted = await self.store.escalate(order_id, seq, now, self.notice, self.events, present)
                if posted is not None:
                    self.chat.publish_posted(posted, present)
                    metrics.SLA_BREACHES.inc()
                    done += 1
            if len(due) < BATCH:
                return done
