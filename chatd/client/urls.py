"""One server address, two spellings: the WebSocket endpoint and the REST base.

Users may give either (`http://host:8080`, `ws://host:8080/ws`, or just
`host:8080`); both parts of the SDK derive what they need from it.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit, urlunsplit

_WS = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_HTTP = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def _split(url: str) -> SplitResult:
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in _WS or not parts.netloc:
        raise ValueError(f"not a chatd URL: {url!r} (expected http://host:port or ws://host:port/ws)")
    return parts


def ws_url(url: str) -> str:
    """The WebSocket endpoint: an http(s) base gets `/ws` after its path prefix (as
    the widget does: `https://example.com/chat` is `wss://example.com/chat/ws`); a
    ws(s) URL names the endpoint itself (`/ws` when it has no path)."""
    p = _split(url)
    if p.scheme in ("http", "https"):
        path = p.path.rstrip("/")
        path = path if path.endswith("/ws") else path + "/ws"
    else:
        path = p.path if p.path not in ("", "/") else "/ws"
    return urlunsplit((_WS[p.scheme], p.netloc, path, p.query, ""))


def http_url(url: str) -> str:
    """The REST base (no trailing slash): the URL without its `/ws` endpoint."""
    p = _split(url)
    path = p.path.rstrip("/")
    if path.endswith("/ws"):
        path = path[: -len("/ws")]
    return urlunsplit((_HTTP[p.scheme], p.netloc, path, "", ""))
