"""A real HTTP server on 127.0.0.1 that records webhook requests, and a GET helper."""

from __future__ import annotations

import asyncio
import base64

import aiohttp
import msgspec
from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

from tests.support.hold import Holding

# the tests' [webhooks] secret, in the Standard Webhooks form
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"chatd-tests-webhook-key-32-bytes").decode()


def verifier(secret: str) -> Webhook:
    """What a receiver builds: the standardwebhooks library takes a whsec_ secret as it is,
    and a plain secret (older chatd configs) as its bytes."""
    return Webhook(secret if secret.startswith("whsec_") else secret.encode())


class Receiver(Holding):
    """A real HTTP server on 127.0.0.1 that records webhook requests.

    Every delivery is verified with the standardwebhooks library and `secret`;
    one that fails is still recorded (and answered 204, so nothing hangs) and
    named in `unverified`, which the `receiver` fixture checks is empty.
    `fail_next` requests are answered 500 first; `got` wakes waiters.
    After `hold()` each request waits, unanswered, until a `release()` (those
    held then) or `open()` (all, and no more holding): a slow receiver.
    """

    def __init__(self, secret: str = WEBHOOK_SECRET) -> None:
        self.webhook = verifier(secret)
        self.unverified: list[str] = []  # what the library said about deliveries it refused
        self.requests: list[dict] = []
        self.fail_next = 0
        self.attempts = 0
        self.refused: list[str] = []  # event ids answered 500
        self._new = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.attempts += 1
        self._new.set()
        try:
            self.webhook.verify(body, dict(request.headers))
        except WebhookVerificationError as exc:
            self.unverified.append(f"{request.headers.get('webhook-id')}: {exc}")
        if self.gate is not None:
            gate = self.gate
            self._arrived(gate)
            await gate.wait()
        if self.fail_next > 0:
            self.fail_next -= 1
            self.refused.append(request.headers.get("webhook-id"))
            return web.Response(status=500, text="try again")
        self.requests.append({"headers": dict(request.headers), "body": body, "json": msgspec.json.decode(body)})
        return web.Response(status=204)

    async def start(self, port: int = 0) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def assert_verified(self) -> None:
        assert self.attempts > 0 or not self.requests
        assert self.unverified == [], self.unverified

    async def stop(self) -> None:
        self.open()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def wait_for(self, pred, timeout: float = 10.0) -> list[dict]:
        """Wait until `pred(requests)` is true; return the requests."""

        async def loop():
            while not pred(self.requests):
                self._new.clear()
                await self._new.wait()
            return self.requests

        return await asyncio.wait_for(loop(), timeout)


async def get(url: str, auth: str | None = None, **kw) -> tuple[int, dict, bytes]:
    headers = {"Authorization": f"Bearer {auth}"} if auth else {}
    async with aiohttp.ClientSession() as s:
        async with s.get(url, headers=headers, **kw) as r:
            return r.status, dict(r.headers), await r.read()
