"""Attachments: files on orders, stored once by content, served only to those who may see them.

An upload streams to a partial file chunk by chunk (hashed on the way, never
held in memory), its type is sniffed from the content, never from the name,
against an allow-list (chatd.filetypes), and the file is given its name, its
sha256, in the file store (chatd.files: a directory, maybe shared by several
hosts); metadata rows live in the store. A message
carries attachments by id: the store writes the link rows in the message's own
transaction. Uploads that no message carries are deleted after
`unreferenced_ttl_s` by a background task.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import unicodedata
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import quote

from chatd import contact_filter
from chatd.auth import permissions
from chatd.auth.tokens import Identity
from chatd.config import AttachmentsConfig
from chatd.errors import BadRequest, NotFound, RateLimited, TooLarge
from chatd.files import FileStore
from chatd.filetypes import HEAD_BYTES, TextCheck, identify, is_executable
from chatd.store.base import Store
from chatd.store.records import AttachmentRow, OrderRecord
from chatd.store.rows import now_ms
from chatd.tasks import stop
from chatd.wire import AttachmentRef

log = logging.getLogger("chatd.attachments")


class UnsupportedType(BadRequest):
    """The content is not of an allowed type (or is an executable in disguise)."""

    @property
    def http_status(self) -> int:
        return 415


# --- names and headers -----------------------------------------------------------------


def clean_name(filename: str | None) -> str:
    """A display name: no path, no control or bidi-override characters, at most 200 characters."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"))
    name = name.strip().strip(".").strip()
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 200 - len(ext) - 1] + "." + ext) if dot and len(ext) <= 16 else name[:200]
    return name or "file"


def content_disposition(name: str) -> str:
    """`attachment` with an ASCII-safe `filename` and the exact name in `filename*` (RFC 6266)."""
    ascii_name = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\;%' else "_" for c in name).strip() or "file"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


# --- the service -----------------------------------------------------------------------


class ByteBudget:
    """Bytes uploaded per user and minute, for every role: the count of uploads
    exempts staff and bots, but a bot token must not fill the disk either.

    A token bucket holding a minute's worth; each chunk draws on it as it
    streams (concurrent uploads of one user share it), so what one user can
    write is bounded by `per_minute` plus the rate times the time. An upload
    that would overdraw it is refused with 429, its partial file removed.
    """

    def __init__(self, per_minute: int, clock: Callable[[], float]) -> None:
        self.cap = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # user -> (bytes left, when)

    def _left(self, user: str, now: float) -> float:
        left, when = self._buckets.get(user, (self.cap, now))
        return min(self.cap, left + (now - when) * self.rate)

    def check(self, user: str) -> None:
        """Refuse a new upload while the budget is spent."""
        left = self._left(user, self.clock())
        if left <= 0:
            raise RateLimited(f"too many bytes uploaded: try again in {max(1.0, -left / self.rate):.0f} s")

    def take(self, user: str, n: int) -> None:
        now = self.clock()
        left = self._left(user, now) - n
        self._buckets[user] = (left, now)
        if left < 0:
            raise RateLimited(f"too many bytes uploaded: try again in {max(1.0, -left / self.rate):.0f} s")
        if len(self._buckets) > 10_000:  # forget the full buckets
            self._buckets = {u: (b, w) for u, (b, w) in self._buckets.items() if b + (now - w) * self.rate < self.cap}


class Attachments:
    """Uploads, the link to messages, who may download, and the clean-up of unused uploads."""

    def __init__(
        self,
        store: Store,
        files: FileStore,
        cfg: AttachmentsConfig,
        contact_filter: str = "off",
        clock: Callable[[], float] = time.monotonic,
        retention_days: float = 0.0,
        gate: Callable[[OrderRecord, str], None] | None = None,
    ) -> None:
        self.store = store
        self.files = files
        self.max_bytes = cfg.max_bytes
        self.ttl_ms = int(cfg.unreferenced_ttl_s * 1000)
        self.retention_ms = int(retention_days * 86_400_000)  # [retention] attachments_days; 0: kept
        self.interval_s = cfg.cleanup_interval_s
        self.max_per_message = cfg.max_per_message
        self.contact_filter = contact_filter  # [filter] mode, for file names
        self.per_minute = cfg.uploads_per_minute
        self._buckets: dict[str, tuple[float, float]] = {}  # user -> (tokens, when)
        self.clock = clock  # upload rate buckets (tests inject their own)
        self.bytes = ByteBudget(cfg.upload_bytes_per_minute, lambda: self.clock())
        # refuses an upload to an order whose chat is closed to the uploader (chat's check_open)
        self.gate = gate
        self._placing = asyncio.Lock()  # placing a file + its row vs deleting rows + orphaned files
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.files.start()  # removes partial uploads of a crashed run
        self._task = asyncio.create_task(self._run_cleanup(), name="chatd-attachments-cleanup")

    async def aclose(self) -> None:
        await stop(self._task)
        self._task = None

    # --- upload ----------------------------------------------------------------------

    async def _role(self, ident: Identity, order_id: str) -> tuple[OrderRecord, str]:
        order = await self.store.get_order(order_id)
        role = (
            None if order is None else permissions.order_role(ident.id, ident.role, ident.orders, order_id, order.slots)
        )
        if order is None or role is None:
            raise NotFound("no such order", ref=order_id)
        return order, role

    def _take_token(self, ident: Identity) -> None:
        """A token bucket per user: `uploads_per_minute`, as a burst too. Each upload
        may be 20 MB of disk until the clean-up, so one account cannot fill it."""
        if ident.role in permissions.RATE_EXEMPT:
            return
        now, rate = self.clock(), self.per_minute / 60.0
        tokens, when = self._buckets.get(ident.id, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - when) * rate)
        if tokens < 1.0:
            raise RateLimited(f"too many uploads: try again in {(1.0 - tokens) / rate:.0f} s")
        self._buckets[ident.id] = (tokens - 1.0, now)
        if len(self._buckets) > 10_000:  # forget the full buckets
            full = self.per_minute - 1.0
            self._buckets = {u: (t, w) for u, (t, w) in self._buckets.items() if t + (now - w) * rate < full}

    def _screen_name(self, name: str, role: str) -> str:
        """A file name reaches the other side with the message, like its text:
        the contact filter applies to it (whether the file will go with a note
        is not known yet). `block` refuses the upload, `mask` keeps the masked name,
        cut again to the bound of a name (masking lengthens it)."""
        if self.contact_filter == "off" or not contact_filter.applies(role, "text"):
            return name
        return clean_name(contact_filter.screen(name, self.contact_filter)[0])

    async def upload(
        self, ident: Identity, order_id: str, filename: str | None, chunks: AsyncIterator[bytes]
    ) -> AttachmentRef:
        """Store one file for `order_id` from `chunks`; only the current chunk is in memory."""
        order, role = await self._role(ident, order_id)
        if self.gate is not None:
            self.gate(order, role)
        self.bytes.check(ident.id)
        self._take_token(ident)
        name = self._screen_name(clean_name(filename), role)
        text = TextCheck()
        head = b""
        size = 0
        async with self.files.put() as part:  # removed unless placed
            async for chunk in chunks:
                if not chunk:
                    continue
                size += len(chunk)
                self.bytes.take(ident.id, len(chunk))
                if size > self.max_bytes:
                    raise TooLarge(f"attachments are limited to {self.max_bytes} bytes")
                if len(head) < HEAD_BYTES:
                    head += chunk[: HEAD_BYTES - len(head)]
                    if len(head) >= 4 and is_executable(head):
                        raise UnsupportedType("executables are not accepted")
                text.feed(chunk)
                await part.write(chunk)
            text.feed(b"", final=True)
            sha = await part.finish()
            if size == 0:
                raise BadRequest("the file is empty")
            mime = await asyncio.to_thread(identify, part.path, head, text.ok)
            if mime is None:
                raise UnsupportedType("this type of file is not accepted (images, PDF, office documents, text)")
            att = AttachmentRef(id=secrets.token_urlsafe(16), name=name, mime=mime, size=size)
            row = AttachmentRow(att.id, order_id, ident.id, att.name, att.mime, att.size, sha, now_ms())

            # row first, then the file: a clean-up (here or in another process on
            # the same file store) that saw no row for this content re-checks
            # before it deletes the file (see `cleanup`)
            async with self._placing:
                await self.store.add_attachment(row)
                try:
                    await part.place()
                except BaseException:
                    await self.store.delete_attachment(att.id)
                    raise
        return att

    # --- sending -----------------------------------------------------------------------

    async def resolve(self, sender_id: str, order_id: str, ids: list[str], ref: str | None) -> list[AttachmentRef]:
        """The refs for a `send`: each id uploaded by the sender to this order, and either
        already on one of their messages or not yet expired. Otherwise `bad_request`."""
        unique = list(dict.fromkeys(ids))
        if len(unique) > self.max_per_message:
            raise BadRequest(f"at most {self.max_per_message} attachments per message", ref=ref)
        cutoff = now_ms() - self.ttl_ms
        out = []
        for att_id in unique:
            row = await self.store.attachment(att_id)
            if (
                row is None
                or row.order_id != order_id
                or row.uploader_id != sender_id
                or (not row.linked and row.created_ts < cutoff)
            ):
                raise BadRequest(f"unknown attachment {att_id}", ref=ref)
            out.append(AttachmentRef(att_id, row.name, row.mime, row.size))
        return out

    # --- download ----------------------------------------------------------------------

    async def locate(self, ident: Identity | None, att_id: str) -> tuple[Path, AttachmentRef]:
        """The file and its metadata, if `ident` (None: the api key) may see a message
        carrying it, or it is their own upload not sent yet. Otherwise `not_found`."""
        row = await self.store.attachment(att_id)
        if row is None:
            raise NotFound("no such attachment")
        if ident is not None:
            links = await self.store.attachment_links(att_id)
            allowed = False
            for order_id, kind in links:
                if await self._may_see(ident, order_id, kind):
                    allowed = True
                    break
            if not allowed and not links and row.uploader_id == ident.id:
                allowed = await self._may_see(ident, row.order_id, "text")  # their upload, still on the order
            if not allowed:
                raise NotFound("no such attachment")
        if not await self.files.exists(row.sha256):
            raise NotFound("no such attachment")
        return self.files.path(row.sha256), AttachmentRef(att_id, row.name, row.mime, row.size)

    async def _may_see(self, ident: Identity, order_id: str, kind: str) -> bool:
        order = await self.store.get_order(order_id)
        if order is None:
            return False
        role = permissions.order_role(ident.id, ident.role, ident.orders, order_id, order.slots)
        return role is not None and (kind != "note" or permissions.sees_notes(role))

    # --- clean-up ----------------------------------------------------------------------

    async def _run_cleanup(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.cleanup()
            except Exception:  # noqa: BLE001 - try again next round
                log.exception("attachment clean-up failed")

    async def cleanup(self) -> int:
        """Delete uploads no message carries that are older than the TTL, and with
        `[retention] attachments_days` the uploads of chats closed that long (no open
        dispute); return how many."""
        now = now_ms()
        async with self._placing:
            count, orphans = await self.store.delete_unreferenced(now - self.ttl_ms)
            if self.retention_ms:
                expired, gone = await self.store.delete_expired(now - self.retention_ms)
                count, orphans = count + expired, [*orphans, *gone]
            for sha in orphans:
                await self._remove_orphan(sha)
        await self.files.sweep()
        if count:
            log.info("deleted %d unused uploads (%d files)", count, len(orphans))
        return count

    async def _remove_orphan(self, sha: str) -> None:
        """Out of sight first, then look again: an upload of the same content that
        committed meanwhile (maybe in another process) gets it back."""
        await self.files.delete(sha, keep=lambda: self.store.sha256_in_use(sha))
