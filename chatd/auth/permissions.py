"""Who may do what on which order: pure functions of plain values.

A user's role *in an order* is the participant slot they hold (buyer,
supplier, sales_rep); otherwise `staff` everywhere, or `bot` where the token's
`orders` claim covers the order; otherwise nothing, and the caller answers
`not_found` so outsiders cannot learn the order exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatd.auth.tokens import Orders

# Every role set of chatd, defined here once.
PARTICIPANT_ROLES = frozenset({"buyer", "supplier", "sales_rep"})  # the order's slots
OPERATOR_ROLES = frozenset({"staff", "bot"})  # access by token, not by slot; never "online" as such
ROLES = PARTICIPANT_ROLES | OPERATOR_ROLES  # what a token's `role` claim may be
SUPPLIER_SIDE = frozenset({"supplier", "sales_rep"})  # the seller's side of the buyer/supplier line
NOTE_READERS = SUPPLIER_SIDE | OPERATOR_ROLES
STATUS_SETTERS = frozenset({"supplier", "staff", "bot"})
DISPUTE_OPENERS = frozenset({"buyer", "staff"})
RATE_EXEMPT = OPERATOR_ROLES
CONTACT_FILTERED = PARTICIPANT_ROLES  # whose messages to each other the contact filter screens
HELP_ASKERS = PARTICIPANT_ROLES  # who may ask the platform for help (staff answer it)
QUEUE_ROLE = "staff"  # the role on an order that reads the shared staff state and the attention queue


def order_role(
    user_id: str, token_role: str, bot_orders: Orders, order_id: str, slots: tuple[str, str, str | None]
) -> str | None:
    """The role `user_id` acts in on this order, or None if they have no access.

    `slots` is (buyer_id, supplier_id, sales_rep_id or None). The buyer slot
    wins if one id holds several, so a misconfigured order never shows notes
    to a buyer.
    """
    buyer, supplier, rep = slots
    if user_id == buyer:
        return "buyer"
    if user_id == supplier:
        return "supplier"
    if rep is not None and user_id == rep:
        return "sales_rep"
    if token_role == "staff":
        return "staff"
    if covers(token_role, bot_orders, order_id):
        return "bot"
    return None


def covers(token_role: str, bot_orders: Orders, order_id: str) -> bool:
    """Whether the token itself (not a participant slot) gives access to the order.

    Read state kept for an id outside the order's slots (a staff or bot
    marker) is shown only to connections whose token covers the order."""
    if token_role == "staff":
        return True
    return token_role == "bot" and (bot_orders == "*" or bool(bot_orders and order_id in bot_orders))


def covers_every_order(token_role: str, bot_orders: Orders) -> bool:
    return token_role == "staff" or (token_role == "bot" and bot_orders == "*")


def sees_notes(role: str) -> bool:
    return role in NOTE_READERS


def has_presence(role: str) -> bool:
    """Whether a member of this role on the order goes online and offline in `presence`.

    One rule for both directions, by the role on the order (the slot), never the
    token's: a staff token whose id holds the buyer slot is the buyer there, online
    while joined and offline once its last connection leaves."""
    return role in PARTICIPANT_ROLES


def may_set_status(role: str) -> bool:
    return role in STATUS_SETTERS


def may_open_dispute(role: str) -> bool:
    return role in DISPUTE_OPENERS


def may_ask_help(role: str) -> bool:
    return role in HELP_ASKERS


def may_close_dispute(role: str, user_id: str, opened_by: str | None) -> bool:
    return role == "staff" or (opened_by is not None and user_id == opened_by)
