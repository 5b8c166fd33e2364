"""chatd.workflow: the presets, config definitions, transition checks, next statuses and closing."""

from __future__ import annotations

import pytest

from chatd import config, workflow
from chatd.errors import BadRequest, Conflict, Forbidden
from chatd.store.records import OrderRecord, Person
from chatd.wire import DisputeState
from chatd.workflow import Workflows

ROLES = ("buyer", "supplier", "sales_rep", "staff", "bot")


def order(status: str, closes_at: int | None = None, dispute_open: bool | None = None) -> OrderRecord:
    dispute = None if dispute_open is None else DisputeState(dispute_open, "late", "b", 1, "Bea")
    return OrderRecord(
        "o1", status, Person("b", "B"), Person("s", "S"), None, dispute, 0, 0, 0, workflow="retail", closes_at=closes_at
    )


def allowed(wf: workflow.Workflow) -> set[tuple[str, str, str]]:
    """Every (from, to, role) the workflow allows, by asking `refusal`."""
    names = [s.name for s in wf.statuses]
    return {(a, b, r) for a in names for b in names for r in ROLES if wf.refusal(a, b, r) is None}


def test_retail_preset_is_the_help_pages_pipeline():
    wf = Workflows().get("retail")
    assert [s.name for s in wf.statuses] == ["pending", "in_progress", "shipped", "completed", "cancelled"]
    assert wf.initial == "pending"
    assert [s.tone for s in wf.statuses] == ["neutral", "info", "progress", "success", "danger"]
    assert {s.name for s in wf.statuses if s.terminal} == {"completed", "cancelled"}
    side = ("supplier", "sales_rep", "staff", "bot")
    moves = [
        ("pending", "in_progress"),
        ("pending", "cancelled"),
        ("in_progress", "shipped"),
        ("in_progress", "cancelled"),
        ("shipped", "completed"),
    ]
    assert allowed(wf) == {(a, b, r) for a, b in moves for r in side}


def test_factory_preset_lets_the_buyer_confirm_delivery():
    wf = Workflows().get("factory")
    assert [s.name for s in wf.statuses] == [
        "confirmed",
        "in_production",
        "quality_check",
        "shipped",
        "delivered",
        "completed",
    ]
    maker = ("supplier", "staff", "bot")
    expected = {
        (a, b, r)
        for a, b in [("confirmed", "in_production"), ("in_production", "quality_check"), ("quality_check", "shipped")]
        for r in maker
    }
    expected |= {("shipped", "delivered", r) for r in ("buyer", "staff")}
    expected |= {("delivered", "completed", r) for r in ("staff", "bot")}
    assert allowed(wf) == expected
    assert [s.name for s in wf.next_for("shipped", "buyer")] == ["delivered"]
    assert wf.next_for("shipped", "supplier") == []


def test_refusals_are_conflict_for_the_status_and_forbidden_for_the_role():
    wf = Workflows().get("retail")
    assert isinstance(wf.refusal("pending", "shipped", "supplier"), Conflict)
    assert isinstance(wf.refusal("pending", "nonsense", "staff"), Conflict)
    assert isinstance(wf.refusal("completed", "pending", "staff"), Conflict)
    assert isinstance(wf.refusal("pending", "in_progress", "buyer"), Forbidden)


def test_free_is_todays_behaviour():
    wf = Workflows().get("free")
    assert wf.initial == "open" and wf.has("anything") and not wf.terminal("completed")
    for role in ROLES:
        refusal = wf.refusal("open", "whatever", role)
        assert (refusal is None) == (role in ("supplier", "staff", "bot")), role
    assert wf.describe("paid") == ("paid", "neutral") and wf.next_for("open", "staff") == []


def test_default_and_pick():
    ws = Workflows()
    assert ws.pick(None).name == "free" and ws.pick("factory").name == "factory"
    with pytest.raises(BadRequest):
        ws.pick("nope")
    assert Workflows(config.WorkflowConfig(default="retail")).pick(None).name == "retail"
    with pytest.raises(ValueError, match="default"):
        Workflows(config.WorkflowConfig(default="nope"))
    assert ws.get("gone-from-config").name == "free"  # an order whose workflow was removed


def _defs(toml: str, tmp_path) -> config.Config:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    return config.load(path, {"CHATD_AUTH_SECRET": "s" * 32, "CHATD_API_KEY": "k" * 24})


def test_config_overrides_a_preset_and_adds_one(tmp_path):
    cfg = _defs(
        """
[workflow]
default = "rental"
close_after_s = 60

[workflows.rental]
close_after_s = 5
[[workflows.rental.statuses]]
name = "booked"
label = "Booked"
next = {returned = ["staff", "buyer"]}
[[workflows.rental.statuses]]
name = "returned"
tone = "success"
terminal = true

[[workflows.retail.statuses]]
name = "pending"
next = {done = ["staff"]}
[[workflows.retail.statuses]]
name = "done"
terminal = true
""",
        tmp_path,
    )
    ws = Workflows(cfg.workflow, cfg.workflows)
    rental = ws.pick(None)
    assert rental.name == "rental" and rental.close_after_s == 5
    assert rental.describe("returned") == ("returned", "success")  # label defaults to the name
    assert ws.get("retail").close_after_s == 60 and [s.name for s in ws.get("retail").statuses] == ["pending", "done"]
    assert ws.get("factory").close_after_s == 60  # the grace applies to the presets too
    assert workflow.closes_at(rental, "returned", 1000) == 6000 and workflow.closes_at(rental, "booked", 1) is None


@pytest.mark.parametrize(
    "toml,match",
    [
        ('[[workflows.x.statuses]]\nname = "a"\ntone = "purple"\n', "tone"),
        ('[[workflows.x.statuses]]\nname = "a"\nnext = {b = ["staff"]}\n', "no status b"),
        ('[[workflows.x.statuses]]\nname = "a"\nnext = {a = ["admin"]}\n', "unknown roles"),
        ('[[workflows.x.statuses]]\nname = "a"\n[[workflows.x.statuses]]\nname = "a"\n', "unique"),
        ("[workflows.x]\nclose_after_s = 1\n", "at least one status"),
        ('[[workflows.free.statuses]]\nname = "a"\n', "built in"),
    ],
)
def test_bad_definitions_are_refused(tmp_path, toml, match):
    cfg = _defs(toml, tmp_path)
    with pytest.raises(ValueError, match=match):
        Workflows(cfg.workflow, cfg.workflows)


def test_closing_after_the_grace_period_and_a_dispute_reopening():
    assert not workflow.closed(order("completed", None), 10**12)
    assert not workflow.closed(order("completed", 2000), 1999)
    assert workflow.closed(order("completed", 2000), 2000)
    assert not workflow.closed(order("completed", 2000, dispute_open=True), 5000)  # the buyer complains
    assert workflow.closed(order("completed", 2000, dispute_open=False), 5000)  # ... until it is closed
    closed = order("completed", 2000)
    for role in ("buyer", "supplier", "sales_rep"):
        with pytest.raises(Forbidden, match="closed: the order is completed"):
            workflow.check_open(closed, role, 3000)
    for role in ("staff", "bot"):
        workflow.check_open(closed, role, 3000)
