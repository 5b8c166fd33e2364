"""Tokens that expire: the SDK asks its token function for a new one."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest

from chatd import client, wire
from tests.sdk.conftest import Api
from tests.sdk.waits import messages
from tests.support.client import SECRET, TIMEOUT, token

FAST = {"reconnect_delay_s": 0.05, "max_reconnect_delay_s": 0.5}


def expiring(sub: str, role: str, valid_s: float) -> tuple[str, float]:
    """A token valid for `valid_s` more seconds (a fractional `exp`), and that moment."""
    exp = time.time() + valid_s
    return jwt.encode({"sub": sub, "name": sub.title(), "role": role, "exp": exp}, SECRET, algorithm="HS256"), exp


async def until_past(moment: float) -> None:
    """Wait for the wall clock to pass `moment` (a token's expiry): bounded by it."""
    async with asyncio.timeout(TIMEOUT):
        while time.time() <= moment:  # noqa: ASYNC110 - polls the wall clock (no event to wait for)
            await asyncio.sleep(max(0.01, moment - time.time()))


class Tokens:
    """A token function: the first token expires soon, later ones last an hour."""

    def __init__(self, sub: str, role: str, first_valid_s: float = 2.0, is_async: bool = False) -> None:
        self.sub, self.role = sub, role
        self.first, self.first_exp = expiring(sub, role, first_valid_s)
        self.calls = 0
        self.is_async = is_async

    def _next(self) -> str:
        self.calls += 1
        return self.first if self.calls == 1 else token(self.sub, self.role)

    def __call__(self):
        if not self.is_async:
            return self._next()

        async def fetch() -> str:
            return self._next()

        return fetch()


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_expired_token_is_replaced_through_the_callable_on_reconnect(own_proc, is_async):
    """The server restarts after the token expired: it refuses the old token
    (error unauthorized, close 4401), the SDK calls the function again, and the
    stream goes on without a gap."""
    api = Api(own_proc.base)
    order = await api.order()
    tokens = Tokens("supplier1", "supplier", is_async=is_async)
    async with (
        client.connect(own_proc.base, tokens, **FAST) as c,
        client.connect(own_proc.base, token("bot1", "bot", orders="*")) as bot,
    ):
        await c.join(order)
        await bot.send(order, "before")
        assert [m.text for m in await messages(c, 1)] == ["before"]
        assert tokens.calls == 1
        await until_past(tokens.first_exp)
        await own_proc.arestart()
        await bot.send(order, "after")  # the bot reconnects too (its token is valid)
        assert [(m.seq, m.text) for m in await messages(c, 1, timeout=30)] == [(2, "after")]
        assert tokens.calls == 2 and c.reconnects == 1


async def test_join_after_expiry_refreshes_the_token_on_the_open_socket(chatd_proc, api):
    """The server closes a socket whose token expired at the next join (4401);
    the SDK re-authenticates first, so the join succeeds on the same socket."""
    first, second = await api.order(), await api.order()
    tokens = Tokens("supplier1", "supplier")
    async with client.connect(chatd_proc.base, tokens) as c:
        await c.join(first)
        await until_past(tokens.first_exp)
        joined = await c.join(second)
        assert joined.order == second and tokens.calls == 2 and c.reconnects == 0


async def test_a_refused_token_from_the_callable_is_replaced_once(chatd_proc, api):
    order = await api.order()
    handed = iter(["not-a-jwt", token("supplier1", "supplier")])
    async with client.connect(chatd_proc.base, lambda: next(handed)) as c:
        assert c.user == wire.UserRef("supplier1", "Supplier1", "supplier")
        await c.join(order)


async def test_a_callable_that_keeps_handing_out_bad_tokens_fails(chatd_proc):
    with pytest.raises(client.Unauthorized):
        async with client.connect(chatd_proc.base, lambda: "not-a-jwt"):
            pass


async def test_a_fixed_token_that_expires_ends_the_client_on_reconnect(own_proc):
    api = Api(own_proc.base)
    order = await api.order()
    tok, exp = expiring("supplier1", "supplier", 1.0)
    async with client.connect(own_proc.base, tok, **FAST) as c:
        await c.join(order)
        await until_past(exp)
        await own_proc.arestart()
        with pytest.raises(client.Unauthorized, match="expired"):
            async with asyncio.timeout(30):
                async for _ in c:
                    pass


async def test_a_callable_token_is_refreshed_before_the_server_closes_at_exp(chatd_proc, api):
    """The server closes a socket (4401) when its token expires: the SDK hands
    it a fresh token in time, on the same socket, with no join to prompt it."""
    order = await api.order()
    tokens = Tokens("supplier1", "supplier")
    async with (
        client.connect(chatd_proc.base, tokens) as c,
        client.connect(chatd_proc.base, token("bot1", "bot", orders="*")) as bot,
    ):
        await c.join(order)
        await until_past(tokens.first_exp + 0.2)
        await bot.send(order, "after the first token's exp")
        assert [m.text for m in await messages(c, 1)] == ["after the first token's exp"]
        assert tokens.calls == 2 and c.reconnects == 0
