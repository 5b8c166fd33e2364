"""The `chatd` command: serve, demo, token, migrate-store; tail, say, history (chatd.tools)."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from chatd import config as config_mod
from chatd.auth.permissions import ROLES
from chatd.auth.tokens import issue

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from aiohttp import web

    OnStartup = Callable[[web.Application], Awaitable[None]]

log = logging.getLogger("chatd")

DEMO_ORDER = "demo-1001"
# the orders of the demo's orders page (badges, bell, inbox); the first has the demo bot
DEMO_ORDERS = (DEMO_ORDER, "demo-1002", "demo-1003")
DEMO_PEOPLE = {
    "buyer": ("bea", "Bea Buyer"),
    "supplier": ("sam", "Sam Supplier"),
    "sales_rep": ("rita", "Rita Rep"),
}
DEMO_STAFF = ("stella", "Stella Staff")  # the platform's staff: the console at /console


def _load(path: str | None, dev_secrets: bool = True) -> config_mod.Config:
    """The config, or exit with one line naming the file, the key and what was expected."""
    if path is not None and not Path(path).exists():
        raise SystemExit(f"chatd: config file {path} not found")
    name = path if path is not None else "config.toml"
    from chatd.workflow import Workflows

    try:
        cfg = config_mod.load(name, dev_secrets=dev_secrets)
        Workflows(cfg.workflow, cfg.workflows)  # checked before anything starts
    except ValueError as exc:  # tomllib.TOMLDecodeError is one too
        prefix = f"{name}: " if Path(name).exists() else ""
        what = f"not valid TOML: {exc}" if isinstance(exc, tomllib.TOMLDecodeError) else str(exc)
        raise SystemExit(f"chatd: {prefix}{what}") from None
    return cfg


NO_SECRET = (
    "chatd token: no [auth] secret configured, so a token would be signed with a throwaway key that "
    "the server does not know. Set [auth] secret in the server's config file and pass it with --config, "
    "or set env CHATD_AUTH_SECRET to the server's secret."
)


def _token(args: argparse.Namespace) -> int:
    """`chatd token`: signed with the configured secret; none configured: refused, unless the
    development server of this directory has already generated one (data/dev-secrets.json)."""
    cfg = _load(args.config, dev_secrets=False)
    if not cfg.auth.secret:
        print(NO_SECRET, file=sys.stderr)
        return 2
    if cfg.dev_secret:
        where = Path(cfg.store.path).parent / "dev-secrets.json"
        print(f"chatd token: signed with the development secret in {where} (no [auth] secret set)", file=sys.stderr)
    orders: str | list[str] | None = None
    if args.orders is not None:
        orders = "*" if args.orders == "*" else [o for o in args.orders.split(",") if o]
    print(issue(cfg.auth.secret, args.sub, args.role, args.name, args.ttl_s, orders))
    return 0


def _check_config(args: argparse.Namespace) -> int:
    """`chatd check-config`: read the config as `serve` would, change nothing, say what is wrong."""
    cfg = _load(args.config, dev_secrets=False)
    name = args.config or "config.toml"
    source = name if Path(name).exists() else f"no {name}: the embedded defaults"
    print(f"chatd check-config: {source}: ok", flush=True)
    if not cfg.auth.secret or not cfg.auth.api_key or cfg.dev_secret:
        print(
            "chatd check-config: warning: no [auth] secret or api_key set (or env CHATD_AUTH_SECRET, "
            "CHATD_API_KEY): `chatd serve` would use generated development ones",
            file=sys.stderr,
        )
    return 0


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    import asyncio

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _tune_gc(app: web.Application) -> None:
    """Start-up objects never die: move them out of the collector's sight, and
    collect the young generation less often, so thousands of connections do
    not turn into long pauses of the loop."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    gc.callbacks.append(_log_long_collections)


_gc_started = [0.0]


def _log_long_collections(phase: str, info: dict[str, int]) -> None:
    """A collection that stops the loop for more than 20 ms is worth a log line."""
    import time

    if phase == "start":
        _gc_started[0] = time.perf_counter()
    elif (pause := time.perf_counter() - _gc_started[0]) > 0.02:
        log.warning(
            "gc generation %d paused the loop for %.0f ms (%d collected)",
            info["generation"],
            pause * 1000,
            info["collected"],
        )


def serve(cfg: config_mod.Config, on_startup: OnStartup | None = None, reuse_port: bool = False) -> None:
    import faulthandler
    import signal

    from chatd.app import create_app
    from chatd.edge import server

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 PID`: every thread's stack

    if cfg.dev_secret:
        log.warning(
            "no [auth] secret configured: using a generated development secret and api key "
            "(kept in %s); set [auth] secret and api_key for anything but development",
            Path(cfg.store.path).parent / "dev-secrets.json",
        )
    _use_uvloop()
    app = create_app(cfg)
    if on_startup is not None:
        app.on_startup.append(on_startup)
    app.on_startup.append(_tune_gc)
    server.run(
        app,
        cfg.server,
        reuse_port,
        on_listening=lambda msg: log.info("listening on http://%s:%d", cfg.server.host, cfg.server.port),
        request_lines=cfg.log.format == "json",
    )


def _demo_startup(cfg: config_mod.Config) -> OnStartup:
    async def start(app: web.Application) -> None:
        from chatd.edge.demo import add_demo_bot
        from chatd.edge.keys import CHAT
        from chatd.store.records import Person

        p = DEMO_PEOPLE
        for order in DEMO_ORDERS:
            await app[CHAT].register_order(
                order, None, Person(*p["buyer"]), Person(*p["supplier"]), Person(*p["sales_rep"])
            )

        add_demo_bot(app, DEMO_ORDER)  # POST /demo/bot (startup runs before the router freezes)
        base = f"http://{cfg.server.host}:{cfg.server.port}"
        lines = [f"chatd demo: order {DEMO_ORDER} at {base}"]
        for role, (uid, name) in p.items():
            token = issue(cfg.auth.secret, uid, role, name, ttl_s=7 * 86400)
            lines.append(f"  {name} ({role}): {base}/demo?order={DEMO_ORDER}&token={token}")
            lines.append(f"    orders page (badges, bell, inbox): {base}/demo/orders?token={token}")
        staff = issue(cfg.auth.secret, DEMO_STAFF[0], "staff", DEMO_STAFF[1], ttl_s=7 * 86400)
        lines.append(f"  {DEMO_STAFF[1]} (staff): staff console {base}/console?token={staff}")
        bot = issue(cfg.auth.secret, "delivery-bot", "bot", "Delivery Bot", ttl_s=7 * 86400, orders="*")
        lines.append('  demo bot:  the "Post ... as the demo bot" button on each page posts a status update')
        lines.append(f"  bot token: {bot}")
        lines.append(f"  api key:   {cfg.auth.api_key}")
        print("\n".join(lines), flush=True)

    return start


def _without_option(args: list[str], name: str) -> list[str]:
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a == name:
            skip = True
        elif not a.startswith(name + "="):
            out.append(a)
    return out


def _migrate_store(args: argparse.Namespace) -> int:
    """`chatd migrate-store`: the work is chatd.store.copy's; progress on stderr, the summary on stdout."""
    import asyncio

    from chatd.store.copy import CopyError, copy_store

    try:
        report = asyncio.run(
            copy_store(
                args.source,
                args.target,
                args.batch,
                progress=lambda line: print(f"chatd migrate-store: {line}", file=sys.stderr, flush=True),
            )
        )
    except CopyError as exc:
        print(f"chatd migrate-store: {exc}", file=sys.stderr)
        return 1
    print(report.summary(), flush=True)
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="chatd", description="Realtime chat for e-commerce orders.")
    sub = parser.add_subparsers(dest="command", required=True)

    p_serve = sub.add_parser("serve", help="run the server")
    p_serve.add_argument("--config", help="config file (default ./config.toml; none: embedded defaults)")
    p_serve.add_argument("--host")
    p_serve.add_argument("--port", type=int)
    p_serve.add_argument(
        "--workers", type=int, default=1, help="processes sharing the port (needs [relay] url = redis://...)"
    )
    p_serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)

    p_demo = sub.add_parser("demo", help="run the server with a demo order and print its links")
    p_demo.add_argument("--config")
    p_demo.add_argument("--port", type=int)

    p_token = sub.add_parser("token", help="print a signed connection token")
    p_token.add_argument("--config")
    p_token.add_argument("--sub", required=True, help="user id")
    p_token.add_argument("--role", required=True, choices=sorted(ROLES))
    p_token.add_argument("--name")
    p_token.add_argument("--ttl-s", type=float, default=3600)
    p_token.add_argument("--orders", help="bots: comma-separated order ids, or *")

    p_check = sub.add_parser(
        "check-config",
        help="read the config as serve does and report the first error (exit 1), or ok",
        description="Read the config file (and the CHATD_* environment) exactly as `chatd serve` does, "
        "without starting anything or writing any file. Prints ok, or one line naming the key that is "
        "wrong and what was expected, and exits 1.",
    )
    p_check.add_argument("--config", help="config file (default ./config.toml; none: embedded defaults)")

    sub.add_parser("openapi", help="print the OpenAPI 3.1 document of the REST routes (docs/openapi.json)")

    p_copy = sub.add_parser(
        "migrate-store",
        help="copy a SQLite database into an empty PostgreSQL one (chatd stopped)",
        description="Copy every order, message, read marker, unread total, attachment row and pending "
        "webhook event of a SQLite installation into PostgreSQL. The source is only read; the "
        "target is migrated to the current schema and must hold no chatd data. See "
        "docs/operations.md, Moving from SQLite to PostgreSQL.",
    )
    p_copy.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="SQLITE",
        help="sqlite:///path/to/chatd.sqlite3 (or a plain path)",
    )
    p_copy.add_argument(
        "--to", dest="target", required=True, metavar="POSTGRESQL", help="postgresql://user:password@host:port/database"
    )
    p_copy.add_argument("--batch", type=int, default=5000, help="rows per COPY (default 5000)")

    from chatd import tools

    tools.register(sub)  # tail, say, history: clients of a running server

    args = parser.parse_args(argv)
    if getattr(args, "tool", None) is not None:
        raise SystemExit(tools.run(args))
    if args.command == "migrate-store":
        raise SystemExit(_migrate_store(args))
    if args.command == "token":
        raise SystemExit(_token(args))
    if args.command == "openapi":
        from chatd.edge.rest import openapi

        openapi.write()
        return
    if args.command == "check-config":
        raise SystemExit(_check_config(args))
    cfg = _load(args.config)
    from chatd import logs

    logs.configure(cfg.log.format)
    if args.command in ("serve", "demo"):
        import msgspec

        server = cfg.server
        if getattr(args, "host", None):
            server = msgspec.structs.replace(server, host=args.host)
        if args.port is not None:
            server = msgspec.structs.replace(server, port=args.port)
        cfg = msgspec.structs.replace(cfg, server=server)
        workers_n = getattr(args, "workers", 1)
        if workers_n != 1:
            from chatd import workers

            workers.check(workers_n, cfg.relay.url)
            child = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "serve"]
            child = _without_option(child, "--workers")
            raise SystemExit(workers.run(workers_n, child))
        serve(
            cfg, _demo_startup(cfg) if args.command == "demo" else None, reuse_port=getattr(args, "reuse_port", False)
        )


if __name__ == "__main__":
    main()
