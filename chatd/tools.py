"""`chatd tail`, `chatd say`, `chatd history`: small tools on the client SDK.

Each takes the server URL and a credential from options or the environment
(CHATD_URL, CHATD_TOKEN, CHATD_API_KEY). Exit status: 0 done, 1 another
refusal from the server, 2 a usage problem, an unreachable server, a refused
token or an order that cannot be reached, each with a line saying what to do.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatd import wire

DEFAULT_URL = "http://127.0.0.1:8080"


class UsageError(Exception):
    """A problem the user fixes on the command line (exit 2)."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the tools to the `chatd` command's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"server URL (env CHATD_URL; default {DEFAULT_URL})")
    common.add_argument("--token", help="connection token, a JWT (env CHATD_TOKEN)")
    common.add_argument("--api-key", help="REST api key (env CHATD_API_KEY)")
    common.add_argument("--order", required=True, help="order id")

    p = sub.add_parser("tail", parents=[common], help="follow an order's chat live (needs a token)")
    p.add_argument("--json", action="store_true", help="every event as one JSON object per line")
    p.add_argument("--since", type=int, help="replay messages after this seq first")
    p.set_defaults(tool=tail)

    p = sub.add_parser("say", parents=[common], help="post a message as a bot, or change the status")
    p.add_argument("--text", help="message text (optional with --status)")
    p.add_argument("--status", help="set the order's status (posts a status message; needs a token)")
    p.add_argument("--client-id", help="idempotency key: the same id is stored once")
    p.set_defaults(tool=say)

    p = sub.add_parser("history", parents=[common], help="export an order's messages over REST")
    p.add_argument("--ndjson", action="store_true", help="one JSON message per line, as the server sends them")
    p.set_defaults(tool=history)


def run(args: argparse.Namespace) -> int:
    """Run the tool `args` names; return the exit status."""
    from chatd.client import errors

    url = args.url or os.environ.get("CHATD_URL") or DEFAULT_URL
    token = args.token or os.environ.get("CHATD_TOKEN") or None
    api_key = args.api_key or os.environ.get("CHATD_API_KEY") or None
    name = f"chatd {args.command}"
    _log_to_stderr(name)
    try:
        status: int = asyncio.run(args.tool(args, url, token, api_key))
        return status
    except UsageError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
    except errors.ConnectionFailed as exc:
        if exc.close_code is not None:  # the server answered, and said why it closed
            hint = "Close some of this id's other connections, or wait." if exc.close_code == 4429 else ""
        else:
            hint = "Is the server running, and is --url (or CHATD_URL) right?"
        print(f"{name}: {exc.message}. {hint}".rstrip(), file=sys.stderr)
    except errors.Unauthorized as exc:
        if getattr(args, "used", "token") == "api key":
            hint = "Check --api-key (or CHATD_API_KEY) against the server's [auth] api_key."
        else:
            hint = (
                f"Get a new one, e.g. `chatd token --sub my-bot --role bot --orders {args.order}`, "
                "and pass it with --token or CHATD_TOKEN."
            )
        print(
            f"{name}: the server refused the {getattr(args, 'used', 'token')} ({exc.message}). {hint}", file=sys.stderr
        )
    except (errors.NotFound, errors.Forbidden) as exc:
        if exc.code == "not_found":
            print(f"{name}: order {args.order!r} does not exist, or this credential may not see it.", file=sys.stderr)
        else:
            print(f"{name}: not allowed on order {args.order!r}: {exc.message}.", file=sys.stderr)
    except errors.ChatdError as exc:
        print(f"{name}: the server said {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader went away (`| head`): not an error, and nothing left to flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 2


def _log_to_stderr(name: str) -> None:
    """Reconnects and give-ups of the client, as short lines on stderr."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{name}: %(message)s"))
    log = logging.getLogger("chatd.client")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _need_token(token: str | None) -> str:
    if token is None:
        raise UsageError(
            "a connection token is needed: pass --token or set CHATD_TOKEN "
            "(an api key only works for REST: `chatd history`, or `chatd say` without --status)"
        )
    return token


def _until_signalled() -> None:
    """SIGINT / SIGTERM end the running tool quietly (exit 0)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("_until_signalled needs to run in a task")
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)


# --- output ----------------------------------------------------------------------


def format_message(m: wire.Message) -> str:
    """One readable line: time, seq, who, what."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m.ts / 1000))
    text = m.text.replace("\n", "\n    ")
    if m.kind == "status":
        text = f"[status: {m.status}] {text}"
    elif m.kind != "text":
        text = f"[{m.kind}] {text}"
    return f"{when} #{m.seq} {m.sender.name} ({m.sender.role}): {text}"


def format_event(ev: object) -> str | None:
    """A readable line for the events worth a line (None for the rest)."""
    from chatd import wire

    match ev:
        case wire.Message():
            return format_message(ev)
        case wire.Joined():
            people = ", ".join(f"{p.name} ({p.role})" for p in ev.participants)
            return f"-- {ev.order}: status {ev.status}, last seq {ev.last_seq}; {people}"
        case wire.OrderState():
            dispute = " (dispute open)" if ev.dispute is not None and ev.dispute.open else ""
            return f"-- {ev.order}: status {ev.status}{dispute}"
        case wire.Left():
            return f"-- left {ev.order} ({ev.reason})"
    return None


def _writer(as_json: bool) -> Callable[[object], None]:
    from chatd import wire

    out = sys.stdout
    if as_json:

        def write(ev: object) -> None:
            out.buffer.write(wire.encode(ev) + b"\n")
            out.buffer.flush()
    else:

        def write(ev: object) -> None:
            line = format_event(ev)
            if line is not None:
                print(line, file=out, flush=True)

    return write


# --- the tools -----------------------------------------------------------------------


async def tail(args: argparse.Namespace, url: str, token: str | None, api_key: str | None) -> int:
    from chatd import client, wire

    token = _need_token(token)
    write = _writer(args.json)
    _until_signalled()
    try:
        async with client.connect(url, token) as c:
            await c.join(args.order, since=args.since)
            async for ev in c:
                write(ev)
                if isinstance(ev, wire.Left) and ev.order == args.order:
                    print(f"chatd tail: access to order {args.order!r} ended ({ev.reason}).", file=sys.stderr)
                    return 2
    except asyncio.CancelledError:
        return 0
    return 0


async def say(args: argparse.Namespace, url: str, token: str | None, api_key: str | None) -> int:
    from chatd import client
    from chatd.client.rest import Rest

    if args.text is None and args.status is None:
        raise UsageError("give --text, or --status (and optionally --text)")
    if token is not None:
        async with client.connect(url, token, reconnect_timeout_s=30.0) as c:
            if args.status is not None:
                ack = await c.set_status(args.order, args.status, args.text, client_id=args.client_id)
            else:
                ack = await c.send(args.order, args.text, client_id=args.client_id)
    elif api_key is not None:
        if args.status is not None:
            raise UsageError("--status needs a connection token (--token or CHATD_TOKEN)")
        args.used = "api key"
        async with Rest(url, api_key) as api:
            ack = await api.post(args.order, args.text, client_id=args.client_id)
    else:
        raise UsageError("pass a bot token (--token or CHATD_TOKEN) or an api key (--api-key or CHATD_API_KEY)")
    again = " (already stored: same client id)" if ack.duplicate else ""
    print(f"{args.order} #{ack.seq}{again}")
    return 0


async def history(args: argparse.Namespace, url: str, token: str | None, api_key: str | None) -> int:
    from chatd.client.rest import Rest

    credential = api_key or token
    args.used = "api key" if api_key else "token"
    if credential is None:
        raise UsageError("pass an api key (--api-key or CHATD_API_KEY) or a token (--token or CHATD_TOKEN)")
    async with Rest(url, credential) as api:
        if args.ndjson:
            out = sys.stdout.buffer
            async for line in api.export_lines(args.order):
                out.write(line + b"\n")
            out.flush()
        else:
            async for m in api.export(args.order):
                print(format_message(m))
            sys.stdout.flush()
    return 0
