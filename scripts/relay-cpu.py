"""CPU per message of a relay alone, without the server around it.

    .venv/bin/python scripts/relay-cpu.py local
    .venv/bin/python scripts/relay-cpu.py redis://127.0.0.1:6399/1

One instance watching 1,000 rooms and 3,000 users publishes the events of
RATE messages a second (a room event and two users' unread, as chat does for
a message in a room of three) for SECONDS, paced every millisecond, and
prints the process's CPU time per message. The figures in the bench's
server CPU are noisy on a shared machine; this one isolates the relay's share.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from chatd.rooms.events import RoomEvent, UserEvent


class Counter:
    """A Handler that only counts."""

    n = 0

    def deliver_room(self, ev) -> None:
        self.n += 1

    def deliver_user(self, ev) -> None:
        self.n += 1

    def resync(self, orders=None) -> None:
        pass


async def run(target: str, rate: int, seconds: float) -> None:
    if target == "local":
        from chatd.relay.local import LocalRelay

        relay = LocalRelay()
    else:
        from chatd.relay.redis import RedisRelay

        relay = RedisRelay(target, lambda order, user, online: b"presence")
    handler = Counter()
    await relay.start(handler)
    for i in range(1000):
        relay.watch_room(f"o{i}", True)
        for j in range(3):
            relay.watch_user(f"u{i}-{j}", True)
        await asyncio.sleep(0)  # as joins come: not all presence reads at once
    await asyncio.sleep(2.0)
    loop = asyncio.get_running_loop()
    start, cpu, sent, text = loop.time(), time.process_time(), 0, b"x" * 250
    while (now := loop.time()) - start < seconds:
        while sent < int((now - start) * rate):
            order = sent % 1000
            relay.publish_room(RoomEvent(f"o{order}", text, seq=sent))
            relay.publish_user(UserEvent(f"u{order}-1", b"unread"))
            relay.publish_user(UserEvent(f"u{order}-2", b"unread"))
            sent += 1
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.5)  # the last echoes
    cpu = time.process_time() - cpu
    print(
        f"{target}: {sent} msgs in {seconds:.0f} s, CPU {100 * cpu / seconds:.1f} % of a core, "
        f"{1e6 * cpu / sent:.1f} us/msg ({handler.n} deliveries)"
    )
    await relay.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("target", help="local, or a Redis URL")
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=8.0)
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(run(args.target, args.rate, args.seconds))


if __name__ == "__main__":
    main()
