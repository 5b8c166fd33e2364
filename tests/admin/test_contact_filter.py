"""Contact-info filter (issue 5, point 3): the corpus's precision and recall, and the
three modes (off, mask, block) on a real server, for every corpus message.

Figures: `python -m pytest tests/admin/test_contact_filter.py -k corpus -s` prints
them; docs/contact-filter.md records them.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from chatd import contact_filter as cf
from chatd.errors import BlockedContent
from tests.admin import samples
from tests.admin.test_attachments import upload
from tests.helpers import request, token

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
        "positives": tp + fn, "negatives": fp + tn, "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "precision": tp / (tp + fp) if tp + fp else 1.0, "recall": tp / (tp + fn) if tp + fn else 1.0,
        "kind_accuracy": kind_ok / tp if tp else 1.0, "misses": misses,
    }


def test_corpus_precision_and_recall():
    s = score(CORPUS)
    h = score(HOLDOUT)
    for name, r in (("corpus", s), ("holdout", h)):
        print(f"\n{name}: {r['positives']} positive, {r['negatives']} negative; "
              f"precision {r['precision']:.3f}, recall {r['recall']:.3f}, "
              f"kind right {r['kind_accuracy']:.3f} (tp {r['tp']}, fp {r['fp']}, fn {r['fn']}, tn {r['tn']})")
        for m in r["misses"]:
            print("   ", *m)
    assert s["positives"] >= 100 and s["negatives"] >= 100
    assert s["precision"] >= 0.97 and s["recall"] >= 0.97, s["misses"]
    assert s["kind_accuracy"] >= 0.95
    # the held-out set was never tuned against: a looser floor, and the figures are in the docs
    assert h["precision"] >= 0.9 and h["recall"] >= 0.85, h["misses"]


@pytest.mark.parametrize("label, text", [r for r in CORPUS if r[0] != "none"])
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
    for label, text, reply in results:
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
    for (label, text, reply) in results:
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
    r = await request(supplier, {"type": "set_status", "order": "CF-2", "status": "shipped", "client_id": "s1",
                                 "text": "shipped, questions to sam@supplier.com"}, "ack")
    assert r["type"] == "error" and r["code"] == "blocked_content" and "e-mail" in r["message"]
    r = await request(buyer, {"type": "dispute", "order": "CF-2", "action": "open", "client_id": "d1",
                              "reason": "broken, see wa.me/15551234567"}, "ack")
    assert r["type"] == "error" and r["code"] == "blocked_content"
    r = await request(buyer, {"type": "dispute", "order": "CF-2", "action": "open", "client_id": "d2",
                              "reason": "broken on arrival"}, "ack")
    assert r["type"] == "ack"


@pytest.mark.parametrize("sections", [{"filter": {"mode": "mask"}}], ids=["mask"])
async def test_mask_applies_to_status_text_and_rest_is_exempt(server):
    await server.order("CF-3")
    supplier = await server.client("supplier1", "supplier")
    r = await request(supplier, {"type": "set_status", "order": "CF-3", "status": "shipped", "client_id": "s1",
                                 "text": "shipped, call 555-123-4567"}, "ack")
    assert r["type"] == "ack"
    st, page = await server.api("GET", "/api/v1/orders/CF-3/messages")
    assert page["messages"][0]["text"] == "shipped, call [phone removed]"


@pytest.mark.parametrize("sections", [{"filter": {"mode": "block"}}, {"filter": {"mode": "mask"}}],
                         ids=["block", "mask"])
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
