"""Configuration: frozen msgspec Structs loaded once from config.toml.

Every field has a default (documented in the repo's config.toml), so a missing
file means "embedded defaults". Secrets may come from the environment.
Imports no chatd module.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

log = logging.getLogger("chatd.config")


class ServerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8080
    shutdown_timeout_s: float = 5.0
    trusted_proxies: list[str] = []  # peers whose X-Forwarded-For names the client (e.g. ["127.0.0.1"] behind nginx)


class AuthConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    secret: str = ""  # HS256 key for connection tokens; env CHATD_AUTH_SECRET overrides
    api_key: str = ""  # server-to-server REST key; env CHATD_API_KEY overrides


class StoreConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    path: str = "data/chatd.sqlite3"
    url: str = ""  # "sqlite:///abs/file" or "postgresql://user:pw@host:port/db"; env CHATD_STORE_URL overrides
    pool_size: int = 10  # PostgreSQL: connections per process (up to two write, the others read)
    statement_timeout_s: float = 30.0  # PostgreSQL: a statement running longer is cancelled (internal)
    synchronous: str = "normal"  # "normal" survives kill -9; "full" also power loss
    max_batch: int = 512  # most writes grouped into one transaction


class RelayConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: str = ""  # "" = in-process relay; "redis://host:port/db" across instances


class LimitsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    max_frame_bytes: int = 65536  # larger inbound frame (this size passes): close 1009
    max_text_chars: int = 4000  # longer message text: error too_large
    auth_timeout_s: float = 5.0  # no valid auth by then after the upgrade, whatever arrives: close 4401
    max_unauthenticated_per_ip: int = 32  # sockets of one address waiting for auth; one more: close 4429
    rate_per_s: float = 20.0  # send/set_status/dispute sustained, per connection
    rate_burst: int = 60  # ... and burst; staff and bot are exempt
    read_rate_per_s: float = 10.0  # history/inbox/join sustained, per connection
    read_burst: int = 60  # ... and burst; staff and bot are exempt
    rate_abuse_closes: int = 200  # rate_limited errors in a row before close 4429
    typing_per_s: float = 1.0  # typing frames forwarded per user and order
    typing_ttl_s: float = 6.0  # typing expires without a refresh
    max_conns_per_user: int = 20  # one more: close 4429
    outbound_queue_frames: int = 1000  # frames held for a slow reader: close 1013
    outbound_queue_bytes: int = 8 << 20  # ... or bytes its socket did not take: close 1013
    outbound_buffer_bytes: int = 262144  # socket backlog before frames are held
    heartbeat_s: float = 30.0  # server pings; no pong within it: closed
    history_max: int = 200  # history page cap
    history_default: int = 50
    replay_default: int = 50  # join without since
    replay_since_default: int = 500  # join with since
    replay_max: int = 1000  # join limit cap (applied before reading the store)
    inbox_max: int = 200


class AttachmentsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    dir: str = ""  # "" = "attachments" in the folder of [store] path (also with PostgreSQL); files named by sha256
    max_bytes: int = 20 * 1024 * 1024  # larger upload: 413 too_large
    unreferenced_ttl_s: float = 86400.0  # an upload no message carries is deleted after this
    cleanup_interval_s: float = 300.0  # how often expired uploads are looked for
    max_per_message: int = 10  # attachment ids in one send
    uploads_per_minute: int = 30  # per user (staff and bots exempt), per instance: 429 rate_limited past it
    upload_bytes_per_minute: int = 200 * 1024 * 1024  # per user, every role, per instance: 429 past it


class FilterConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    mode: str = "block"  # contact details between buyer and supplier side: "off", "mask", "block"


class WebhooksConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: str = ""  # "" = no webhooks (nothing is queued)
    secret: str = ""  # whsec_<base64 key> (Standard Webhooks); env CHATD_WEBHOOK_SECRET overrides; required with url
    legacy_headers: bool = True  # also send the X-Chatd-* headers of 0.1 (deprecated, removed in the next release)
    timeout_s: float = 10.0  # one delivery attempt
    backoff_initial_s: float = 1.0  # first retry after this, doubling each time
    backoff_max_s: float = 600.0  # ... up to this
    max_attempts: int = 30  # then the event is kept as dead (metrics) and no longer sent
    concurrency: int = 8  # deliveries in flight at once


class NotifyConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Notifications of messages to participants not in the chat (chatd.notifications);
    on when [webhooks] url or [email] smtp_url is set."""

    delay_s: float = 300.0  # after the latest message a pending one covers (at most twice this after the first)
    max_per_order_per_day: int = 4  # per recipient; over it, messages wait for the next one allowed
    max_per_day: int = 20  # per recipient, all orders
    link_template: str = ""  # e.g. "https://shop.example/orders/{order}" (the order id, URL-quoted)
    staff_email: str = ""  # where e-mail addressed to staff goes (disputes); "" = webhook only
    poll_s: float = 5.0  # how often each instance looks for due notifications


class EmailConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Reply by e-mail (chatd.mail.addresses, chatd.mail.inbound) and built-in
    notification e-mail (chatd.mail.outbound)."""

    # reply by e-mail: the addresses and the inbound SMTP listener
    reply_domain: str = ""  # "" = reply by e-mail off; else reply+<token>@<this> reaches the order chat
    inbound_host: str = "127.0.0.1"  # the inbound SMTP listener's address
    inbound_port: int = 0  # 0 = no listener on this host (another host, or an MTA in front, may run it)
    max_message_bytes: int = 10 * 1024 * 1024  # a larger mail is refused (552), announced as SIZE
    # notification e-mail out
    smtp_url: str = ""  # smtp://user:pass@host:587 (STARTTLS), smtps://... (TLS from the start); env CHATD_SMTP_URL
    from_address: str = "chatd@localhost"
    templates_dir: str = ""  # notification.subject/.txt/.html here replace the built-in ones
    tls_ca_file: str = ""  # trust this CA for the SMTP server (default: the system's)
    timeout_s: float = 30.0


class RetentionConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    attachments_days: float = 0.0  # days after a chat closed (no open dispute) its attachments go; 0 = kept


class StatusConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One status of a `[[workflows.<name>.statuses]]` list (chatd.workflow checks the values)."""

    name: str
    label: str = ""  # "" = the name
    tone: str = "neutral"  # "neutral", "info", "progress", "success", "danger"
    terminal: bool = False  # entering it closes the chat (after close_after_s)
    next: dict[str, list[str]] = {}  # status -> roles that may move the order there


class WorkflowDefConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    statuses: list[StatusConfig] = []  # in pipeline order; the first is a new order's status
    close_after_s: float | None = None  # None = [workflow] close_after_s


class WorkflowConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    default: str = "free"  # a new order's workflow when PUT names none
    close_after_s: float = 0.0  # grace after a terminal status before the chat closes to participants


class SlaConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reply_within_s: float = 86_400.0  # a buyer waiting longer is escalated once (chatd.sla); 0 = never
    check_every_s: float = 60.0  # how often an instance looks for buyers waiting too long


class MetricsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    port: int = 0  # 0 = GET /metrics on the main port; otherwise only on this listener
    host: str = "127.0.0.1"  # the metrics listener's address (with port)


class LogConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format: str = "text"  # "json": one JSON object per line, request lines with order and user (chatd.logs)


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    server: ServerConfig = ServerConfig()
    auth: AuthConfig = AuthConfig()
    store: StoreConfig = StoreConfig()
    relay: RelayConfig = RelayConfig()
    limits: LimitsConfig = LimitsConfig()
    attachments: AttachmentsConfig = AttachmentsConfig()
    filter: FilterConfig = FilterConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    metrics: MetricsConfig = MetricsConfig()
    retention: RetentionConfig = RetentionConfig()
    workflow: WorkflowConfig = WorkflowConfig()
    sla: SlaConfig = SlaConfig()
    notify: NotifyConfig = NotifyConfig()
    email: EmailConfig = EmailConfig()
    log: LogConfig = LogConfig()
    workflows: dict[str, WorkflowDefConfig] = {}  # presets retail, factory, free; a name here overrides one
    dev_secret: bool = False  # set when the secret was generated at start


def _dev_secrets(folder: Path, create: bool = True) -> tuple[str, str] | None:
    """A generated secret and api key kept beside the database, so the
    development server and `chatd token` agree across restarts. None: there is
    none yet and `create` is false."""
    path = folder / "dev-secrets.json"
    if path.exists():
        data = msgspec.json.decode(path.read_bytes())
        return data["secret"], data["api_key"]
    if not create:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    data = {"secret": secrets.token_urlsafe(32), "api_key": secrets.token_urlsafe(24)}
    path.write_bytes(msgspec.json.encode(data))
    path.chmod(0o600)
    return data["secret"], data["api_key"]


def _store(store: StoreConfig, env_url: str | None) -> StoreConfig:
    """Apply CHATD_STORE_URL and check `url`: a sqlite URL becomes `path`
    (so everything kept beside the database follows it), a PostgreSQL URL stays."""
    url = env_url or store.url
    if not url:
        return store
    if url.startswith("sqlite://"):
        path = url[len("sqlite://") :]
        if not path.startswith("/") or len(path) < 2:
            raise ValueError("[store] url: sqlite:///absolute/path (a relative path goes in [store] path)")
        return msgspec.structs.replace(store, path=path, url="")
    if not url.startswith(("postgresql://", "postgres://")):
        raise ValueError("[store] url must start with sqlite:/// or postgresql://")
    if store.pool_size < 1 or store.statement_timeout_s <= 0:
        raise ValueError("[store] pool_size must be at least 1 and statement_timeout_s above 0")
    return msgspec.structs.replace(store, url=url)


def _email(email: EmailConfig) -> EmailConfig:
    """Check `[email]`: a bare domain (kept in lower case, as mail systems may fold
    it), a listener only with a domain to answer for, a sane size bound."""
    domain = email.reply_domain.strip().lower()
    if domain and (not re.fullmatch(r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?", domain) or ".." in domain):
        raise ValueError("[email] reply_domain must be a domain name, such as reply.example.com")
    if not 0 <= email.inbound_port <= 65535:
        raise ValueError("[email] inbound_port must be 0 (no listener) to 65535")
    if email.inbound_port and not domain:
        raise ValueError("[email] inbound_port needs reply_domain (the domain of the reply addresses)")
    if email.max_message_bytes < 1024:
        raise ValueError("[email] max_message_bytes must be at least 1024")
    return msgspec.structs.replace(email, reply_domain=domain)


def _relay_section(raw: dict[str, Any]) -> None:
    """`[broker]`, the old name of `[relay]`: still read for one release
    (deprecated), with a warning."""
    if "broker" in raw:
        if "relay" in raw:
            raise ValueError("[broker] is the old name of [relay]: keep only [relay]")
        log.warning("config: [broker] is deprecated, rename it to [relay]")
        raw["relay"] = raw.pop("broker")


def describe(exc: msgspec.ValidationError) -> str:
    """msgspec's "Expected `int`, got `str` - at `$.server.port`" as one line that names
    the key the way the file does: "[server] port: expected int, got str"."""
    text, _, at = str(exc).partition(" - at `")
    text = text.replace("`", "")
    text = text[:1].lower() + text[1:]
    parts = at.rstrip("`").replace("[...]", ".<name>").split(".")[1:]  # "$.server.port" -> server, port
    m = re.fullmatch(r"object contains unknown field (\S+)", text)
    if m and not parts:
        return f"unknown section [{m[1]}] (sections: {', '.join(f'[{f}]' for f in Config.__struct_fields__[:-1])})"
    if m:
        section = ".".join(parts)
        struct = Config.__annotations__.get(parts[0]) if len(parts) == 1 else None
        known = getattr(globals().get(str(struct)), "__struct_fields__", None)
        return f"[{section}] unknown key {m[1]}" + (f" (keys: {', '.join(known)})" if known else "")
    if not parts:
        return text
    if len(parts) == 1:
        return f"[{parts[0]}]: {text}"
    return f"[{parts[0]}] {'.'.join(parts[1:])}: {text}"


def load(
    path: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None, dev_secrets: bool = True
) -> Config:
    """Read `path` (missing file: defaults), apply env overrides, fill secrets.

    A config without a secret or api key gets generated ones, kept in
    `dev-secrets.json` beside the database (`dev_secret` says so); with
    `dev_secrets` false none is created (an existing one is still read), and
    the secret stays empty. A wrong value raises ValueError with one line that
    names the key and what was expected (tomllib.TOMLDecodeError, a ValueError
    too, for a file that is not TOML).
    """
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    if path is not None and Path(path).exists():
        raw = tomllib.loads(Path(path).read_text())
    _relay_section(raw)
    try:
        cfg = msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        raise ValueError(describe(exc)) from None
    cfg = msgspec.structs.replace(cfg, store=_store(cfg.store, env.get("CHATD_STORE_URL")))
    auth = cfg.auth
    secret = env.get("CHATD_AUTH_SECRET") or auth.secret
    api_key = env.get("CHATD_API_KEY") or auth.api_key
    relay_url = env.get("CHATD_RELAY_URL")
    if env.get("CHATD_BROKER_URL"):  # the old name, deprecated: read for one release
        log.warning("config: CHATD_BROKER_URL is deprecated, use CHATD_RELAY_URL")
        relay_url = relay_url or env["CHATD_BROKER_URL"]
    if relay_url:
        cfg = msgspec.structs.replace(cfg, relay=RelayConfig(url=relay_url))
    if env.get("CHATD_WEBHOOK_SECRET"):
        cfg = msgspec.structs.replace(
            cfg, webhooks=msgspec.structs.replace(cfg.webhooks, secret=env["CHATD_WEBHOOK_SECRET"])
        )
    if cfg.log.format not in ("text", "json"):
        raise ValueError('[log] format must be "text" or "json"')
    if cfg.filter.mode not in ("off", "mask", "block"):
        raise ValueError('[filter] mode must be "off", "mask" or "block"')
    if cfg.attachments.upload_bytes_per_minute < cfg.attachments.max_bytes:
        raise ValueError("[attachments] upload_bytes_per_minute must be at least max_bytes")
    if cfg.webhooks.url and not cfg.webhooks.secret:
        raise ValueError("[webhooks] url needs a secret (or env CHATD_WEBHOOK_SECRET)")
    if cfg.webhooks.secret.startswith("whsec_"):
        from chatd.webhooks import signing_key

        try:
            signing_key(cfg.webhooks.secret)
        except ValueError as exc:
            raise ValueError(f"[webhooks] secret: whsec_ must be followed by a base64 key ({exc})") from None
    if cfg.retention.attachments_days < 0:
        raise ValueError("[retention] attachments_days must not be negative")
    if env.get("CHATD_SMTP_URL"):  # carries a password: keep it out of config files
        cfg = msgspec.structs.replace(cfg, email=msgspec.structs.replace(cfg.email, smtp_url=env["CHATD_SMTP_URL"]))
    if cfg.email.smtp_url and not cfg.email.smtp_url.startswith(("smtp://", "smtps://")):
        raise ValueError("[email] smtp_url must start with smtp:// or smtps://")
    if cfg.notify.delay_s < 0 or cfg.notify.poll_s <= 0:
        raise ValueError("[notify] delay_s must not be negative and poll_s must be positive")
    if cfg.notify.max_per_order_per_day < 1 or cfg.notify.max_per_day < 1:
        raise ValueError("[notify] max_per_order_per_day and max_per_day must be at least 1")
    if cfg.sla.reply_within_s < 0 or cfg.sla.check_every_s <= 0:
        raise ValueError("[sla] reply_within_s must not be negative and check_every_s must be positive")
    cfg = msgspec.structs.replace(cfg, email=_email(cfg.email))
    if cfg.store.synchronous not in ("normal", "full"):
        raise ValueError('[store] synchronous must be "normal" or "full"')
    dev = False  # last: a config with an error writes no file
    if (not secret or not api_key) and (kept := _dev_secrets(Path(cfg.store.path).parent, create=dev_secrets)):
        dev_secret, dev_key = kept
        if not secret:
            secret, dev = dev_secret, True
        api_key = api_key or dev_key
    return msgspec.structs.replace(cfg, auth=AuthConfig(secret=secret, api_key=api_key), dev_secret=dev)
