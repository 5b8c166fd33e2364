"""A real SMTP server on 127.0.0.1 (aiosmtpd) that requires STARTTLS with a throwaway
CA's certificate (trustme) and keeps every mail it is given; waiters wake on each.
After `hold()` it leaves each DATA unanswered until `release()` or `open()`: a
stalling server (a client that gives up meanwhile takes its mail with it)."""

from __future__ import annotations

import asyncio
import email
import socket
import ssl
from email.message import EmailMessage
from email.policy import default

from aiosmtpd.controller import Controller

from tests.support.hold import Holding


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpSink(Holding):
    def __init__(self, ca_file: str, cert) -> None:
        self.mails: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.fail_next = 0  # answer this many DATA commands with 451 first
        self._loop = asyncio.get_running_loop()
        self._new = asyncio.Event()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        self.port = free_port()
        self.ca_file = ca_file
        self.controller = Controller(
            self, hostname="127.0.0.1", port=self.port, tls_context=ctx, require_starttls=True, ready_timeout=10
        )

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd's handler hook
        gate = self.gate  # set and released on the test's loop, waited on the controller's
        if gate is not None:
            self._loop.call_soon_threadsafe(self._arrived, gate)
            await gate.wait()  # cancelled by aiosmtpd if the client goes away meanwhile
        if self.fail_next:
            self.fail_next -= 1
            self._loop.call_soon_threadsafe(self._new.set)
            return "451 4.3.0 try again later"
        mail = email.message_from_bytes(envelope.content, policy=default)
        self._loop.call_soon_threadsafe(self._got, mail, envelope.mail_from, list(envelope.rcpt_tos))
        return "250 OK"

    def _set(self, gate: asyncio.Event) -> None:  # DATA waits on the controller's loop
        self.controller.loop.call_soon_threadsafe(gate.set)

    def _got(self, mail, sender, rcpts) -> None:
        self.mails.append(mail)
        self.envelopes.append((sender, rcpts))
        self._new.set()

    async def wait_for(self, n: int, timeout: float = 10.0) -> list[EmailMessage]:
        async def loop():
            while len(self.mails) < n:
                self._new.clear()
                await self._new.wait()
            return self.mails

        return await asyncio.wait_for(loop(), timeout)
