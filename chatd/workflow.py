"""Order workflows: the status pipelines, who may move an order on, and when its chat closes.

Pure: the definitions (three presets, overridden or extended by `[workflows.<name>]`),
the transition check and what a user may do next. The chat service builds the
decisions from it, the store runs them against the order's locked row, so two
instances changing one order's status cannot both pass on a stale status.

A chat *closes* when its order has sat in a terminal status for the workflow's
`close_after_s`: participants may still read, but not post, upload or type, unless
a dispute is open (the buyer can always complain). Staff and bots are never closed out.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping

import msgspec

from chatd.auth import permissions
from chatd.blank import is_blank
from chatd.config import WorkflowConfig, WorkflowDefConfig
from chatd.errors import BadRequest, Conflict, Forbidden
from chatd.store.records import OrderRecord

TONES = ("neutral", "info", "progress", "success", "danger")


def check_status(status: str, ref: str | None = None) -> None:
    """A status is one line of visible text: it shows as a badge, in "Status changed to
    ...", and in an e-mail's subject. A free workflow takes any such text."""
    if is_blank(status) or any(unicodedata.category(c) == "Cc" for c in status):
        raise BadRequest("status must be one line of visible text (no line breaks or control characters)", ref=ref)


def changed_text(wf: Workflow, status: str) -> str:
    """The status message's text when none is given: the status as the workflow labels it
    ("Status changed to In production", not "in_production")."""
    return f"Status changed to {wf.describe(status)[0]}"


FREE = "free"
FREE_INITIAL = "open"  # a free order's status when it is registered without one


class StatusDef(msgspec.Struct, frozen=True):
    name: str
    label: str
    tone: str
    terminal: bool
    next: Mapping[str, frozenset[str]]  # status -> roles that may move the order there


class Workflow(msgspec.Struct, frozen=True):
    """One pipeline. `free`: any status, set by `permissions.STATUS_SETTERS`, never closing."""

    name: str
    statuses: tuple[StatusDef, ...]
    close_after_s: float
    free: bool = False

    def get(self, status: str) -> StatusDef | None:
        return next((s for s in self.statuses if s.name == status), None)

    @property
    def initial(self) -> str:
        return FREE_INITIAL if self.free else self.statuses[0].name

    def has(self, status: str) -> bool:
        return self.free or self.get(status) is not None

    def describe(self, status: str) -> tuple[str, str]:
        """(label, tone) of a status; one the workflow does not define shows as itself."""
        s = self.get(status)
        return (s.label, s.tone) if s else (status, "neutral")

    def terminal(self, status: str) -> bool:
        s = self.get(status)
        return s is not None and s.terminal

    def refusal(self, current: str, target: str, role: str) -> Conflict | Forbidden | None:
        """Why `role` may not move an order from `current` to `target` (None: it may)."""
        if self.free:
            return None if permissions.may_set_status(role) else Forbidden(f"role {role} cannot change the status")
        here = self.get(current)
        if here is None or target not in here.next:
            return Conflict(f"the status cannot change from {current} to {target}")
        if role not in here.next[target]:
            return Forbidden(f"role {role} cannot change the status from {current} to {target}")
        return None

    def next_for(self, current: str, role: str) -> list[StatusDef]:
        """The statuses `role` may move an order in `current` to, in pipeline order."""
        here = self.get(current)
        if here is None:
            return []
        return [s for s in self.statuses if s.name in here.next and role in here.next[s.name]]


_SUPPLIER_SIDE = frozenset(permissions.SUPPLIER_SIDE | permissions.OPERATOR_ROLES)
_MAKER = frozenset({"supplier", "staff", "bot"})


def _s(name: str, label: str, tone: str, terminal: bool = False, **next: frozenset[str]) -> StatusDef:
    return StatusDef(name, label, tone, terminal, next)


PRESETS: dict[str, Workflow] = {
    # help page "Product Orders": the business confirms, fulfils and ships; customers may not
    "retail": Workflow(
        "retail",
        (
            _s("pending", "Pending", "neutral", in_progress=_SUPPLIER_SIDE, cancelled=_SUPPLIER_SIDE),
            _s("in_progress", "In Progress", "info", shipped=_SUPPLIER_SIDE, cancelled=_SUPPLIER_SIDE),
            _s("shipped", "Shipped", "progress", completed=_SUPPLIER_SIDE),
            _s("completed", "Completed", "success", True),
            _s("cancelled", "Cancelled", "danger", True),
        ),
        0.0,
    ),
    # the factory's "Managing Active Orders": the factory advances it, the buyer confirms receipt
    "factory": Workflow(
        "factory",
        (
            _s("confirmed", "Confirmed", "neutral", in_production=_MAKER),
            _s("in_production", "In Production", "info", quality_check=_MAKER),
            _s("quality_check", "Quality Check", "info", shipped=_MAKER),
            _s("shipped", "Shipped", "progress", delivered=frozenset({"buyer", "staff"})),
            _s("delivered", "Delivered", "success", completed=frozenset({"staff", "bot"})),
            _s("completed", "Completed", "success", True),
        ),
        0.0,
    ),
    FREE: Workflow(FREE, (), 0.0, free=True),
}


def _from_config(name: str, cfg: WorkflowDefConfig, close_after_s: float) -> Workflow:
    if not cfg.statuses:
        raise ValueError(f"[workflows.{name}] needs at least one status")
    names = [s.name for s in cfg.statuses]
    if len(set(names)) != len(names) or not all(names):
        raise ValueError(f"[workflows.{name}] status names must be unique and not empty")
    out = []
    for s in cfg.statuses:
        if s.tone not in TONES:
            raise ValueError(f"[workflows.{name}] status {s.name}: tone must be one of {', '.join(TONES)}")
        for target, roles in s.next.items():
            if target not in names:
                raise ValueError(f"[workflows.{name}] status {s.name}: no status {target} to move to")
            if unknown := set(roles) - permissions.ROLES:
                raise ValueError(f"[workflows.{name}] status {s.name}: unknown roles {sorted(unknown)}")
        out.append(
            StatusDef(s.name, s.label or s.name, s.tone, s.terminal, {t: frozenset(r) for t, r in s.next.items()})
        )
    return Workflow(name, tuple(out), close_after_s if cfg.close_after_s is None else cfg.close_after_s)


class Workflows:
    """Every workflow of the deployment by name, and the default for a new order."""

    def __init__(
        self, cfg: WorkflowConfig | None = None, definitions: Mapping[str, WorkflowDefConfig] | None = None
    ) -> None:
        cfg = cfg or WorkflowConfig()
        if cfg.close_after_s < 0:
            raise ValueError("[workflow] close_after_s must not be negative")
        grace = cfg.close_after_s
        self.by_name = {n: msgspec.structs.replace(w, close_after_s=grace) for n, w in PRESETS.items()}
        for name, d in (definitions or {}).items():
            if name == FREE:
                raise ValueError("[workflows.free] is built in and cannot be redefined")
            self.by_name[name] = _from_config(name, d, grace)
        if any(w.close_after_s < 0 for w in self.by_name.values()):
            raise ValueError("[workflows] close_after_s must not be negative")
        if cfg.default not in self.by_name:
            raise ValueError(f"[workflow] default: no workflow named {cfg.default}")
        self.default = cfg.default

    def get(self, name: str) -> Workflow:
        """The order's workflow; one no longer configured behaves as `free`."""
        return self.by_name.get(name) or self.by_name[FREE]

    def names(self) -> Iterable[str]:
        return self.by_name.keys()

    def pick(self, name: str | None) -> Workflow:
        """The workflow a registration names (`bad_request` if unknown), or the default."""
        if name is None:
            return self.by_name[self.default]
        if name not in self.by_name:
            raise BadRequest(f"no workflow named {name}")
        return self.by_name[name]


# --- the chat lifecycle ----------------------------------------------------------------


def closes_at(wf: Workflow, status: str, now_ms: int) -> int | None:
    """When the chat of an order entering `status` closes (ms), None if it stays open."""
    return now_ms + int(wf.close_after_s * 1000) if wf.terminal(status) else None


def closed(order: OrderRecord, now_ms: int) -> bool:
    """Closed to participants now: past its close time and no dispute open."""
    if order.closes_at is None or now_ms < order.closes_at:
        return False
    return not (order.dispute is not None and order.dispute.open)


def check_open(order: OrderRecord, role: str, now_ms: int, ref: str | None = None) -> None:
    """Participants may not post (upload, type) in a closed chat; staff and bots may."""
    if role in permissions.PARTICIPANT_ROLES and closed(order, now_ms):
        raise Forbidden(f"the chat is closed: the order is {order.status}", ref=ref)
