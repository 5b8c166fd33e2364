"""Browser fixtures: Playwright's async API driving Chromium against a real chatd.

The async API runs in the test's own event loop (pytest-asyncio, auto mode),
next to the in-process `server` fixture. Chromium is Debian's `chromium` when
installed (found on PATH), else Playwright's own build if one was installed.
Every wait is a DOM condition (`expect`), never a sleep.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web

pytest.importorskip("playwright.async_api", reason="pip install -e '.[test]' installs playwright")

from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect  # noqa: E402

from tests.support import samples  # noqa: E402
from tests.support.client import API_KEY  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 10_000
expect.set_options(timeout=WAIT_MS)

# A host page as an embedder writes it, on its own origin: one script tag, one call.
HOST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"><title>host page</title>
<style>html, body { height: 100%; margin: 0; background: #eef0f4; } #chat { height: 100vh; }</style>
</head><body>
<div id="chat"></div>
<script src="CHATD/widget.js"></script>
<script>
  var q = new URLSearchParams(location.search);
  window.widget = ChatdWidget.mount(document.getElementById('chat'),
    {url: q.get('chatd'), order: q.get('order'), token: q.get('token')});
</script>
</body></html>
"""


# An orders page as a platform writes it: a bell in its own header (whose CSS would
# break a widget it could reach), a badge on each order's "Open Chat" button, the inbox.
COMPONENTS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"><title>orders</title>
<style>
  body { margin: 0; font-family: sans-serif; background: #eef0f4; }
  header { display: flex; align-items: center; justify-content: space-between; padding: 6px 16px;
           background: #1b2a4a; color: #fff; }
  button { color: #fff; }
  main { padding: 12px; }
  .card { display: flex; align-items: center; gap: 10px; margin: 0 0 8px; padding: 10px; background: #fff; }
  .card button { background: #2457d6; border: 0; padding: 6px 10px; border-radius: 6px; }
  .card button[data-unread]:not([data-unread="0"]) { background: #c0262d; }
  #inbox { height: 560px; margin-top: 12px; }
</style>
</head><body>
<header><h1>Orders</h1><span id="bell"></span></header>
<main><div id="cards"></div><div id="inbox"></div></main>
<script src="CHATD/widget.js"></script>
<script>
  var q = new URLSearchParams(location.search), tokens = q.get('token').split(',');
  // several tokens (comma-separated): a function that gives them in turn, as a page fetching fresh ones
  window.tokenCalls = 0;
  var opts = {url: q.get('chatd'), token: tokens.length === 1 ? tokens[0]
    : function () { return tokens[Math.min(window.tokenCalls++, tokens.length - 1)]; }};
  window.opened = [];
  q.get('orders').split(',').forEach(function (order) {
    var card = document.createElement('div');
    card.className = 'card';
    card.setAttribute('data-order', order);
    card.appendChild(document.createTextNode('Order ' + order + ' '));
    var b = document.createElement('button');
    b.textContent = 'Open Chat ';
    card.appendChild(b);
    document.getElementById('cards').appendChild(card);
    ChatdWidget.badge(b, Object.assign({order: order}, opts));
  });
  ChatdWidget.bell(document.getElementById('bell'),
    Object.assign({onOpen: function (d) { window.opened.push(d.order); }}, opts));
  window.inbox = ChatdWidget.inbox(document.getElementById('inbox'), opts);
</script>
</body></html>
"""


async def _components_page(request: web.Request) -> web.Response:
    chatd = request.query["chatd"]
    assert chatd.startswith("http://127.0.0.1:") and '"' not in chatd
    return web.Response(text=COMPONENTS_PAGE.replace("CHATD", chatd), content_type="text/html")


async def _host_page(request: web.Request) -> web.Response:
    chatd = request.query["chatd"]
    assert chatd.startswith("http://127.0.0.1:") and '"' not in chatd
    return web.Response(text=HOST_PAGE.replace("CHATD", chatd), content_type="text/html")


# Lets a test hide the page (document.visibilityState), as a background tab is.
VISIBILITY_SHIM = """
(() => {
  let hidden = false;
  Object.defineProperty(Document.prototype, 'visibilityState', {
    configurable: true, get() { return hidden ? 'hidden' : 'visible'; }});
  Object.defineProperty(Document.prototype, 'hidden', {configurable: true, get() { return hidden; }});
  window.__setHidden = (h) => { hidden = !!h; document.dispatchEvent(new Event('visibilitychange')); };
})();
"""

PEOPLE = {
    "buyer": ("bea", "Bea Buyer"),
    "supplier": ("sam", "Sam Supplier"),
    "sales_rep": ("rita", "Rita Rep"),
}


AXE_JS = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"


async def axe_check(page: Page, name: str, within: list[str] | None = None) -> None:
    """axe-core injected into the page: no serious or critical violations (open shadow roots included).

    `within`: only that part, as axe's shadow DOM path (e.g. a modal dialog:
    the page behind it is inert, and its colours under the backdrop are not what anyone reads).
    """
    if not AXE_JS.is_file():
        pytest.fail("node_modules/axe-core is missing: run npm ci")
    if not await page.evaluate("() => !!window.axe"):
        # evaluated, not a <script>: pages under a CSP (the demo) refuse inline scripts
        await page.evaluate(AXE_JS.read_text(encoding="utf-8") + "\n;void 0")
    result = await page.evaluate(
        "within => axe.run(within ? {include: [within]} : document, {resultTypes: ['violations']})", within
    )
    bad = [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{name}: accessibility violations: {bad}"


ORDER_ID_LAYOUT_JS = """els => els.map(n => {
  const range = document.createRange();
  range.selectNodeContents(n);
  const lines = new Set(Array.from(range.getClientRects()).map(r => Math.round(r.top))).size;
  const box = n.getBoundingClientRect(), row = n.closest('button, a').getBoundingClientRect();
  return {id: n.textContent, lines, inside: box.left >= row.left - 0.5 && box.right <= row.right + 0.5};
})"""


async def order_id_layout(locator) -> list[dict]:
    """Each order id of `locator` (rows' id elements): how many lines it takes, and whether it stays in its row."""
    return await locator.evaluate_all(ORDER_ID_LAYOUT_JS)


def chromium_executable() -> str | None:
    """Debian's chromium if on PATH; None lets Playwright use its own browser."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


async def api(base: str, method: str, path: str, body=None, auth: str = API_KEY):
    async with aiohttp.ClientSession() as s:
        async with s.request(method, base + path, json=body, headers={"Authorization": f"Bearer {auth}"}) as r:
            data = await r.json(content_type=None)
            return r.status, data


async def put_order(base: str, order: str, **fields) -> None:
    """An order with Bea (buyer), Sam (supplier) and Rita (sales rep); `fields`: workflow, status, force."""
    body = {role: {"id": uid, "name": name} for role, (uid, name) in PEOPLE.items()} | fields
    status, data = await api(base, "PUT", f"/api/v1/orders/{order}", body)
    assert status in (200, 201), data


class ChatPage:
    """One browser context with the widget mounted for one user."""

    def __init__(self, context: BrowserContext, page: Page) -> None:
        self.context = context
        self.page = page
        self.errors: list[str] = []
        self.sockets: list[str] = []
        page.on("websocket", lambda ws: self.sockets.append(ws.url))
        self.dialogs: list[str] = []
        self.console: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("dialog", self._dialog)
        self.root = page.locator(".chatd")
        self.input = page.get_by_label("Message", exact=True)
        self.send_button = page.get_by_role("button", name="Send", exact=True)
        self.list = page.locator(".chatd-list")
        self.messages = page.locator(".chatd-list [data-seq]")
        self.pending = page.locator(".chatd-list [data-cid]")
        self.badge = page.locator(".chatd-badge")
        self.typing = page.locator(".chatd-typing")
        self.conn = page.locator(".chatd-conn")
        self.divider = page.locator(".chatd-divider")
        self.note_toggle = page.locator(".chatd-note-toggle")

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        asyncio.ensure_future(dialog.dismiss())

    def message(self, text: str):
        """The list item (message or event) whose text contains `text`."""
        return self.list.locator("[role=listitem]").filter(has_text=text)

    async def online(self) -> None:
        await expect(self.root).to_have_attribute("data-state", "online")

    async def say(self, text: str) -> None:
        await self.input.fill(text)
        await self.input.press("Enter")

    async def set_hidden(self, hidden: bool) -> None:
        await self.page.evaluate("h => window.__setHidden(h)", hidden)

    async def texts(self) -> list[str]:
        return await self.messages.locator(".chatd-text").all_inner_texts()

    async def screenshot(self, name: str, **kw) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / name
        await self.page.screenshot(path=str(path), **kw)
        return path


@pytest.fixture
async def browser():
    async with async_playwright() as p:
        b: Browser = await p.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


async def _avatar(request: web.Request) -> web.Response:
    return web.Response(body=samples.png(4, 4), content_type="image/png")


@pytest.fixture
async def host_site(aiohttp_server):
    """An embedding web site on its own origin (another port), serving /host."""
    app = web.Application()
    app.router.add_get("/host", _host_page)
    app.router.add_get("/components", _components_page)
    app.router.add_get("/avatar.png", _avatar)
    srv = await aiohttp_server(app)
    return f"http://127.0.0.1:{srv.port}"


@pytest.fixture
async def open_chat(browser, host_site):
    """open_chat(base, order, token, width=, height=, path=, setup=) -> ChatPage, online.

    path "/host" (default): a page of another web site embedding the widget,
    without any CSP, so the widget alone must keep data from running.
    path "/demo": chatd's own demo order page.
    path "/components": a host orders page with a bell, badges (one per order in
    `order`, comma-separated) and the inbox; it is online once the bell is there.
    There, several tokens (comma-separated) make the page's token a function
    that gives them in turn (the last one from then on).
    """
    opened: list[ChatPage] = []

    async def open_(
        base: str,
        order: str,
        token: str,
        *,
        width: int = 1000,
        height: int = 720,
        path: str = "/host",
        wait_online: bool = True,
        setup=None,
    ) -> ChatPage:
        ctx = await browser.new_context(
            viewport={"width": width, "height": height}, locale="en-GB", timezone_id="Europe/Berlin"
        )
        await ctx.add_init_script(VISIBILITY_SHIM)
        if setup is not None:  # e.g. ctx.route_web_socket(...), before the page connects
            await setup(ctx)
        page = await ctx.new_page()
        chat = ChatPage(ctx, page)
        opened.append(chat)
        if path == "/host":
            url = f"{host_site}/host?{urlencode({'chatd': base, 'order': order, 'token': token})}"
        elif path == "/components":  # `order`: the orders on the page, comma-separated
            url = f"{host_site}/components?{urlencode({'chatd': base, 'orders': order, 'token': token})}"
        else:
            url = f"{base}{path}?{urlencode({'order': order, 'token': token})}"
        await page.goto(url)
        if path == "/components":
            return chat
        if wait_online:
            await chat.online()
        return chat

    yield open_
    for chat in opened:
        await chat.context.close()
    errors = [e for chat in opened for e in chat.errors]
    assert not errors, f"uncaught errors in the page: {errors}"


def socket_route(links: list, net: dict | None = None):
    """A context `setup` routing the page's chatd WebSockets on to the server, each route
    kept in `links` (a test closes one as the server would); with `net`, a socket opened
    while `net["up"]` is false is refused (the network is down)."""

    def route(ws):
        if net is not None and not net["up"]:
            asyncio.ensure_future(ws.close(code=1006))
            return
        links.append(ws)
        ws.connect_to_server()

    async def setup(ctx):
        await ctx.route_web_socket(re.compile(r"/ws$"), route)

    return setup
