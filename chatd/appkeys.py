"""Typed aiohttp application keys shared by the edges and the composition root."""

from __future__ import annotations

import weakref

from aiohttp import web

from chatd.chat import Chat
from chatd.config import Config

CONFIG = web.AppKey("config", Config)
CHAT = web.AppKey("chat", Chat)
SOCKETS = web.AppKey("sockets", weakref.WeakSet)
UNAUTHENTICATED = web.AppKey("unauthenticated", dict)  # remote address -> sockets waiting for auth
