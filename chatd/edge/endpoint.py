"""What every WebSocket of one app shares: the config, the services, the open sockets.

Built with the application (chatd.edge.server), given the services once
they are open; each socket holds one reference to it instead of its own
copies (chatd.edge.ws).
"""

from __future__ import annotations

from chatd.chat import Chat
from chatd.config import Config
from chatd.edge.heartbeat import Sockets
from chatd.staff_queue import StaffQueue

CLOSE_TIMEOUT_S = 5.0  # our close frame, then theirs or this long


class Endpoint:
    """What every socket of one app shares: the config, the services, the open sockets."""

    chat: Chat
    queue: StaffQueue

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.limits = cfg.limits
        self.sockets = Sockets(cfg.limits.heartbeat_s, CLOSE_TIMEOUT_S, cfg.limits.outbound_buffer_bytes)
        self.unauthenticated: dict[str, int] = {}  # remote address -> sockets waiting for auth
        self.request_lines = cfg.log.format == "json"  # each socket logs its request line when it ends

    def serve(self, chat: Chat, queue: StaffQueue) -> None:
        self.chat = chat
        self.queue = queue
