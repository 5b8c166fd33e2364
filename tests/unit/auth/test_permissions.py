"""Who may do what: the slot wins over the token role, outsiders get nothing."""

import pytest

from chatd.auth import permissions as p

SLOTS = ("b1", "s1", "r1")


@pytest.mark.parametrize(
    "user, token_role, claim, expected",
    [
        ("b1", "buyer", None, "buyer"),
        ("s1", "supplier", None, "supplier"),
        ("r1", "sales_rep", None, "sales_rep"),
        ("r2", "sales_rep", None, None),  # another order's rep
        ("b2", "buyer", None, None),
        ("x", "staff", None, "staff"),
        ("bot", "bot", frozenset({"o1"}), "bot"),
        ("bot", "bot", "*", "bot"),
        ("bot", "bot", frozenset({"o2"}), None),
        ("bot", "bot", frozenset(), None),
        ("b1", "staff", None, "buyer"),  # the slot wins: a buyer never sees notes
    ],
)
def test_order_role(user, token_role, claim, expected):
    assert p.order_role(user, token_role, claim, "o1", SLOTS) == expected


def test_notes_status_dispute_rules():
    assert not p.sees_notes("buyer")
    assert all(p.sees_notes(r) for r in ("supplier", "sales_rep", "staff", "bot"))
    assert p.may_set_status("supplier") and not p.may_set_status("buyer") and not p.may_set_status("sales_rep")
    assert p.may_open_dispute("buyer") and p.may_open_dispute("staff") and not p.may_open_dispute("supplier")
    assert p.may_close_dispute("staff", "x", "b1")
    assert p.may_close_dispute("buyer", "b1", "b1")
    assert not p.may_close_dispute("supplier", "s1", "b1")


def test_presence_is_by_the_role_on_the_order():
    assert all(p.has_presence(r) for r in ("buyer", "supplier", "sales_rep"))
    assert not p.has_presence("staff") and not p.has_presence("bot")
    assert p.has_presence(p.order_role("b1", "staff", None, "o1", SLOTS))  # a staff token in the buyer slot
