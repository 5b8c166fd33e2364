"""Contact-info filter (issue 5, point 3; issue 9, item 6): precision and recall on
three labelled sets, the three modes (off, mask, block) on a real server for every
corpus message, every channel that crosses the buyer/supplier line (text, status
value and text, dispute reason, client_id, attachment names), and the default mode.

Figures: `python -m pytest tests/functional/test_contact_filter.py -k corpus -s` prints
them; docs/contact-filter.md records them.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chatd import contact_filter as cf
from chatd import contact_normalise as cn
from chatd.errors import BlockedContent
from tests.functional.test_attachments import send, upload
from tests.support import samples
from tests.support.client import request, settled, token

BACKENDS = ("single", "cluster")  # each test also runs over two instances and Redis

HERE = Path(__file__).parent


def load(name: str) -> list[tuple[str, str]]:
    rows = []
    for line in (HERE / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            label, text = line.split("\t", 1)
            assert label in ("email", "phone", "url", "handle", "none"), line
            rows.append((label, text))
    return rows


CORPUS = load("contact_corpus.tsv")
HOLDOUT = load("contact_holdout.tsv")
EVASIONS = load("contact_evasions.tsv")  # adversarial: disguised details and order talk full of numbers


def score(rows) -> dict:
    tp = fp = fn = tn = kind_ok = 0
    misses = []
    for label, text in rows:
        found = cf.scan(text)
        if label != "none":
            if found:
                tp += 1
                kind_ok += label in {f.kind for f in found}
            else:
                fn += 1
                misses.append(("missed", label, text))
        elif found:
            fp += 1
            misses.append(("false alarm", [f.text for f in found], text))
        else:
            tn += 1
    return {
        "positives": tp + fn,
        "negatives": fp + tn,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "kind_accuracy": kind_ok / tp if tp else 1.0,
        "misses": misses,
    }


def test_corpus_precision_and_recall():
    s = score(CORPUS)
    h = score(HOLDOUT)
    e = score(EVASIONS)
    for name, r in (("corpus", s), ("holdout", h), ("evasions", e)):
        print(
            f"\n{name}: {r['positives']} positive, {r['negatives']} negative; "
            f"precision {r['precision']:.3f}, recall {r['recall']:.3f}, "
            f"kind right {r['kind_accuracy']:.3f} (tp {r['tp']}, fp {r['fp']}, fn {r['fn']}, tn {r['tn']})"
        )
        for m in r["misses"]:
            print("   ", *m)
    assert s["positives"] >= 100 and s["negatives"] >= 100
    assert s["precision"] >= 0.97 and s["recall"] >= 0.97, s["misses"]
    assert s["kind_accuracy"] >= 0.95
    # the held-out set was never tuned against; before the normalisation (issue 9) it
    # measured precision 0.977, recall 0.913: the floors keep it from getting worse
    assert h["precision"] >= 0.97 and h["recall"] >= 0.91, h["misses"]
    # the adversarial set (today's filter: precision 0.947, recall 0.209)
    assert e["positives"] >= 60 and e["negatives"] >= 60
    assert e["precision"] >= 0.97 and e["recall"] >= 0.95, e["misses"]
    assert e["kind_accuracy"] >= 0.95


@pytest.mark.parametrize(
    "text",
    [
        "Bank transfer ref 00123456789",  # a reference, not a phone with a 00 prefix
        "IMG_20240315_123456.jpg",
        "B|k3j2h1|4521|1764580000123456|xxxxxxxx",
        "Made @ home",
        "Is the .com address right?",
        "Look at gmail later",
    ],
)
def test_order_talk_with_separators_and_prefixes_passes(text):
    assert cf.scan(text) == []


def test_a_mask_takes_the_combining_marks_of_what_it_removes():
    """A keycap's marks belong to its digit: masked, none is left dangling on the placeholder."""
    keycaps = "".join(d + "\ufe0f\u20e3" for d in "5551234567")
    assert cf.screen(f"call me {keycaps} today", "mask")[0] == "call me [phone removed] today"
    underlined = "".join(c + "\u0332" for c in "bob@gmail.com")
    assert cf.screen(f"{underlined}!", "mask")[0] == "[e-mail removed]!"


def test_generated_client_ids_are_never_flagged():
    """Refusing a client_id the filter flags must not refuse the ids the SDK and widget make."""
    for _ in range(20000):
        cid = str(uuid.uuid4())
        assert cf.scan(cid) == [] and cf.scan(cid.replace("-", "")) == []
    for cid in ("c1", "sys1", "msg-2024-11-07-0001", "chat-20241107-123456", "order_12345_retry_2"):
        assert cf.scan(cid) == []  # integrators' own id schemes


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="0123456789abcdefABCDEF", min_size=32, max_size=32))
@example("0fbacc0deadbe000fbacc0fbacc0dead")  # "fb acc" inside groups: not a word
@example("FBacc0deadbe00000000000000000000")
def test_a_uuid_skipped_by_scan_id_holds_nothing(hexes):
    """scan_id does not scan a UUID (the server's hot path): that must lose nothing."""
    cid = "-".join((hexes[:8], hexes[8:12], hexes[12:16], hexes[16:20], hexes[20:]))
    assert cf.scan_id(cid) == cf.scan(cid)


def test_a_uuid_spelling_a_handle_is_still_scanned():
    cid = "00fb0000-0000-0000-0000-fbacc0deadbe"  # "fb acc 0deadbe": a messenger account
    assert cf.scan(cid) and cf.scan_id(cid) == cf.scan(cid)


# Pieces the filter's patterns are made of, for texts that come near to matching them.
# fmt: off
PIECES = (
    "@", ".", " ", "  ", "-", "/", ":", "(", ")", "[.]", "(at)", " at ", " dot ", "(dot)", "[dot] ", "@ ", "://",
    "www.", "john", "acme", "shop.io", "x.co", "a.info",
    "hxxp", ".com", ".c0m", "co", "gmail", "gmai1", "aol", "@01", "yahoo", "163", "io", "info", "ınfo", "ſ",
    "K", "İ", "j o h n", "a b", "O", "o", "I", "l", "i", "S", "0", "1", "5", "7", "12", "2024", "h", "H", "x",
    "five", "FIVE", "one", "two", "nil", "oh", "telegram", "tele gram", "whatsap", "телеграм", "ватсап", "%",
)
# fmt: on
near_text = st.lists(st.sampled_from(PIECES) | st.text(max_size=3), max_size=12).map("".join)


@settings(max_examples=4000, deadline=None)
@given(near_text)
@example("john(at) gmail")  # each form of "at", "dot" and a time, once for sure
@example("k (at)\tyahoo")
@example("john at acme(dot)io")
@example("mary@shop [dot] co")
@example("x.y at z dot info")
@example("ping me at v3ndor.c0m or @01")
@example("from 12H30")
def test_a_hint_that_skips_a_pattern_only_skips_what_it_cannot_match(text):
    """Each cheap check the filter runs before a slow pattern is in every match of
    that pattern (or every match that changes something), so skipping on it loses
    nothing."""

    def changes(rx, repl):
        return any(repl(m) != m.group() for m in rx.finditer(text))

    pairs = [
        (cn._LOOKALIKE_HINT, changes(cn._LOOKALIKE_TOKEN, lambda m: m.group().translate(cn._LOOKALIKE_DIGITS))),
        (cn._SPACED_HINT, changes(cn._SPACED, lambda m: m.group().replace(" ", ""))),
        (cn._LEET_HINT, changes(cn._LEET_TOKEN, cn._leet)),
        (cf._EMAIL_SPELLED_HINT, cf._EMAIL_SPELLED.search(text)),
        (cf._EMAIL_PROVIDER_HINT, cf._EMAIL_PROVIDER.search(text)),
        (cf._URL_BARE_HINT, cf._URL_BARE.search(text)),
        (cf._SEPARATED, any(g.search(text) for g in (cf._DATE_GATE, *(g for _, g in cf._PROTECTED_SEPARATED[:2])))),
    ]
    for hint, matched in pairs:
        assert not matched or hint.search(text), hint.pattern
    if text.isascii():  # the ASCII shortcuts give what the general forms give
        lower = text.lower()
        assert lower.encode().translate(None, cn._SQUEEZE_ASCII).decode() == lower.translate(cn._SQUEEZE)
        assert any(v in lower for v in cn._ASCII_VARIANTS) == any(v in lower for v in cn._VARIANTS)
        fast = [m.span() for m in cn._SPELLED_HINT_LOWER.finditer(lower)]
        assert fast == [m.span() for m in cn._SPELLED_HINT.finditer(text)]


@pytest.mark.parametrize("label, text", [r for r in CORPUS + EVASIONS if r[0] != "none"])
def test_mask_removes_what_it_found(label, text):
    masked, found = cf.screen(text, "mask")
    if not found:
        pytest.skip("not detected (counted in recall)")
    assert masked != text
    assert cf.scan(masked) == []  # nothing left to find
    for f in found:
        assert f.text not in masked
    with pytest.raises(BlockedContent) as e:
        cf.screen(text, "block")
    assert cf.LABELS[found[0].kind] in e.value.message


@pytest.mark.parametrize("label, text", [r for r in CORPUS if r[0] == "none"][:40])
def test_clean_text_is_untouched(label, text):
    assert cf.screen(text, "mask") == (text, []) or cf.scan(text)  # false alarms are counted above
    assert cf.screen(text, "off") == (text, [])


def test_policy_roles_and_kinds():
    for role in ("buyer", "supplier", "sales_rep"):
        assert cf.applies(role, "text") and cf.applies(role, "status") and cf.applies(role, "dispute")
        assert not cf.applies(role, "note")  # internal: never reaches the buyer
    for role in ("staff", "bot"):
        assert not cf.applies(role, "text")
    assert cf.describe(cf.scan("mail a@b.com or call +1 555 123 4567, a@c.com")) == "e-mail address, phone number"


# --- the three modes on a real server ----------------------------------------------------

FAST = {"rate_per_s": 100000.0, "rate_burst": 100000}


async def _send_all(server, mode):
    await server.order("CF-1")
    buyer = await server.client("buyer1", "buyer")
    supplier = await server.client("supplier1", "supplier")
    await supplier.join("CF-1")
    results = []
    for label, text in CORPUS:
        cid = str(uuid.uuid4())
        reply = await request(buyer, {"type": "send", "order": "CF-1", "client_id": cid, "text": text}, "ack")
        results.append((label, text, reply))
    return buyer, supplier, results


@pytest.mark.parametrize("limits", [FAST], ids=["fast"])
@pytest.mark.parametrize("sections", [{"filter": {"mode": "off"}}], ids=["off"])
async def test_mode_off_stores_everything_verbatim(server):
    buyer, supplier, results = await _send_all(server, "off")
    assert all(r["type"] == "ack" for _, _, r in results)
    st, page = await server.api("GET", "/api/v1/orders/CF-1/messages?limit=200")
    assert [m["text"] for m in page["messages"]] == [t for _, t in CORPUS][-200:]


@pytest.mark.parametrize("limits", [FAST], ids=["fast"])
@pytest.mark.parametrize("sections", [{"filter": {"mode": "block"}}], ids=["block"])
async def test_mode_block_refuses_contact_details(server):
    buyer, supplier, results = await _send_all(server, "block")
    stored = []
    for _label, text, reply in results:
        found = cf.scan(text)
        if found:
            assert reply["type"] == "error" and reply["code"] == "blocked_content", (text, reply)
            assert cf.LABELS[found[0].kind] in reply["message"]
            assert reply["ref"]  # names the client_id, so the client knows which send
        else:
            assert reply["type"] == "ack", (text, reply)
            stored.append(text)
    assert len(stored) >= 100
    msgs = []
    after = 0
    while True:
        st, page = await server.api("GET", f"/api/v1/orders/CF-1/messages?after={after}&limit=200")
        msgs += page["messages"]
        if not page["has_more"]:
            break
        after = msgs[-1]["seq"]
    assert [m["text"] for m in msgs] == stored  # nothing blocked was stored; seqs stay gapless
    assert [m["seq"] for m in msgs] == list(range(1, len(stored) + 1))


@pytest.mark.parametrize("limits", [FAST], ids=["fast"])
@pytest.mark.parametrize("sections", [{"filter": {"mode": "mask"}}], ids=["mask"])
async def test_mode_mask_stores_and_delivers_the_masked_text(server):
    buyer, supplier, results = await _send_all(server, "mask")
    assert all(r["type"] == "ack" for _, _, r in results)
    for _label, text, reply in results:
        live = await supplier.expect("message", order="CF-1", seq=reply["seq"])
        expected, found = cf.screen(text, "mask")
        assert live["text"] == expected
        if found:
            assert live["text"] != text and cf.scan(live["text"]) == []
    st, page = await server.api("GET", "/api/v1/orders/CF-1/messages?after=0&limit=5")
    assert page["messages"][0]["text"] == "my email is [e-mail removed]"


@pytest.mark.parametrize("sections", [{"filter": {"mode": "block"}}], ids=["block"])
async def test_who_is_screened(server):
    await server.order("CF-2")
    supplier = await server.client("supplier1", "supplier")
    rep = await server.client("rep1", "sales_rep")
    staff = await server.client("boss", "staff")
    bot = await server.client("bot1", "bot", orders="*")
    buyer = await server.client("buyer1", "buyer")
    contact = "call me at +1 555 123 4567"
    # the supplier side is screened towards the buyer...
    for c in (supplier, rep):
        r = await c.post("CF-2", contact)
        assert r["type"] == "error" and r["code"] == "blocked_content"
    # ...but not in internal notes, and staff and bots are exempt
    assert (await supplier.post("CF-2", contact, kind="note"))["type"] == "ack"
    assert (await staff.post("CF-2", contact))["type"] == "ack"
    assert (await bot.post("CF-2", contact))["type"] == "ack"
    st, ack = await server.api("POST", "/api/v1/orders/CF-2/messages", {"client_id": "sys1", "text": contact})
    assert st == 201
    # status texts and dispute reasons cross the line too
    r = await request(
        supplier,
        {
            "type": "set_status",
            "order": "CF-2",
            "status": "shipped",
            "client_id": "s1",
            "text": "shipped, questions to sam@supplier.com",
        },
        "ack",
    )
    assert r["type"] == "error" and r["code"] == "blocked_content" and "e-mail" in r["message"]
    r = await request(
        buyer,
        {
            "type": "dispute",
            "order": "CF-2",
            "action": "open",
            "client_id": "d1",
            "reason": "broken, see wa.me/15551234567",
        },
        "ack",
    )
    assert r["type"] == "error" and r["code"] == "blocked_content"
    r = await request(
        buyer,
        {"type": "dispute", "order": "CF-2", "action": "open", "client_id": "d2", "reason": "broken on arrival"},
        "ack",
    )
    assert r["type"] == "ack"


@pytest.mark.parametrize("sections", [{"filter": {"mode": "mask"}}], ids=["mask"])
async def test_mask_applies_to_status_text_and_rest_is_exempt(server):
    await server.order("CF-3")
    supplier = await server.client("supplier1", "supplier")
    r = await request(
        supplier,
        {
            "type": "set_status",
            "order": "CF-3",
            "status": "shipped",
            "client_id": "s1",
            "text": "shipped, call 555-123-4567",
        },
        "ack",
    )
    assert r["type"] == "ack"
    st, page = await server.api("GET", "/api/v1/orders/CF-3/messages")
    assert page["messages"][0]["text"] == "shipped, call [phone removed]"


@pytest.mark.single_only("a file name is screened within its upload request, on one instance")
@pytest.mark.parametrize(
    "sections", [{"filter": {"mode": "block"}}, {"filter": {"mode": "mask"}}], ids=["block", "mask"]
)
async def test_attachment_names_are_screened(server, sections):
    """A file name travels with the message: "call me 555 123 4567.pdf" is
    refused or masked like text; staff are exempt; ordinary names pass."""
    await server.order("CF-F")
    mode = sections["filter"]["mode"]
    contact = "call me 555 123 4567.pdf"
    st, body = await upload(server.base, "CF-F", samples.pdf(2000), contact, token("buyer1", "buyer"))
    if mode == "block":
        assert st == 422 and body["error"]["code"] == "blocked_content" and "phone" in body["error"]["message"]
    else:
        assert st == 201 and "555" not in body["name"] and body["name"].endswith(".pdf")
    st, body = await upload(server.base, "CF-F", samples.pdf(2000), contact, token("boss", "staff"))
    assert st == 201 and body["name"] == contact
    for name in ("IMG_20240315_123456.jpg", "Screenshot 2024-03-15 at 10.22.33.png", "order 12345.pdf"):
        st, body = await upload(server.base, "CF-F", samples.pdf(2000), name, token("supplier1", "supplier"))
        assert st == 201 and body["name"] == name
    if mode == "mask":  # masking lengthens a name ("x.io" -> "[link removed]"): it keeps the bound of 200
        st, body = await upload(server.base, "CF-F", samples.pdf(2000), "x.io " * 39 + ".pdf", token("buyer1", "buyer"))
        assert st == 201 and len(body["name"]) <= 200 and "x.io" not in body["name"] and body["name"].endswith(".pdf")


@pytest.mark.single_only("the staff upload is screened within its request, on one instance")
@pytest.mark.parametrize(
    "sections", [{"filter": {"mode": "block"}}, {"filter": {"mode": "mask"}}], ids=["block", "mask"]
)
async def test_a_file_uploaded_as_staff_is_screened_again_when_sent_from_a_slot(server):
    """Staff upload unscreened; put in the buyer's slot, that staff id sent the file and the
    supplier saw its name. Refused in both modes: its download keeps the stored name."""
    await server.order("CF-S")
    contact = "whatsapp +1 415 555 0199.pdf"
    st, body = await upload(server.base, "CF-S", samples.pdf(2000), contact, token("x9", "staff"))
    assert st == 201 and body["name"] == contact
    plain = (await upload(server.base, "CF-S", samples.pdf(2000), "invoice.pdf", token("x9", "staff")))[1]["id"]
    await server.order("CF-S", buyer="x9")
    as_buyer = await server.client("x9", "buyer")
    supplier = await server.client("supplier1", "supplier")
    await supplier.join("CF-S")
    for ids in ([body["id"]], [plain, body["id"]]):
        r = await send(as_buyer, "CF-S", "see file", ids)
        assert r["type"] == "error" and r["code"] == "blocked_content" and "file's name" in r["message"], r
    assert (await send(as_buyer, "CF-S", "see file", [plain]))["type"] == "ack"
    got = await supplier.expect("message", order="CF-S", text="see file")
    assert [a["name"] for a in got["attachments"]] == ["invoice.pdf"]


@pytest.mark.parametrize(
    "sections", [{"filter": {"mode": "block"}}, {"filter": {"mode": "mask"}}], ids=["block", "mask"]
)
async def test_names_carry_no_contact_details_across_the_line(server):
    """A display name crosses on every message, typing and dispute it is on: a token's
    name, or one the platform set on the order, has its contact details masked in both
    modes (never refused: the platform signs it). Staff and bots are exempt."""
    st, order = await server.api(
        "PUT",
        "/api/v1/orders/CF-N",
        {
            "buyer": {"id": "buyer1", "name": "Bob call +1 415 555 0134"},
            "supplier": {"id": "supplier1", "name": "Acme sales@acme-supplies.com"},
            "sales_rep": None,
        },
    )
    assert st == 201, order
    assert order["buyer"]["name"] == "Bob call [phone removed]", order
    assert order["supplier"]["name"] == "Acme [e-mail removed]", order
    assert {p["name"] for p in order["participants"]} == {"Bob call [phone removed]", "Acme [e-mail removed]"}
    buyer = await server.client("buyer1", "buyer", name="Bob bob.smith@gmail.com")
    assert buyer.of_type("ready")[0]["user"]["name"] == "Bob [e-mail removed]"
    supplier = await server.client("supplier1", "supplier")
    staff = await server.client("boss", "staff", name="Help desk +1 800 555 0100")
    await supplier.join("CF-N")
    await buyer.join("CF-N")
    assert (await buyer.post("CF-N", "hello, about the order"))["type"] == "ack"
    got = await supplier.expect("message", order="CF-N", text="hello, about the order")
    assert got["sender"]["name"] == "Bob [e-mail removed]", got
    await buyer.send({"type": "typing", "order": "CF-N", "active": True})
    assert (await supplier.expect("typing", order="CF-N"))["user"]["name"] == "Bob [e-mail removed]"
    r = await request(
        buyer, {"type": "dispute", "order": "CF-N", "action": "open", "client_id": "d1", "reason": "broken"}, "ack"
    )
    assert r["type"] == "ack", r
    o = await supplier.expect("order", order="CF-N")
    assert o["dispute"]["by_name"] == "Bob [e-mail removed]", o
    assert (await staff.post("CF-N", "we are looking into it"))["type"] == "ack"
    got = await supplier.expect("message", order="CF-N", text="we are looking into it")
    assert got["sender"]["name"] == "Help desk +1 800 555 0100"
    st, page = await server.api("GET", "/api/v1/orders/CF-N/messages")
    assert "gmail" not in str(page) and "0134" not in str(page)


@pytest.mark.parametrize(
    "sections", [{"filter": {"mode": "block"}}, {"filter": {"mode": "mask"}}], ids=["block", "mask"]
)
async def test_a_staff_or_bot_token_in_a_slot_has_its_name_masked_there(server):
    """The slot decides, not the token: a staff token with the buyer's id, or a bot token
    with the supplier's, writes as that participant, and its name crosses the line as
    theirs would (messages, typing, the dispute, the history); elsewhere it is left as given."""
    await server.api(
        "PUT",
        "/api/v1/orders/CF-SL",
        {"buyer": {"id": "buyer1", "name": "Bea"}, "supplier": {"id": "supplier1", "name": "Sam"}, "sales_rep": None},
    )
    await server.api(
        "PUT",
        "/api/v1/orders/CF-OTHER",
        {"buyer": {"id": "buyer2", "name": "Ben"}, "supplier": {"id": "supplier2", "name": "Sue"}, "sales_rep": None},
    )
    as_buyer = await server.client("buyer1", "staff", name="Bea bea@gmail.com")
    as_supplier = await server.client("supplier1", "bot", name="Sam WhatsApp +1 555 123 4567", orders="*")
    buyer, supplier = await server.client("buyer1", "buyer"), await server.client("supplier1", "supplier")
    await buyer.join("CF-SL")
    await supplier.join("CF-SL")
    assert (await as_supplier.post("CF-SL", "Your goods are ready"))["type"] == "ack"
    got = await buyer.expect("message", order="CF-SL", text="Your goods are ready")
    assert got["sender"] == {"id": "supplier1", "name": "Sam WhatsApp [phone removed]", "role": "supplier"}, got
    await as_buyer.join("CF-SL")
    await as_buyer.send({"type": "typing", "order": "CF-SL", "active": True})
    typing = await supplier.expect("typing", order="CF-SL")
    assert typing["user"]["name"] == "Bea [e-mail removed]", typing
    r = await request(
        as_buyer, {"type": "dispute", "order": "CF-SL", "action": "open", "client_id": "d1", "reason": "late"}, "ack"
    )
    assert r["type"] == "ack", r
    assert (await supplier.expect("order", order="CF-SL"))["dispute"]["by_name"] == "Bea [e-mail removed]"
    st, page = await server.api("GET", "/api/v1/orders/CF-SL/messages")
    assert st == 200 and "gmail" not in str(page) and "4567" not in str(page), page
    # the same bot token where it holds no slot: a bot, named as given
    assert (await as_supplier.post("CF-OTHER", "Shipped"))["type"] == "ack"
    st, page = await server.api("GET", "/api/v1/orders/CF-OTHER/messages")
    assert page["messages"][-1]["sender"]["name"] == "Sam WhatsApp +1 555 123 4567", page


# --- issue 9, item 6: every channel, and the default ------------------------------------------


@pytest.mark.parametrize(
    "sections", [{"filter": {"mode": "block"}}, {"filter": {"mode": "mask"}}], ids=["block", "mask"]
)
async def test_status_value_is_screened(server, sections):
    """The status value itself reaches the buyer (order state, "Status changed to ...")."""
    await server.order("CF-S")
    buyer = await server.client("buyer1", "buyer")
    await buyer.join("CF-S")
    supplier = await server.client("supplier1", "supplier")
    r = await request(
        supplier, {"type": "set_status", "order": "CF-S", "status": "wa.me/15551234567", "client_id": "st1"}, "ack"
    )
    if sections["filter"]["mode"] == "block":
        assert r["type"] == "error" and r["code"] == "blocked_content" and r["ref"] == "st1", r
        assert "link" in r["message"]
    else:
        assert r["type"] == "ack"
        msg = await buyer.expect("message", order="CF-S", seq=r["seq"])
        assert msg["status"] == "[link removed]" and msg["text"] == "Status changed to [link removed]"
    # a status with an ordinary value passes and the buyer sees it
    r = await request(supplier, {"type": "set_status", "order": "CF-S", "status": "shipped", "client_id": "st2"}, "ack")
    assert r["type"] == "ack"
    await buyer.expect("message", order="CF-S", seq=r["seq"])
    seen = repr(buyer.frames)
    assert "wa.me" not in seen and "5551234567" not in seen
    st, page = await server.api("GET", "/api/v1/orders/CF-S")
    assert "wa.me" not in repr(page)


@pytest.mark.single_only("a bound of the frame, checked by the instance it reaches")
@pytest.mark.parametrize("limits", [{"max_text_chars": 100}], ids=["100-chars"])
@pytest.mark.parametrize("sections", [{"filter": {"mode": "mask"}}], ids=["mask"])
async def test_mask_keeps_the_bounds_of_what_it_stores(server):
    """Masking lengthens a text ("x.io", 4 characters, becomes "[link removed]", 14): a
    value within its bound that would pass it once masked is refused with the error a
    longer one gets, saying why; nothing is stored. Within the bound, it is masked."""
    await server.order("CF-B")
    buyer = await server.client("buyer1", "buyer")
    supplier = await server.client("supplier1", "supplier")
    status = " ".join(["x.io"] * 12)  # 59 characters; 179 masked
    text = " ".join(["x.io"] * 20)  # 99 characters; 299 masked
    assert len(status) <= 64 and len(text) <= 100
    for who, frame, code in (
        (supplier, {"type": "set_status", "status": status}, "bad_request"),
        (supplier, {"type": "set_status", "status": "packed", "text": text}, "too_large"),
        (supplier, {"type": "send", "text": text}, "too_large"),
        (buyer, {"type": "dispute", "action": "open", "reason": text}, "too_large"),
    ):
        cid = str(uuid.uuid4())
        r = await request(who, {**frame, "order": "CF-B", "client_id": cid}, "ack")
        assert r["type"] == "error" and r["code"] == code and r["ref"] == cid, (frame, r)
        assert "once contact details are masked" in r["message"], r
    st, page = await server.api("GET", "/api/v1/orders/CF-B/messages")
    assert page["messages"] == []
    st, order = await server.api("GET", "/api/v1/orders/CF-B")
    assert order["status"] != status and order["dispute"] is None
    # within the bounds once masked: stored masked
    fits = " ".join(["x.io"] * 6)  # 29 characters; 89 masked
    assert (await supplier.post("CF-B", fits))["type"] == "ack"
    r = await request(
        supplier, {"type": "set_status", "order": "CF-B", "status": "x.io x.io", "client_id": "s1"}, "ack"
    )
    assert r["type"] == "ack"
    st, page = await server.api("GET", "/api/v1/orders/CF-B/messages")
    assert [m["text"] for m in page["messages"]] == [
        " ".join(["[link removed]"] * 6),
        "Status changed to [link removed] [link removed]",
    ]


@pytest.mark.parametrize(
    "sections", [{"filter": {"mode": "block"}}, {"filter": {"mode": "mask"}}], ids=["block", "mask"]
)
async def test_client_id_cannot_carry_contact_details(server):
    """client_id is echoed in the message to everyone in the room. It is the retry
    key, so it cannot be masked: one the filter flags is refused in both modes."""
    await server.order("CF-C")
    buyer = await server.client("buyer1", "buyer")
    supplier = await server.client("supplier1", "supplier")
    await buyer.join("CF-C")
    for cid, frame in (
        ("wa.me/15551234567", {"type": "send", "text": "hello"}),
        ("john@gmail.com", {"type": "send", "text": "hello"}),
        ("+1 555 123 4567", {"type": "set_status", "status": "packed"}),
    ):
        r = await request(supplier, {**frame, "order": "CF-C", "client_id": cid}, "ack")
        assert r["type"] == "error" and r["code"] == "blocked_content" and r["ref"] == cid, r
        assert "client_id" in r["message"]
    r = await request(
        buyer,
        {"type": "dispute", "order": "CF-C", "action": "open", "client_id": "t.me/shopx", "reason": "broken"},
        "ack",
    )
    assert r["type"] == "error" and r["code"] == "blocked_content"
    # a generated id passes, and a retry with it is still answered exactly once
    cid = str(uuid.uuid4())
    first = await supplier.post("CF-C", "hello", client_id=cid)
    again = await supplier.post("CF-C", "hello", client_id=cid)
    assert first["type"] == again["type"] == "ack" and again["seq"] == first["seq"] and again["duplicate"]
    # staff and bots are exempt, as for text
    staff = await server.client("boss", "staff")
    assert (await staff.post("CF-C", "internal ref", client_id="john@gmail.com"))["type"] == "ack"
    await settled(buyer)
    assert [m["client_id"] for m in buyer.of_type("message") if m["sender"]["role"] != "staff"] == [cid]


def test_default_mode_blocks():
    """A marketplace ships with contact details blocked (the factory's seller guide:
    "Do not share personal contact information - this is blocked by the system")."""
    from chatd import config

    assert config.FilterConfig().mode == "block"
    shipped = config.load(HERE.parents[1] / "config.toml", environ={"CHATD_AUTH_SECRET": "s", "CHATD_API_KEY": "k"})
    assert shipped.filter.mode == "block"


async def test_default_config_blocks_on_a_real_server(tmp_path, aiohttp_server):
    """The server built from the default [filter] section refuses a buyer's phone number."""
    import msgspec

    from chatd.app import create_app
    from chatd.config import FilterConfig
    from tests.conftest import Server, make_config

    cfg = msgspec.structs.replace(make_config(tmp_path), filter=FilterConfig())
    s = Server(await aiohttp_server(create_app(cfg)), cfg)
    await s.order("CF-D")
    buyer = await s.client("buyer1", "buyer")
    try:
        r = await buyer.post("CF-D", "call me on ５５５ one two three 4567")
        assert r["type"] == "error" and r["code"] == "blocked_content"
        assert (await buyer.post("CF-D", "Bank transfer ref 00123456789"))["type"] == "ack"
    finally:
        await buyer.close()


# texts shaped to make a backtracking pattern try every start (before the fix they took
# 0.3 to 2.7 s each to scan, on the event loop): words that NFKC makes 16,000 letters
# long, long runs of white space before a bracket, long digit runs in a non-ASCII text
SLOW_TO_SCAN = [
    "🙂" + "㎉" * 3999,
    "0" * 3999 + "🙂",
    "\t" * 3999 + "(",
    " " * 3999 + "[",
    "\xa0" * 3999 + "{",
    "\n" * 3999 + "<",
]


async def test_texts_made_to_be_slow_to_scan_do_not_stall_the_others(server):
    """Ten connections of a buyer send the slowest such text three times each; a
    supplier on another order pings once the first is answered, and is answered
    within the usual wait (the old patterns held the loop some 2.7 s a text, so about
    25 s before its turn came round); every text gets its answer."""
    await server.order("o1")
    await server.order("o2", buyer="buyer9", supplier="supplier9")
    supplier = await server.client("supplier9", "supplier")
    senders = [await server.client("buyer1", "buyer") for _ in range(10)]
    for i, c in enumerate(senders):
        for j in range(3):
            await c.send({"type": "send", "order": "o1", "client_id": f"slow-{i}-{j}", "text": SLOW_TO_SCAN[0]})
    await senders[0].expect("ack", client_id="slow-0-0")  # the server is at it now
    await settled(supplier)  # the usual wait: TIMEOUT
    for i, c in enumerate(senders):
        await c.expect("ack", client_id=f"slow-{i}-2")  # answered in order: the others came before
        assert [a["client_id"] for a in c.of_type("ack")] == [f"slow-{i}-{j}" for j in range(3)]


def test_slow_to_scan_texts_are_scanned_as_before():
    """The rewritten patterns (look-alike letters in a word, a bracketed dot after
    spaces) find what the old ones did."""
    assert all(cf.scan(text) == [] for text in SLOW_TO_SCAN)
    assert [f.kind for f in cf.scan("mail: jo   [at]  shop  [.]  com")] == ["email"]
    assert [f.kind for f in cf.scan("раypal.соm/jo")] == ["url"]  # Cyrillic look-alikes in a Latin word
