"""The widget's files as chatd serves them: /widget.js is session.js, dom.js, widget.js, components.js
and console.js joined; the staff console page at /console."""

from __future__ import annotations

import aiohttp

from chatd.edge.static import web_dir


async def _get(base: str, path: str, headers: dict | None = None):
    async with aiohttp.ClientSession() as s, s.get(base + path, headers=headers or {}) as r:
        return r.status, r.headers, await r.read()


async def test_widget_js_is_its_files_in_order(server):
    st, headers, body = await _get(server.base, "/widget.js")
    assert st == 200 and headers["Content-Type"].startswith("text/javascript")
    assert headers["Access-Control-Allow-Origin"] == "*" and headers["Cache-Control"] == "no-cache"
    parts = [
        (web_dir() / name).read_bytes() for name in ("session.js", "dom.js", "widget.js", "components.js", "console.js")
    ]
    assert body == b"\n".join(parts)
    assert "Last-Modified" in headers

    # unchanged: revalidation answers 304 without the body
    st, again, body = await _get(server.base, "/widget.js", {"If-None-Match": headers["ETag"]})
    assert st == 304 and body == b"" and again["ETag"] == headers["ETag"]
    st, _, body = await _get(server.base, "/widget.js", {"If-None-Match": '"something-else"'})
    assert st == 200 and body == b"\n".join(parts)


async def test_session_js_alone(server):
    st, headers, body = await _get(server.base, "/session.js")
    assert st == 200 and headers["Content-Type"].startswith("text/javascript")
    assert body == (web_dir() / "session.js").read_bytes()


async def test_a_missing_part_is_404_not_500(server, tmp_path, monkeypatch):
    for name in ("dom.js", "widget.js"):
        (tmp_path / name).write_text("/* */")
    monkeypatch.setenv("CHATD_WEB_DIR", str(tmp_path))
    st, _, _ = await _get(server.base, "/widget.js")
    assert st == 404


async def test_demo_orders_page_under_the_demo_csp(server):
    st, headers, body = await _get(server.base, "/demo/orders")
    assert st == 200 and headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer"  # its URL carries a token
    assert b'src="/demo/orders.js"' in body
    st, headers, body = await _get(server.base, "/demo/orders.js")
    assert st == 200 and body == (web_dir() / "demo-orders.js").read_bytes()


async def test_console_page_under_the_page_csp(server):
    st, headers, body = await _get(server.base, "/console")
    assert st == 200 and headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer"  # ?token=… may be in its URL
    assert b'src="/console/console.js"' in body and b'src="/widget.js"' in body
    for path, name in (("/console/console.js", "console-page.js"), ("/console/console.css", "console.css")):
        st, headers, body = await _get(server.base, path)
        assert st == 200 and body == (web_dir() / name).read_bytes()
