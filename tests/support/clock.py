"""The one injected wall clock of the tests: seconds the test moves by hand."""

from __future__ import annotations


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def inject(server) -> Clock:
    """One clock for every wall-clock reader of the in-process app: message timestamps
    (the store), chat lifecycle, escalation and notifications."""
    from chatd.edge.keys import CHAT, NOTIFIER, SLA

    clock = Clock()
    app = server.app
    app[CHAT].store.clock = app[CHAT].close_clock = clock
    app[SLA].clock = app[NOTIFIER].clock = clock
    return clock
