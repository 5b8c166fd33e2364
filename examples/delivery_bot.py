"""A delivery bot: moves an order through its statuses, with a message at each step.

Try it against the demo server (`chatd demo` prints an order and a bot token):

    CHATD_TOKEN=<bot token> python examples/delivery_bot.py --order demo-1001

It starts from the order's current status, so running it again after a
crash goes on where it stopped; each step's `client_id` is derived from the
order and the status, so a step that was stored but not acknowledged is not
posted twice. Without CHATD_TOKEN but with CHATD_AUTH_SECRET (the server's
secret), it signs its own short-lived tokens, and the client asks for a new
one whenever the server says the old one expired.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from chatd import client

STEPS = [
    ("confirmed", "Thanks for your order! It is confirmed and queued for packing."),
    ("packed", "Your order is packed and waiting for the courier."),
    ("shipped", "Your order is on its way."),
    ("delivered", "Your order has been delivered. Enjoy!"),
]


def token_source(order: str):
    """A fixed token from CHATD_TOKEN, or a function that signs a fresh one."""
    token = os.environ.get("CHATD_TOKEN")
    if token:
        return token
    secret = os.environ.get("CHATD_AUTH_SECRET")
    if not secret:
        raise SystemExit("delivery_bot: set CHATD_TOKEN (a bot token) or CHATD_AUTH_SECRET")
    from chatd.auth.tokens import issue

    return lambda: issue(secret, "delivery-bot", "bot", "Delivery Bot", ttl_s=300, orders=[order])


async def deliver(url: str, token, order: str, pause_s: float = 1.0) -> None:
    async with client.connect(url, token) as chat:
        joined = await chat.join(order)
        statuses = [status for status, _ in STEPS]
        done = statuses.index(joined.status) + 1 if joined.status in statuses else 0
        for status, text in STEPS[done:]:
            async with chat.typing(order):  # "Delivery Bot is typing..." while it works
                await asyncio.sleep(pause_s)
            ack = await chat.set_status(order, status, text, client_id=f"delivery-bot:{order}:{status}")
            print(f"{order}: {status} (#{ack.seq})", flush=True)
        if done == len(STEPS):
            print(f"{order}: already {joined.status}, nothing to do", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("CHATD_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--order", required=True)
    parser.add_argument("--pause-s", type=float, default=1.0, help="time spent 'working' on each step")
    args = parser.parse_args()
    try:
        asyncio.run(deliver(args.url, token_source(args.order), args.order, args.pause_s))
    except client.ChatdError as exc:
        raise SystemExit(f"delivery_bot: {exc}") from None


if __name__ == "__main__":
    main()
