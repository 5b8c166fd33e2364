"""Errors that say what to do (issue 15): `chatd token` without a secret, config errors in one
line (and `chatd check-config`), a wrong api key, a token signed with another secret."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from chatd import client
from chatd.auth.tokens import issue, verify
from tests.support.client import API_KEY, SECRET, Client
from tests.support.procs import child_env

BACKENDS = ("single",)
OTHER = issue("not-the-servers-secret-0123456789abcdef", "buyer1", "buyer", "Bea")


def chatd(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatd", *args],
        cwd=cwd,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_token_without_a_secret_refuses_and_says_how_to_fix_it(tmp_path):
    r = chatd(tmp_path, "token", "--sub", "u1", "--role", "buyer")
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr
    assert "no [auth] secret configured" in r.stderr
    assert "--config" in r.stderr and "CHATD_AUTH_SECRET" in r.stderr
    assert not (tmp_path / "data").exists(), "no throwaway secret is written"

    # the server's secret, by env or by config file: a token the server accepts
    r = chatd(tmp_path, "token", "--sub", "u1", "--role", "buyer", CHATD_AUTH_SECRET=SECRET)
    assert r.returncode == 0 and verify(r.stdout.strip(), SECRET).id == "u1"
    (tmp_path / "chatd.toml").write_text(f'[auth]\nsecret = "{SECRET}"\n')
    r = chatd(tmp_path, "token", "--config", "chatd.toml", "--sub", "u2", "--role", "supplier")
    assert r.returncode == 0 and verify(r.stdout.strip(), SECRET).role == "supplier"
    assert not (tmp_path / "data").exists()


BAD_CONFIGS = [
    ('[server]\nport = "8080"\n', "[server] port: expected int, got str"),
    ("[server]\nprot = 8080\n", "[server] unknown key prot (keys: host, port, shutdown_timeout_s, trusted_proxies)"),
    ("[sever]\nport = 8080\n", "unknown section [sever]"),
    ("[limits]\nmax_text_chars = 1.5\n", "[limits] max_text_chars: expected int, got float"),
    ('[filter]\nmode = "loose"\n', '[filter] mode must be "off", "mask" or "block"'),
    ('[webhooks]\nurl = "http://127.0.0.1:9/h"\n', "[webhooks] url needs a secret"),
    ('[webhooks]\nsecret = "whsec_!!"\n', "[webhooks] secret: whsec_ must be followed by a base64 key"),
    ("[server\nport = 1\n", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "expect"), BAD_CONFIGS, ids=[b[1][:24] for b in BAD_CONFIGS])
def test_a_config_error_is_one_line_naming_the_key(tmp_path, text, expect):
    (tmp_path / "chatd.toml").write_text(text)
    for command in ("check-config", "serve"):
        r = chatd(tmp_path, command, "--config", "chatd.toml")
        assert r.returncode == 1, (command, r)
        assert r.stderr.splitlines() == [r.stderr.rstrip("\n")], f"one line: {r.stderr!r}"
        assert r.stderr.startswith("chatd: chatd.toml: ") and expect in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "data").exists()


def test_check_config_says_ok_and_warns_of_development_secrets(tmp_path):
    (tmp_path / "chatd.toml").write_text(f'[auth]\nsecret = "{SECRET}"\napi_key = "{API_KEY}"\n')
    r = chatd(tmp_path, "check-config", "--config", "chatd.toml")
    assert r.returncode == 0 and r.stdout == "chatd check-config: chatd.toml: ok\n" and r.stderr == ""
    r = chatd(tmp_path, "check-config")  # no ./config.toml: the defaults, which have no secret
    assert r.returncode == 0 and "embedded defaults: ok" in r.stdout
    assert "development" in r.stderr and "CHATD_AUTH_SECRET" in r.stderr
    assert not (tmp_path / "data").exists(), "check-config writes nothing"


async def _rest(server, credential: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{server.base}/api/v1/orders/E-1", headers={"Authorization": f"Bearer {credential}"}) as r:
            return r.status, await r.json()


async def test_a_wrong_api_key_says_invalid_api_key(server):
    st, body = await _rest(server, "not-the-api-key")
    assert st == 401 and body["error"] == {"code": "unauthorized", "message": "invalid api key"}
    st, body = await _rest(server, API_KEY)
    assert st == 404  # the right key: no such order


async def test_a_token_signed_with_another_secret_is_reported_as_such(server):
    st, body = await _rest(server, OTHER)
    assert st == 401 and body["error"]["code"] == "invalid_signature"
    assert "signed with another secret" in body["error"]["message"] and "[auth] secret" in body["error"]["message"]

    c = await Client.open(server.ws_url)
    await c.send({"type": "auth", "token": OTHER})
    err = await c.expect("error")
    assert err["code"] == "invalid_signature" and "signed with another secret" in err["message"]
    assert await c.closed() == 4401
    assert c.ws.close_reason == "token signed with another secret"

    # an expired token of the right secret stays `unauthorized` "token expired"
    c = await Client.open(server.ws_url)
    await c.send({"type": "auth", "token": issue(SECRET, "buyer1", "buyer", ttl_s=-10)})
    err = await c.expect("error")
    assert err == {"type": "error", "code": "unauthorized", "message": "token expired"} | {
        k: v for k, v in err.items() if k not in ("type", "code", "message")
    }
    assert await c.closed() == 4401

    # the SDK raises InvalidSignature (an Unauthorized), over WebSocket and REST
    with pytest.raises(client.InvalidSignature) as exc:
        async with client.connect(server.base, OTHER):
            pass
    assert isinstance(exc.value, client.Unauthorized) and exc.value.code == "invalid_signature"
    assert "signed with another secret" in exc.value.message
    from chatd.client.rest import Rest

    async with Rest(server.base, OTHER) as api:
        with pytest.raises(client.InvalidSignature):
            await api.post("E-1", "hello")
