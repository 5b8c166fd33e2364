"""Notification e-mail: rendered from templates the operator can replace, sent
over SMTP with aiosmtplib (STARTTLS on smtp://, TLS from the start on smtps://).

Every value put into the HTML body is escaped; message texts are the stored
(contact-filtered) texts, so an e-mail never carries the other side's contact
details. Times are written in the recipient's locale (Babel, CLDR data), UTC.
"""

from __future__ import annotations

import html
import ssl
import string
import urllib.parse
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate
from importlib import resources
from pathlib import Path

import aiosmtplib
import msgspec
from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime

from chatd.config import EmailConfig
from chatd.wire import Message

TEMPLATES = ("notification.subject", "notification.txt", "notification.html")


class MailMessage(msgspec.Struct, frozen=True):
    """One message as a notification shows it."""

    sender: str
    ts: int
    text: str
    attachments: int = 0


class Notice(msgspec.Struct, frozen=True):
    """What one notification e-mail says (built by chatd.notifier)."""

    notification_id: str
    to: str
    recipient_name: str
    locale: str | None
    order: str
    status: str
    headline: str
    messages: list[MailMessage]
    link: str
    reply_to: str | None = None


def mail_messages(msgs: list[Message]) -> list[MailMessage]:
    return [MailMessage(m.sender.name, m.ts, m.text, len(m.attachments)) for m in msgs]


def _locale(tag: str | None) -> Locale:
    try:
        return Locale.parse((tag or "en").replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


class Mailer:
    """Renders and sends notification e-mail for `[email]`."""

    def __init__(self, cfg: EmailConfig) -> None:
        self.cfg = cfg
        url = urllib.parse.urlsplit(cfg.smtp_url)
        self.host = url.hostname or "localhost"
        self.tls = url.scheme == "smtps"
        self.port = url.port or (465 if self.tls else 587)
        self.username = urllib.parse.unquote(url.username) if url.username else None
        self.password = urllib.parse.unquote(url.password) if url.password else None
        self.domain = cfg.from_address.rpartition("@")[2] or "localhost"
        self.templates = {name: string.Template(self._template(name)) for name in TEMPLATES}

    def _template(self, name: str) -> str:
        if self.cfg.templates_dir and (Path(self.cfg.templates_dir) / name).is_file():
            return (Path(self.cfg.templates_dir) / name).read_text(encoding="utf-8")
        return resources.files("chatd.mail").joinpath("templates", name).read_text(encoding="utf-8")

    def render(self, n: Notice) -> EmailMessage:
        loc = _locale(n.locale)

        def when(ts: int) -> str:
            return format_datetime(datetime.fromtimestamp(ts / 1000, UTC), "medium", tzinfo=UTC, locale=loc) + " UTC"

        def files(m: MailMessage) -> str:
            return f" [{m.attachments} attachment{'s' if m.attachments != 1 else ''}]" if m.attachments else ""

        plain = "".join(f"{m.sender} ({when(m.ts)}):\n{m.text}{files(m)}\n\n" for m in n.messages)
        rich = "".join(
            f'<p><strong>{html.escape(m.sender)}</strong> <span style="color: #777">{html.escape(when(m.ts))}</span>'
            f"<br>{html.escape(m.text + files(m)).replace(chr(10), '<br>')}</p>\n"
            for m in n.messages
        )
        values = {
            "recipient_name": n.recipient_name,
            "headline": n.headline,
            "order": n.order,
            "status": n.status,
            "link": n.link,
            "lang": loc.language,
        }
        escaped = {k: html.escape(v) for k, v in values.items()}
        msg = EmailMessage()
        msg["Subject"] = self.templates["notification.subject"].safe_substitute(values).strip().splitlines()[0]
        msg["From"] = self.cfg.from_address
        msg["To"] = n.to
        msg["Date"] = formatdate(localtime=False)
        # one Message-ID per notification: a resend after a crash is the same mail
        msg["Message-ID"] = f"<{n.notification_id}@{self.domain}>"
        msg["X-Chatd-Notification"] = n.notification_id
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: auto-responders leave it unanswered
        if n.reply_to:
            msg["Reply-To"] = n.reply_to
        msg.set_content(self.templates["notification.txt"].safe_substitute(values, messages=plain))
        msg.add_alternative(self.templates["notification.html"].safe_substitute(escaped, messages=rich), subtype="html")
        return msg

    async def send(self, msg: EmailMessage) -> None:
        """One SMTP exchange; raises aiosmtplib.SMTPException (or OSError) on failure.
        A failed or cancelled one closes the connection at once: aiosmtplib.send's
        QUIT would wait up to `timeout_s` more on a server that stopped answering, so
        a caller's bound (chatd.notifier's SEND_S) would not hold."""
        context = ssl.create_default_context(cafile=self.cfg.tls_ca_file or None)
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.tls,
            start_tls=None if self.tls else True,
            tls_context=context,
            timeout=self.cfg.timeout_s,
        )
        try:
            await client.connect()  # STARTTLS and AUTH too
            await client.send_message(msg)
            try:
                await client.quit()
            except aiosmtplib.SMTPException:  # the mail was accepted: sent all the same
                pass
        finally:
            client.close()
