"""The REST side of the client (aiohttp): history export and bot posts.

A credential is the api key (server to server) or a connection token; both
go in `Authorization: Bearer`. Failures come back as the same `ChatdError`
tree as the socket's: a JSON error body becomes the class of its code, an
unreachable server (or one that drops the connection mid-answer)
`ConnectionFailed`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote

import aiohttp
import msgspec
from yarl import URL

from chatd import wire
from chatd.client.errors import ConnectionFailed, error_for
from chatd.client.urls import http_url

_message = msgspec.json.Decoder(wire.Message)
_CODE_OF_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "too_large",
    429: "rate_limited",
    502: "unavailable",  # a proxy in front of chatd: chatd is down or restarting
    503: "unavailable",
    504: "unavailable",
}


async def _raise_for(resp: aiohttp.ClientResponse) -> None:
    if resp.status < 400:
        return
    body = await resp.read()
    try:
        err = msgspec.json.decode(body)["error"]
        raise error_for(err["code"], err["message"], err.get("ref"))
    except (msgspec.DecodeError, KeyError, TypeError):
        pass
    code = _CODE_OF_STATUS.get(resp.status, "internal")
    raise error_for(code, f"HTTP {resp.status}: {body[:200].decode(errors='replace')}")


class Rest:
    """A small REST client: `async with Rest(url, credential) as api: ...`."""

    def __init__(self, url: str, credential: str, timeout_s: float = 30.0) -> None:
        self.base = http_url(url)
        self._headers = {"Authorization": f"Bearer {credential}"}
        self._timeout = aiohttp.ClientTimeout(total=None, connect=timeout_s, sock_read=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Rest:
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._open().close()

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Rest is used as `async with Rest(url, credential) as api`")
        return self._session

    def _url(self, order: str, tail: str = "") -> URL:
        """Already encoded, so that aiohttp does not decode `%2E` back into a dot segment."""
        segment = "%2E" * len(order) if order and not order.strip(".") else quote(order, safe="")
        return URL(f"{self.base}/api/v1/orders/{segment}{tail}", encoded=True)

    async def export_lines(self, order: str) -> AsyncIterator[bytes]:
        """The order's history up to its newest message, as NDJSON lines (one message each,
        ascending seq), streamed: `format=ndjson`."""
        try:
            async with self._open().get(self._url(order, "/messages"), params={"format": "ndjson"}) as resp:
                await _raise_for(resp)
                async for line in resp.content:
                    if line.strip():
                        yield line.rstrip(b"\r\n")
        except aiohttp.ClientConnectionError as exc:
            raise ConnectionFailed(f"cannot connect to {self.base}: {_describe(exc)}", self.base) from exc
        except aiohttp.ClientPayloadError as exc:
            raise ConnectionFailed(f"{self.base} broke off the export: {exc}", self.base) from exc

    async def export(self, order: str) -> AsyncIterator[wire.Message]:
        """The order's history up to its newest message as `Message`s, ascending seq."""
        async for line in self.export_lines(order):
            yield _message.decode(line)

    async def post(self, order: str, text: str, kind: str = "text", client_id: str | None = None) -> wire.Ack:
        """Post as the bot (token) or the system (api key); same `client_id` rule."""
        body = {"client_id": client_id or str(uuid.uuid4()), "text": text, "kind": kind}
        try:
            async with self._open().post(self._url(order, "/messages"), json=body) as resp:
                await _raise_for(resp)
                return msgspec.json.decode(await resp.read(), type=wire.Ack)
        except aiohttp.ClientConnectionError as exc:
            raise ConnectionFailed(f"cannot connect to {self.base}: {_describe(exc)}", self.base) from exc
        except aiohttp.ClientPayloadError as exc:
            raise ConnectionFailed(f"{self.base} broke off its answer: {exc}", self.base) from exc


def _describe(exc: aiohttp.ClientConnectionError) -> str:
    cause = getattr(exc, "os_error", None) or exc.__cause__
    if isinstance(cause, ConnectionRefusedError) or "refused" in str(exc).lower():
        return "connection refused"
    return str(exc) or type(exc).__name__


__all__ = ["Rest"]
