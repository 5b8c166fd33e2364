"""The message-trigger cases both stores' migration tests run: the same inserts on a
schema at the version before a trigger was rewritten and on one brought up to date
must leave the same counters."""

# buyer b1 (no notes), supplier s1 and rep r1 (notes); o2 has no staff marker
SETUP = """
INSERT INTO orders (id, status, buyer_id, buyer_name, supplier_id, supplier_name, rep_id, rep_name, created_ts)
VALUES ('o1', 'new', 'b1', 'B', 's1', 'S', 'r1', 'R', 1), ('o2', 'new', 'b1', 'B', 's1', 'S', NULL, NULL, 1);
INSERT INTO read_markers (order_id, user_id, sees_notes)
VALUES ('o1', 'b1', 0), ('o1', 's1', 1), ('o1', 'r1', 1), ('o2', 'b1', 0), ('o2', 's1', 1);
INSERT INTO staff_markers (order_id) VALUES ('o1');
"""
# (order, kind, sender, role): texts, notes, a staff message, a sender with no
# marker (the system), a note whose sender does not see notes
POSTS = [
    ("o1", "text", "b1", "buyer"),
    ("o1", "text", "b1", "buyer"),
    ("o1", "note", "s1", "supplier"),
    ("o1", "text", "s1", "supplier"),
    ("o1", "text", "x9", "staff"),
    ("o1", "note", "r1", "rep"),
    ("o1", "system", "system", "system"),
    ("o1", "note", "b1", "buyer"),
    ("o2", "text", "s1", "supplier"),
    ("o2", "note", "s1", "supplier"),
    ("o2", "text", "x9", "staff"),
]
# what the triggers keep, read back the same way from either store
COUNTERS = {
    "orders": "SELECT id, last_seq, last_ts FROM orders ORDER BY id",
    "read_markers": "SELECT order_id, user_id, read_seq, unread, last_seq, activity_ts FROM read_markers "
    "ORDER BY order_id, user_id",
    "staff_markers": "SELECT order_id, read_seq, unread FROM staff_markers ORDER BY order_id",
    "user_stats": "SELECT user_id, unread_total FROM user_stats ORDER BY user_id",
}

# Side markers (x9, the staff sender of POSTS, on both orders), run after SETUP: the
# side-marker unread each user's total keeps beside it (PostgreSQL's migration 10,
# SQLite's 15) must be the sum over their side markers, as brought up to date and then
# as the marker triggers keep it through SIDE_CHANGES.
SIDE_MARKERS = (
    "INSERT INTO read_markers (order_id, user_id, sees_notes, side) VALUES ('o1', 'x9', 1, 1), ('o2', 'x9', 1, 1);"
)
SIDE_SUMS = (
    "SELECT s.user_id, s.side_unread, COALESCE((SELECT SUM(unread) FROM read_markers h "
    "WHERE h.user_id = s.user_id AND h.side = 1), 0) FROM user_stats s ORDER BY s.user_id"
)
# a marker made and moved, a message that moves two, and x9's marker on o1 (4 unread) deleted
SIDE_CHANGES = [
    "INSERT INTO read_markers (order_id, user_id, sees_notes, side) VALUES ('o1', 'bt', 0, 1)",
    "UPDATE read_markers SET unread = 3 WHERE user_id = 'bt'",
    "INSERT INTO messages (order_id, seq, ts, kind, sender_id, sender_name, sender_role, text) "
    "VALUES ('o1', 99, 500, 'text', 'b1', 'B', 'buyer', 'hi')",
    "DELETE FROM read_markers WHERE user_id = 'x9' AND order_id = 'o1'",
]

# Disputes before their opener's name was kept (PostgreSQL's migration 11, SQLite's
# 16), run after SETUP: o1's opened by staff member x9 then closed by the buyer, o2's
# opened by the buyer; the name each order takes is its latest dispute message's sender's.
DISPUTES = """
INSERT INTO messages (order_id, seq, ts, kind, sender_id, sender_name, sender_role, text) VALUES
('o1', 1, 10, 'dispute', 'x9', 'Sam Staff', 'staff', 'Dispute opened'),
('o1', 2, 11, 'text', 'b1', 'B', 'buyer', 'hi'),
('o1', 3, 12, 'dispute', 'b1', 'Bea Buyer', 'buyer', 'Dispute closed'),
('o2', 1, 13, 'dispute', 'x9', 'Sam Staff', 'staff', 'Dispute opened');
UPDATE orders SET dispute_open = 0, dispute_by = 'b1', dispute_ts = 12 WHERE id = 'o1';
UPDATE orders SET dispute_open = 1, dispute_by = 'x9', dispute_ts = 13 WHERE id = 'o2';
INSERT INTO orders (id, status, buyer_id, buyer_name, supplier_id, supplier_name, created_ts)
VALUES ('o3', 'new', 'b1', 'B', 's1', 'S', 1);
"""
DISPUTE_NAMES = "SELECT id, dispute_by_name FROM orders ORDER BY id"
DISPUTE_NAMED = [("o1", "Bea Buyer"), ("o2", "Sam Staff"), ("o3", None)]
