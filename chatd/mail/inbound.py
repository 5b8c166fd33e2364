"""Reply by e-mail: a mail to a reply address becomes a chat message of its recipient.

The use case behind the inbound SMTP listener (chatd.edge.smtp), which only turns
its answers and refusals into SMTP replies. A reply goes through the same checks
as a socket's `send`: the token and the user's slot now (chatd.mail.addresses), a
posting bucket per user (`[limits] rate_per_s` / `rate_burst`), the text's length,
blankness and the contact filter (`Chat.check_send`), each file screened as an
upload (`Attachments.upload`: type sniffing, size, the upload budgets, a closed
chat), then `Chat.send`, which stores it once per `client_id` and publishes it. A
repeat (the same `client_id`, stored already) is answered before all of these.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable

import msgspec

from chatd.attachments import Attachments, clean_name
from chatd.auth.tokens import Identity
from chatd.blank import is_blank
from chatd.chat import Chat
from chatd.config import LimitsConfig
from chatd.errors import BadRequest, ChatError, RateLimited
from chatd.mail import parse, quotes
from chatd.mail.addresses import Recipient, ReplyAddresses
from chatd.rooms.hub import Bucket
from chatd.store.rows import Actor
from chatd.wire import Ack

CHUNK = 65536


class EmptyReply(BadRequest):
    """Nothing is left once quoted history and signatures are removed, and no file."""


class Delivered(msgspec.Struct, frozen=True):
    """What became of a mail that was not refused."""

    ack: Ack | None  # None: not posted (an automatic message)
    note: str  # for the SMTP answer


class Inbound:
    """Mail to reply addresses, posted as their recipients."""

    def __init__(
        self,
        chat: Chat,
        addresses: ReplyAddresses,
        limits: LimitsConfig,
        attachments: Attachments | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.chat = chat
        self.addresses = addresses
        self.attachments = attachments  # None: a mail with files is refused
        self.rate_per_s = limits.rate_per_s
        self.burst = limits.rate_burst
        self.clock = clock  # the posting buckets (tests inject one)
        self._buckets: dict[str, Bucket] = {}  # user -> posting bucket (per instance, as the socket's)

    async def recipient(self, address: str) -> Recipient:
        """RCPT TO: whom a mail to `address` would post as; NotFound subclasses
        (chatd.mail.addresses) for another domain, another mailbox, a bad token."""
        return await self.addresses.recipient(address)

    async def deliver(self, address: str, raw: bytes, mail_from: str) -> Delivered:
        """DATA: post the mail `raw` to `address`'s order as its recipient. Raises
        the ChatError of the refusal; a repeat (the same `client_id`) stores nothing
        and is answered "already posted"."""
        rcpt = await self.addresses.recipient(address)  # again: revoked or left since RCPT?
        try:
            mail = parse.read(raw, mail_from)
        except Exception as exc:  # noqa: BLE001 - the stdlib parser's defects on hostile input: a refusal, not a retry
            raise BadRequest("the message could not be read as MIME") from exc
        if mail.automatic is not None:
            return Delivered(None, f"{mail.automatic}: not posted")
        # a repeat is answered before any check or upload: its files are stored already, and
        # uploading them again would leave orphans, spend the upload budgets, or meet a chat closed since
        original = await self.chat.store.sent(rcpt.order_id, rcpt.user_id, mail.client_id)
        if original is not None:
            ack = Ack(rcpt.order_id, mail.client_id, original.seq, original.ts, True)
            return Delivered(ack, f"already posted to the order chat as message {ack.seq}")
        text = quotes.strip(mail.text)
        files = [f for f in mail.files if f.data]
        if files and self.attachments is None:
            raise BadRequest("this server does not take attachments", ref=mail.client_id)
        if self.attachments is not None and len(files) > self.attachments.max_per_message:
            raise BadRequest(f"at most {self.attachments.max_per_message} attachments per message")
        if is_blank(text) and not files:
            raise EmptyReply("the reply is empty once quoted text and signatures are removed: nothing was posted")
        self._take_token(rcpt.user_id)
        actor = Actor(rcpt.user_id, rcpt.name, rcpt.role)
        await self.chat.check_send(actor, rcpt.order_id, mail.client_id, text, bool(files))
        ids = []
        if files:
            assert self.attachments is not None  # refused above otherwise
            ident = Identity(rcpt.user_id, rcpt.name, rcpt.role, None, math.inf)
            for f in files:
                try:
                    ref = await self.attachments.upload(ident, rcpt.order_id, f.name, _chunks(f.data))
                except ChatError as exc:
                    exc.message = f"{clean_name(f.name)}: {exc.message}"  # which file, in the sender's bounce
                    raise
                ids.append(ref.id)
        ack = await self.chat.send(actor, rcpt.order_id, mail.client_id, text, "text", ids or None)
        done = "already posted" if ack.duplicate else "posted"  # a repeat delivered at the same time
        return Delivered(ack, f"{done} to the order chat as message {ack.seq}")

    def _take_token(self, user: str) -> None:
        """One posting token per reply, per user: a mail loop or a flood cannot fill the chat."""
        now = self.clock()
        bucket = self._buckets.get(user)
        if bucket is None:
            bucket = self._buckets[user] = Bucket(self.rate_per_s, self.burst, now)
        if not bucket.take(now):
            raise RateLimited("too many replies by e-mail; try again later")
        if len(self._buckets) > 10_000:  # forget the full ones
            self._buckets = {
                u: b for u, b in self._buckets.items() if b.tokens + (now - b.stamp) * b.rate_per_s < b.burst
            }


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), CHUNK):
        yield data[i : i + CHUNK]
