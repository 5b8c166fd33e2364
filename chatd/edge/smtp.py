"""The inbound SMTP edge: aiosmtpd on chatd's own event loop, for reply by e-mail.

RCPT TO and DATA each call one use case of chatd.mail.inbound and turn its
answer, or its refusal (a ChatError), into an SMTP reply; nothing here decides
who may post what. One reply address per transaction: a second one is answered
452 (RFC 5321 4.5.3.1.10), so the sending server delivers it in a transaction of
its own and each recipient gets the answer meant for it.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from chatd.attachments import UnsupportedType
from chatd.config import EmailConfig
from chatd.errors import ChatError
from chatd.mail.addresses import NotOurDomain
from chatd.mail.inbound import Inbound

log = logging.getLogger("chatd.mail")

# error code -> (SMTP reply code, enhanced status code, RFC 3463)
SMTP_REPLIES: dict[str, tuple[int, str]] = {
    "not_found": (550, "5.1.1"),  # no such reply address, or a bad or revoked token
    "forbidden": (550, "5.7.1"),  # the chat is closed
    "unauthorized": (550, "5.7.1"),
    "blocked_content": (550, "5.7.1"),  # the contact filter
    "bad_request": (554, "5.6.0"),  # empty once stripped, too many files, ...
    "too_large": (552, "5.3.4"),  # text or a file over its limit
    "conflict": (451, "4.3.0"),
    "rate_limited": (451, "4.7.1"),  # try again later: the sending server does
    "unavailable": (451, "4.3.0"),
    "internal": (451, "4.3.0"),
}


def reply_for(exc: ChatError) -> str:
    """The SMTP reply line for a refusal."""
    if isinstance(exc, NotOurDomain):
        code, status = 550, "5.7.1"
    elif isinstance(exc, UnsupportedType):
        code, status = 554, "5.6.1"
    else:
        code, status = SMTP_REPLIES.get(exc.code, (451, "4.3.0"))
    return f"{code} {status} {_one_line(exc.message)}"


def _one_line(text: str) -> str:
    return " ".join(text.split())[:400]


class Handler:
    """aiosmtpd's hooks: RCPT (the address) and DATA (the reply)."""

    def __init__(self, inbound: Inbound) -> None:
        self.inbound = inbound

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        try:
            rcpt = await self.inbound.recipient(address)
        except ChatError as exc:
            log.info("RCPT refused: %s", exc.message)
            return reply_for(exc)
        except Exception:  # noqa: BLE001 - a defect: the sending server tries again later
            log.exception("RCPT failed")
            return "451 4.3.0 internal error; try again later"
        if envelope.rcpt_tos:
            first = self._token(envelope.rcpt_tos[0])
            if first == rcpt.token:
                return "250 2.1.5 OK (the same reply address again)"
            return "452 4.5.3 one reply address per message: send it again for this one"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    def _token(self, address: str) -> str | None:
        try:
            return self.inbound.addresses.token_id(address)
        except ChatError:
            return None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        try:
            done = await self.inbound.deliver(envelope.rcpt_tos[0], raw, envelope.mail_from or "")
        except ChatError as exc:
            log.info("reply refused: %s", exc.message)
            return reply_for(exc)
        except Exception:  # noqa: BLE001 - a defect: refused for now, the sending server retries (stored once)
            log.exception("reply failed")
            return "451 4.3.0 internal error; try again later"
        return f"250 2.0.0 {_one_line(done.note)}"


class Listener:
    """The listening socket and its sessions: started and stopped by the composition root."""

    def __init__(self, inbound: Inbound, cfg: EmailConfig) -> None:
        self.handler = Handler(inbound)
        self.cfg = cfg
        self._server: asyncio.Server | None = None
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    def _session(self) -> SMTP:
        smtp = SMTP(
            self.handler,
            data_size_limit=self.cfg.max_message_bytes,
            enable_SMTPUTF8=True,
            hostname=self.cfg.reply_domain,  # never a DNS lookup per connection (socket.getfqdn)
            ident="chatd",
            loop=asyncio.get_running_loop(),
        )
        self._sessions.add(smtp)
        return smtp

    async def start(self) -> None:
        # aiosmtpd logs every session and command at INFO, reply addresses (credentials) included
        logging.getLogger("mail.log").setLevel(max(logging.WARNING, logging.getLogger("mail.log").level))
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._session, self.cfg.inbound_host, self.cfg.inbound_port)
        log.info("reply by e-mail: SMTP on %s:%d for @%s", self.cfg.inbound_host, self.port, self.cfg.reply_domain)

    @property
    def port(self) -> int:
        assert self._server is not None  # started
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def aclose(self) -> None:
        """Stop listening and end every session (a reply cut off is not answered 250,
        so its sender delivers it again: it is stored once)."""
        if self._server is None:
            return
        self._server.close()
        for smtp in list(self._sessions):
            transport: Any = smtp.transport
            if transport is not None:
                transport.close()
        await self._server.wait_closed()
        self._server = None
