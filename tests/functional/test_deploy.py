"""deploy/ as shipped: Debian's nginx runs deploy/nginx/chatd.conf in front of a real chatd.

The site file is used as written, with only its listen addresses, certificate paths and
upstream port swapped (each swap must match, so the file's shape is checked too), inside a
minimal nginx.conf in a temp dir (127.0.0.1, unprivileged ports, a trustme certificate).
A chat runs through it over TLS: REST with the api key, join, send, receive; the client
address reaches chatd (per-address limit); `nginx -s reload` keeps the open socket, and a
client that reconnects through the new workers resumes with `since`, missing nothing.
The units and the --workers example are checked with `chatd check-config` and by shape.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import aiohttp
import pytest
import trustme

from chatd.config import LimitsConfig
from tests.support.client import API_KEY, Client, token
from tests.support.procs import ROOT, ServerProc, child_env, free_port

DEPLOY = ROOT / "deploy"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
if NGINX is None:  # scripts/deps.sh installs it for `make test` and CI: never skipped there
    pytest.fail("nginx is not installed: run `make deps` (scripts/deps.sh)", pytrace=False)


def site_for_test(tls_port: int, http_port: int, chatd_port: int, cert: Path, key: Path) -> str:
    text = (DEPLOY / "nginx" / "chatd.conf").read_text()
    swaps = [
        (r"server 127\.0\.0\.1:8080;", f"server 127.0.0.1:{chatd_port};"),
        (r"listen 80;", f"listen 127.0.0.1:{http_port};"),
        (r"listen \[::\]:80;", ""),
        (r"listen 443 ssl http2;", f"listen 127.0.0.1:{tls_port} ssl http2;"),
        (r"listen \[::\]:443 ssl http2;", ""),
        (r"ssl_certificate\s+\S+;", f"ssl_certificate {cert};"),
        (r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {key};"),
    ]
    for pattern, new in swaps:
        text, n = re.subn(pattern, new, text)
        assert n == 1, f"deploy/nginx/chatd.conf: expected one {pattern!r}"
    return text


class Nginx:
    def __init__(self, root: Path, site: str) -> None:
        self.root = root
        (root / "logs").mkdir(parents=True)
        (root / "site.conf").write_text(site)
        user = "user root;\n" if os.geteuid() == 0 else ""  # as root, workers would run as nobody
        (root / "nginx.conf").write_text(
            f"""{user}worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/logs/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {root}/logs/access.log;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {root}/site.conf;
}}
"""
        )
        self.args = [NGINX, "-p", str(root), "-e", str(root / "logs" / "error.log"), "-c", str(root / "nginx.conf")]
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        check = subprocess.run([*self.args, "-t"], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen([*self.args, "-g", "daemon off;"], stderr=subprocess.PIPE)

    def workers(self) -> set[int]:
        assert self.proc is not None
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return {int(x) for x in path.read_text().split()}

    def reload(self) -> None:
        r = subprocess.run([*self.args, "-s", "reload"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # fast shutdown of our own master (and its workers)
            try:
                self.proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate()


async def _until(pred, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


def test_the_site_times_out_later_than_the_heartbeat():
    text = (DEPLOY / "nginx" / "chatd.conf").read_text()
    ws = text[text.index("location = /ws") :]
    ws = ws[: ws.index("}")]
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        m = re.search(rf"{directive} (\d+)s;", ws)
        assert m and int(m[1]) > 2 * LimitsConfig().heartbeat_s, directive
    assert "proxy_set_header Upgrade    $http_upgrade;" in ws and "$chatd_connection" in ws
    for location in re.findall(r"location [^{]*\{[^}]*proxy_pass[^}]*\}", text):  # no inherited headers
        assert "X-Forwarded-For   $proxy_add_x_forwarded_for" in location and "Host " in location, location


def test_the_units_and_the_workers_example_check_out(tmp_path):
    for unit in ("chatd.service", "chatd-workers.service"):
        text = (DEPLOY / unit).read_text()
        start = re.search(r"^ExecStart=(\S+) serve (.*)$", text, re.M)
        pre = re.search(r"^ExecStartPre=(\S+) check-config --config (\S+)$", text, re.M)
        assert start and pre and start[1] == pre[1] and pre[2] in start[2], unit
        assert "KillSignal=SIGTERM" in text and "[Install]" in text
    assert "--workers 4" in (DEPLOY / "chatd-workers.service").read_text()
    example = tomllib.loads((DEPLOY / "workers.toml").read_text())
    assert example["relay"]["url"].startswith("redis://")  # --workers > 1 needs it
    assert example["server"]["trusted_proxies"] == ["127.0.0.1"]
    r = subprocess.run(
        [sys.executable, "-m", "chatd", "check-config", "--config", str(DEPLOY / "workers.toml")],
        cwd=tmp_path,
        env=child_env(CHATD_AUTH_SECRET="s" * 32, CHATD_API_KEY="k" * 24),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and r.stdout.endswith(": ok\n") and r.stderr == "", r


async def test_a_chat_through_nginx_survives_a_reload(tmp_path):
    chatd_dir = tmp_path / "chatd"
    chatd_dir.mkdir()
    chatd = ServerProc(
        chatd_dir,
        {"server": {"trusted_proxies": ["127.0.0.1"]}, "limits": {"max_unauthenticated_per_ip": 1}},
    )
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(tmp_path / "key.pem")
    cert.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    tls_port, http_port = free_port(), free_port()
    nginx = Nginx(
        tmp_path / "nginx",
        site_for_test(tls_port, http_port, chatd.port, tmp_path / "cert.pem", tmp_path / "key.pem"),
    )
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    base, ws_url = f"https://127.0.0.1:{tls_port}", f"wss://127.0.0.1:{tls_port}/ws"
    clients: list[Client] = []

    async def open_client(sub: str, role: str) -> Client:
        c = await Client.open(ws_url, token(sub, role), ssl=ctx)
        clients.append(c)
        return c

    await chatd.astart()
    try:
        nginx.start()
        async with aiohttp.ClientSession() as s:

            async def up() -> bool:
                try:
                    async with s.get(base + "/healthz", ssl=ctx) as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            deadline = time.monotonic() + 15
            while not await up():
                assert nginx.proc.poll() is None and time.monotonic() < deadline, "nginx did not come up"
                await asyncio.sleep(0.05)
            async with s.get(f"http://127.0.0.1:{http_port}/healthz", allow_redirects=False) as r:
                assert r.status == 301 and r.headers["Location"].startswith("https://")
            async with s.get(base + "/widget.js", ssl=ctx) as r:
                assert r.status == 200 and (await r.read()).startswith(b"/")
            async with s.get(base + "/metrics", ssl=ctx) as r:
                assert r.status == 404  # stays inside
            people = {"buyer": {"id": "buyer1", "name": "B"}, "supplier": {"id": "supplier1", "name": "S"}}
            async with s.put(
                base + "/api/v1/orders/N-1", json=people, headers={"Authorization": f"Bearer {API_KEY}"}, ssl=ctx
            ) as r:
                assert r.status == 201, await r.text()

        # join and send through nginx (TLS, the WebSocket upgrade)
        buyer, supplier = await open_client("buyer1", "buyer"), await open_client("supplier1", "supplier")
        await buyer.join("N-1")
        await supplier.join("N-1")
        ack = await supplier.post("N-1", "your parcel is packed")
        got = await buyer.expect("message", seq=ack["seq"])
        assert got["text"] == "your parcel is packed"

        # the client address is passed through: one waiting socket per client address, not per proxy
        waiting = []
        for local in ("127.0.0.2", "127.0.0.3"):
            c = await Client.open(ws_url, ssl=ctx, local_addr=(local, 0))
            clients.append(c)
            waiting.append(c)
        third = await Client.open(ws_url, ssl=ctx, local_addr=("127.0.0.2", 0))
        clients.append(third)
        assert await third.closed() == 4429  # 127.0.0.2 has one waiting already
        for c in waiting:
            assert c.close_code is None

        # nginx reloads: the open socket stays with its old worker, new connections reach new ones
        before = nginx.workers()
        nginx.reload()
        await _until(lambda: nginx.workers() - before, "no new nginx worker after reload")
        held = ack["seq"]
        await buyer.close()
        missed = [await supplier.post("N-1", f"update {i}") for i in range(3)]  # the old socket still works
        buyer = await open_client("buyer1", "buyer")
        joined = await buyer.join("N-1", since=held)
        assert joined["last_seq"] == missed[-1]["seq"]
        replay = [(await buyer.expect("message", seq=a["seq"]))["text"] for a in missed]
        assert replay == ["update 0", "update 1", "update 2"]
        assert [f["seq"] for f in buyer.of_type("message")] == [a["seq"] for a in missed], "each once, in order"
        late = await open_client("supplier1", "supplier")  # through a new worker
        await late.join("N-1")
        ack2 = await late.post("N-1", "shipped")
        assert (await buyer.expect("message", seq=ack2["seq"]))["text"] == "shipped"
    finally:
        for c in clients:
            await c.close()
        nginx.stop()
        chatd.stop()
    access = (tmp_path / "nginx" / "logs" / "access.log").read_text()
    assert '"GET /ws HTTP/1.1" 101' in access
