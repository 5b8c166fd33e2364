"""Attachments (issue 5, point 2): upload, type sniffing, send, who may download,
size limit, clean-up of unused uploads, and memory while a 20 MB upload streams."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from chatd.app import attachments_dir
from chatd.edge.keys import ATTACHMENTS
from tests.support import samples
from tests.support.client import API_KEY, token
from tests.support.receiver import get

BACKENDS = ("single", "cluster")  # each test also runs over two instances and Redis (one file folder)


async def upload(
    base: str, order: str, data: bytes, name: str = "file.bin", auth: str | None = None, chunked: bool = False
) -> tuple[int, dict]:
    form = aiohttp.FormData()
    if chunked:

        async def gen():
            for i in range(0, len(data), 16384):
                yield data[i : i + 16384]

        form.add_field("file", gen(), filename=name, content_type="application/octet-stream")
    else:
        form.add_field("file", io.BytesIO(data), filename=name, content_type="application/octet-stream")
    headers = {"Authorization": f"Bearer {auth}"} if auth else {}
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{base}/api/v1/orders/{order}/attachments", data=form, headers=headers) as r:
            return r.status, await r.json()


async def send(client, order: str, text: str, attachments: list[str], kind: str = "text") -> dict:
    cid = str(uuid.uuid4())
    await client.send(
        {"type": "send", "order": order, "client_id": cid, "text": text, "kind": kind, "attachments": attachments}
    )
    while True:
        f = await client._next_of(("ack", "error"))
        if f.get("client_id") == cid or f.get("ref") == cid:
            return f


BUYER = token("buyer1", "buyer")
SUPPLIER = token("supplier1", "supplier")
REP = token("rep1", "sales_rep")
STRANGER = token("buyer2", "buyer")
STAFF = token("boss", "staff")
# a file's type is decided within the one request that brings it: uploads accepted and
# refused on the cluster are the tests after these
SNIFFING = "types are sniffed within one request (the cluster uploads and refuses below)"


@pytest.mark.parametrize(
    "make, name, mime",
    [
        (samples.png, "photo.png", "image/png"),
        (samples.jpeg, "photo.jpg", "image/jpeg"),
        (samples.gif, "anim.gif", "image/gif"),
        (samples.webp, "pic.webp", "image/webp"),
        (samples.pdf, "invoice.pdf", "application/pdf"),
        (samples.docx, "spec.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        (samples.xlsx, "prices.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (samples.odt, "letter.odt", "application/vnd.oasis.opendocument.text"),
        (samples.ole, "old.doc", "application/msword"),
        (samples.text, "list.txt", "text/plain"),
        (samples.png, "no-extension", "image/png"),  # the name is not trusted either way
    ],
    ids=lambda v: v if isinstance(v, str) and "/" not in v else None,
)
@pytest.mark.single_only(SNIFFING)
async def test_allowed_types_are_sniffed(server, make, name, mime):
    await server.order("A-1")
    st, att = await upload(server.base, "A-1", make(), name, BUYER)
    assert st == 201, att
    assert att["mime"] == mime and att["name"] == name and att["size"] == len(make())


@pytest.mark.parametrize(
    "data, name",
    [
        (samples.exe(), "invoice.pdf"),  # a Windows executable named like a PDF
        (samples.elf(), "photo.png"),
        (b"#!/bin/sh\nrm -rf /\n", "notes.txt"),
        (samples.plain_zip(), "archive.zip"),
        (samples.docx(macros=True), "spec.docx"),  # macro-enabled: code
        (samples.ole("WordDocument", ("Macros",)), "old.doc"),
        (samples.ole("SummaryInformation"), "setup.msi"),  # a compound file that is no Office document
        (b"plain text\x00with a NUL", "notes.txt"),
        (b"\xff\xfe\x00h\x00i", "utf16.txt"),
        (bytes(range(256)) * 4, "data.pdf"),  # unknown binary
    ],
)
@pytest.mark.single_only(SNIFFING)
async def test_refused_types(server, data, name):
    await server.order("A-1")
    st, body = await upload(server.base, "A-1", data, name, BUYER)
    assert st == 415, body
    assert body["error"]["code"] == "bad_request"


async def test_upload_needs_a_role_on_the_order(server):
    await server.order("A-1")
    st, body = await upload(server.base, "A-1", samples.png(), "p.png", STRANGER)
    assert st == 404 and body["error"]["code"] == "not_found"
    st, body = await upload(server.base, "nope", samples.png(), "p.png", BUYER)
    assert st == 404
    st, body = await upload(server.base, "A-1", samples.png(), "p.png", API_KEY)
    assert st == 403
    st, body = await upload(server.base, "A-1", samples.png(), "p.png", None)
    assert st == 401
    st, body = await upload(server.base, "A-1", b"", "empty.txt", BUYER)
    assert st == 400
    async with aiohttp.ClientSession() as s:
        async with s.post(
            f"{server.base}/api/v1/orders/A-1/attachments",
            json={"file": "x"},
            headers={"Authorization": f"Bearer {BUYER}"},
        ) as r:
            assert r.status == 400
    for tok in (SUPPLIER, REP, STAFF):
        st, body = await upload(server.base, "A-1", samples.png(), "p.png", tok)
        assert st == 201, body


async def test_send_with_attachments_and_who_may_download(server):
    await server.order("A-1")
    await server.order("A-2", buyer="buyer2")
    buyer = await server.client("buyer1", "buyer")
    supplier = await server.client("supplier1", "supplier")
    await supplier.join("A-1")
    st, att = await upload(server.base, "A-1", samples.pdf(), "Invoice März.pdf", BUYER)
    assert st == 201

    # before it is sent: only the uploader may fetch it
    url = f"{server.base}/api/v1/attachments/{att['id']}"
    assert (await get(url, BUYER))[0] == 200
    assert (await get(url, SUPPLIER))[0] == 404

    ack = await send(buyer, "A-1", "", [att["id"]])  # a file alone needs no text
    assert ack["type"] == "ack", ack
    m = await supplier.expect("message", order="A-1", seq=ack["seq"])
    assert m["attachments"] == [att]
    st, page = await server.api("GET", "/api/v1/orders/A-1/messages")
    assert page["messages"][-1]["attachments"] == [att]

    for who in (BUYER, SUPPLIER, REP, STAFF, API_KEY):
        st, headers, body = await get(url, who)
        assert st == 200, who
        assert body == samples.pdf()
        assert headers["Content-Type"] == "application/pdf"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Content-Disposition"] == (
            "attachment; filename=\"Invoice M_rz.pdf\"; filename*=UTF-8''" + quote("Invoice März.pdf", safe="")
        )
    # ?token= works too (a link in a page)
    assert (await get(url + f"?token={SUPPLIER}"))[0] == 200
    # outsiders learn nothing: 404, like an id that does not exist
    for who in (STRANGER, token("supplier9", "supplier"), token("bot1", "bot", orders=["A-2"])):
        st, _, body = await get(url, who)
        assert st == 404 and b"not_found" in body
    assert (await get(f"{server.base}/api/v1/attachments/nonexistent", STAFF))[0] == 404
    assert (await get(url))[0] == 401

    # a removed participant loses access at once
    await server.api("PUT", "/api/v1/orders/A-1", {"sales_rep": None})
    assert (await get(url, REP))[0] == 404

    # attachments must be the sender's own upload to this order
    st, other = await upload(server.base, "A-2", samples.png(), "p.png", STRANGER)
    for ids in ([other["id"]], ["made-up"], [att["id"]]):
        ack = await send(supplier, "A-1", "see attached", ids)  # att is the buyer's, not the supplier's
        assert ack["type"] == "error" and ack["code"] == "bad_request", ids
    # ...but the sender may attach an already sent file again
    ack = await send(buyer, "A-1", "again", [att["id"], att["id"]])
    assert ack["type"] == "ack"
    m = await supplier.expect("message", order="A-1", seq=ack["seq"])
    assert [a["id"] for a in m["attachments"]] == [att["id"]]
    ack = await send(buyer, "A-1", "too many", [att["id"]] * 2 + [f"x{i}" for i in range(10)])
    assert ack["type"] == "error" and ack["code"] == "bad_request"


async def test_attachment_on_a_note_is_hidden_from_the_buyer(server):
    await server.order("A-1")
    supplier = await server.client("supplier1", "supplier")
    st, att = await upload(server.base, "A-1", samples.xlsx(), "margins.xlsx", SUPPLIER)
    ack = await send(supplier, "A-1", "our real costs", [att["id"]], kind="note")
    assert ack["type"] == "ack"
    url = f"{server.base}/api/v1/attachments/{att['id']}"
    assert (await get(url, BUYER))[0] == 404
    assert (await get(url, REP))[0] == 200
    assert (await get(url, SUPPLIER))[0] == 200


async def test_text_is_served_as_utf8_and_names_are_cleaned(server):
    await server.order("A-1")
    buyer = await server.client("buyer1", "buyer")
    st, att = await upload(server.base, "A-1", samples.text(), "../../etc/evil\u202etxt.exe", BUYER)
    assert st == 201
    assert att["name"] == "eviltxt.exe"  # no path, no bidi override (which would show "exe.txt")
    await send(buyer, "A-1", "list", [att["id"]])
    st, headers, body = await get(f"{server.base}/api/v1/attachments/{att['id']}", BUYER)
    assert st == 200 and body == samples.text()
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["Content-Disposition"].startswith('attachment; filename="eviltxt.exe"')


async def test_a_download_goes_on_from_a_range_and_is_not_fetched_twice(server):
    """Range and validators, as docs/protocol.md says: a broken download resumes."""
    await server.order("A-1")
    buyer = await server.client("buyer1", "buyer")
    data = samples.png(64, 64)
    st, att = await upload(server.base, "A-1", data, "photo.png", BUYER)
    assert st == 201
    await send(buyer, "A-1", "photo", [att["id"]])
    url = f"{server.base}/api/v1/attachments/{att['id']}"

    async def fetch(auth: str, **headers: str) -> tuple[int, aiohttp.typedefs.LooseHeaders, bytes]:
        async with (
            aiohttp.ClientSession() as s,
            s.get(url, headers={"Authorization": f"Bearer {auth}", **headers}) as r,
        ):
            return r.status, r.headers, await r.read()

    st, headers, body = await fetch(BUYER)
    assert st == 200 and body == data and headers["ETag"] and headers["Last-Modified"]
    st, part_headers, part = await fetch(BUYER, Range="bytes=10-")
    assert st == 206 and part == data[10:], st
    assert part_headers["Content-Range"] == f"bytes 10-{len(data) - 1}/{len(data)}"
    st, _, body = await fetch(BUYER, **{"If-None-Match": headers["ETag"]})
    assert st == 304 and body == b""
    st, past_headers, body = await fetch(BUYER, Range=f"bytes={len(data) + 10}-")
    assert st == 416 and body == b"" and past_headers["Content-Range"] == f"bytes */{len(data)}"
    st, _, _ = await fetch(STRANGER, Range="bytes=0-3")
    assert st == 404  # a range is no way around who may download


async def test_identical_files_are_stored_once(server):
    await server.order("A-1")
    st, a = await upload(server.base, "A-1", samples.png(), "a.png", BUYER)
    st, b = await upload(server.base, "A-1", samples.png(), "b.png", SUPPLIER)
    assert a["id"] != b["id"]
    files = [p for p in attachments_dir(server.cfg).rglob("*") if p.is_file() and p.parent.name != "tmp"]
    assert len(files) == 1 and len(files[0].name) == 64  # named by sha256


async def test_uploaded_on_one_instance_sent_and_downloaded_on_every_one(server):
    """On a cluster REST goes to the first instance and the sender is on the second:
    rows and files are shared, so each instance serves what the other took in."""
    await server.order("A-X")
    await server.client("boss", "staff")  # the first instance
    supplier = await server.client("supplier1", "supplier")  # the second
    st, att = await upload(server.base, "A-X", samples.pdf(), "invoice.pdf", SUPPLIER)
    assert st == 201, att
    url = f"/api/v1/attachments/{att['id']}"
    for base in server.bases:
        assert (await get(base + url, SUPPLIER))[0] == 200  # the uploader's, not sent yet
        assert (await get(base + url, BUYER))[0] == 404
    ack = await send(supplier, "A-X", "the invoice", [att["id"]])  # on the second instance
    assert ack["type"] == "ack", ack
    for base in server.bases:
        st, headers, body = await get(base + url, BUYER)
        assert st == 200 and body == samples.pdf() and headers["Content-Type"] == "application/pdf"
    # the other way round: uploaded on the last instance, the same content as one on the first
    st, twin = await upload(server.bases[-1], "A-X", samples.pdf(), "copy.pdf", BUYER)
    assert st == 201 and twin["id"] != att["id"]
    assert (await get(server.base + f"/api/v1/attachments/{twin['id']}", BUYER))[0] == 200
    files = [p for p in attachments_dir(server.cfg).rglob("*") if p.is_file() and p.parent.name != "tmp"]
    assert len(files) == 1  # stored once, whichever instance took it in


@pytest.mark.parametrize("sections", [{"attachments": {"max_bytes": 100_000}}], ids=["100kB"])
async def test_size_limit(server):
    await server.order("A-1")
    big = samples.pdf(150_000)
    st, body = await upload(server.base, "A-1", big, "big.pdf", BUYER)  # Content-Length: refused up front
    assert st == 413 and body["error"]["code"] == "too_large"
    st, body = await upload(server.base, "A-1", big, "big.pdf", BUYER, chunked=True)  # no length: while streaming
    assert st == 413 and body["error"]["code"] == "too_large"
    st, body = await upload(server.base, "A-1", samples.pdf(99_000), "ok.pdf", BUYER, chunked=True)
    assert st == 201
    tmp = attachments_dir(server.cfg) / "tmp"
    assert list(tmp.iterdir()) == []  # partial files removed


@pytest.mark.parametrize(
    "sections", [{"attachments": {"unreferenced_ttl_s": 0.3, "cleanup_interval_s": 0.1}}], ids=["short-ttl"]
)
async def test_unused_uploads_are_deleted_by_the_background_task(server):
    await server.order("A-1")
    buyer = await server.client("buyer1", "buyer")
    st, unused = await upload(server.base, "A-1", samples.gif(), "unused.gif", BUYER)
    st, sent = await upload(server.base, "A-1", samples.png(), "sent.png", BUYER)
    st, twin = await upload(server.base, "A-1", samples.png(), "twin.png", BUYER)  # same content as `sent`
    assert (await send(buyer, "A-1", "photo", [sent["id"]]))["type"] == "ack"
    root = attachments_dir(server.cfg)
    deadline = time.monotonic() + 10
    while (await get(f"{server.base}/api/v1/attachments/{unused['id']}", BUYER))[0] != 404:
        assert time.monotonic() < deadline, "the unused upload was not cleaned up"
        await asyncio.sleep(0.05)
    while (await get(f"{server.base}/api/v1/attachments/{twin['id']}", BUYER))[0] != 404:
        assert time.monotonic() < deadline, "the unused twin was not cleaned up"
        await asyncio.sleep(0.05)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.parent.name != "tmp")
    assert len(files) == 1  # the gif's file is gone; the png stays (a sent message carries it)
    assert (await get(f"{server.base}/api/v1/attachments/{sent['id']}", token("supplier1", "supplier")))[0] == 200
    # an expired upload can no longer be sent
    st, late = await upload(server.base, "A-1", samples.jpeg(), "late.jpg", BUYER)
    await asyncio.sleep(0.35)
    ack = await send(buyer, "A-1", "too late", [late["id"]])
    assert ack["type"] == "error" and ack["code"] == "bad_request"


@pytest.mark.parametrize(
    "sections",
    [{"retention": {"attachments_days": 1e-6}, "attachments": {"cleanup_interval_s": 0.1}}],
    ids=["retention"],
)
async def test_a_retry_is_answered_as_before_after_retention_deleted_its_upload(server):
    """The ack was lost, the chat closed and its files went: the retry of the stored
    message is its original ack (`duplicate`), not a refusal the client would show as a
    message that failed."""
    st, _ = await server.api("PUT", "/api/v1/orders/R-1", _order_body("retail"))
    assert st == 201
    buyer = await server.client("buyer1", "buyer")
    st, att = await upload(server.base, "R-1", samples.png(), "p.png", BUYER)
    frame = {"type": "send", "order": "R-1", "client_id": "photo-1", "text": "photo", "attachments": [att["id"]]}
    await buyer.send(frame)
    first = await buyer.expect("ack", client_id="photo-1")
    st, _ = await server.api("PUT", "/api/v1/orders/R-1", {"status": "completed", "force": True})
    assert st == 200
    deadline = time.monotonic() + 10
    while (await get(f"{server.base}/api/v1/attachments/{att['id']}", API_KEY))[0] != 404:
        assert time.monotonic() < deadline, "retention did not delete the upload"
        await asyncio.sleep(0.05)
    await buyer.send(frame)
    again = await buyer.expect("ack", client_id="photo-1")
    assert (again["seq"], again["ts"], again["duplicate"]) == (first["seq"], first["ts"], True)
    refused = await send(buyer, "R-1", "photo again", [att["id"]])  # not a retry: the upload is gone
    assert refused["type"] == "error" and refused["code"] == "bad_request" and att["id"] in refused["message"]


def _order_body(workflow: str) -> dict:
    return {
        "buyer": {"id": "buyer1", "name": "Buyer1"},
        "supplier": {"id": "supplier1", "name": "Supplier1"},
        "workflow": workflow,
    }


@pytest.mark.single_only("the in-process server's store is patched")
async def test_a_message_is_refused_if_its_upload_vanished_meanwhile(server):
    """The link is written in the message's transaction and checks the upload still exists."""
    await server.order("A-1")
    buyer = await server.client("buyer1", "buyer")
    st, att = await upload(server.base, "A-1", samples.png(), "p.png", BUYER)
    store = server.app[ATTACHMENTS].store
    real = store.post

    async def delete_then_post(*args, **kwargs):  # the upload is gone after it was resolved
        await store.delete_attachment(att["id"])
        return await real(*args, **kwargs)

    store.post = delete_then_post
    try:
        ack = await send(buyer, "A-1", "photo", [att["id"]])
    finally:
        del store.post
    assert ack["type"] == "error" and ack["code"] == "bad_request" and att["id"] in ack["message"]
    st, page = await server.api("GET", "/api/v1/orders/A-1/messages")
    assert page["messages"] == []


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
async def test_memory_stays_bounded_during_a_20mb_upload(tmp_path):
    """A real server process: its peak RSS grows far less than the 20 MB it receives."""
    from tests.support.procs import ServerProc

    proc = ServerProc(tmp_path)
    await proc.astart()
    try:
        async with aiohttp.ClientSession() as s:
            headers = {"Authorization": f"Bearer {API_KEY}"}
            async with s.put(
                f"{proc.base}/api/v1/orders/BIG",
                headers=headers,
                json={"buyer": {"id": "buyer1", "name": "B"}, "supplier": {"id": "supplier1", "name": "S"}},
            ) as r:
                assert r.status == 201
        # warm up: the same path with a small file (threads, buffers, imports)
        st, _ = await upload(proc.base, "BIG", samples.pdf(2_000_000), "warm.pdf", BUYER)
        assert st == 201
        pid = proc.proc.pid
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak to the current RSS
        except OSError:
            pass
        before = _peak_rss_kib(pid)
        size = 20 * 1024 * 1024 - 4096  # just under the default limit
        path = tmp_path / "big.pdf"
        with open(path, "wb") as f:
            f.write(b"%PDF-1.7\n")
            chunk = bytes(range(256)) * 4096
            left = size - 9
            while left > 0:
                f.write(chunk[:left])
                left -= len(chunk[:left])
        with open(path, "rb") as fh:
            form = aiohttp.FormData()
            form.add_field("file", fh, filename="big.pdf", content_type="application/pdf")
            async with aiohttp.ClientSession() as s:
                async with s.post(
                    f"{proc.base}/api/v1/orders/BIG/attachments",
                    data=form,
                    headers={"Authorization": f"Bearer {BUYER}"},
                ) as r:
                    body = await r.json()
                    assert r.status == 201, body
        assert body["size"] == size
        growth_mib = (_peak_rss_kib(pid) - before) / 1024
        print(f"peak RSS growth during a {size / 2**20:.1f} MiB upload: {growth_mib:.2f} MiB")
        assert growth_mib < 6, f"peak RSS grew by {growth_mib:.1f} MiB during a 20 MiB upload"
        # and the stored file is intact
        stored = next(p for p in (tmp_path / "attachments").rglob("*") if p.is_file() and p.stat().st_size == size)
        assert stored.read_bytes() == path.read_bytes()
    finally:
        proc.stop()


def test_clean_name_and_content_disposition():
    from chatd.attachments import clean_name, content_disposition

    assert clean_name("C:\\Users\\me\\report\r\n.pdf") == "report.pdf"
    assert clean_name("..") == "file" and clean_name(None) == "file" and clean_name("  ") == "file"
    assert clean_name("a" * 300 + ".pdf").endswith(".pdf") and len(clean_name("a" * 300 + ".pdf")) == 200
    assert content_disposition('x";\\evil.pdf') == (
        "attachment; filename=\"x___evil.pdf\"; filename*=UTF-8''x%22%3B%5Cevil.pdf"
    )


async def test_attachment_routes_answer_other_origins(server):
    """The widget runs on the platform's pages: its uploads and downloads are
    cross-origin, with a bearer token. Those routes (errors included) allow any
    origin; the rest of the API does not (but the threads routes of the staff console)."""
    await server.order("A-CORS")
    async with aiohttp.ClientSession() as s:
        for path in ("/api/v1/orders/A-CORS/attachments", "/api/v1/attachments/some-id"):
            async with s.options(
                server.base + path,
                headers={
                    "Origin": "https://shop.example",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization",
                },
            ) as r:
                assert r.status == 204
                assert r.headers["Access-Control-Allow-Origin"] == "*"
                assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
        async with s.get(server.base + "/api/v1/orders/A-CORS", headers={"Authorization": f"Bearer {API_KEY}"}) as r:
            assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers
    st, body = await upload(server.base, "A-CORS", samples.exe(), "x.pdf", BUYER)
    assert st == 415
    st, att = await upload(server.base, "A-CORS", samples.png(), "p.png", BUYER)
    assert st == 201
    async with aiohttp.ClientSession() as s:
        async with s.post(
            f"{server.base}/api/v1/orders/A-CORS/attachments",
            data=b"x",
            headers={"Authorization": f"Bearer {BUYER}", "Origin": "https://shop.example"},
        ) as r:
            assert r.status >= 400 and r.headers["Access-Control-Allow-Origin"] == "*"  # the error is readable
        async with s.get(
            f"{server.base}/api/v1/attachments/{att['id']}", headers={"Authorization": f"Bearer {BUYER}"}
        ) as r:
            assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
            assert "Content-Disposition" in r.headers["Access-Control-Expose-Headers"]


@pytest.mark.parametrize("sections", [{"attachments": {"uploads_per_minute": 3}}], ids=["3-a-minute"])
async def test_uploads_are_rate_limited_per_user(server):
    await server.order("A-RATE")
    for i in range(3):
        st, _ = await upload(server.base, "A-RATE", samples.png(), f"p{i}.png", BUYER)
        assert st == 201
    st, body = await upload(server.base, "A-RATE", samples.png(), "p3.png", BUYER)
    assert st == 429 and body["error"]["code"] == "rate_limited" and "try again in" in body["error"]["message"]
    st, _ = await upload(server.base, "A-RATE", samples.png(), "s.png", SUPPLIER)  # another user: own bucket
    assert st == 201
    st, _ = await upload(server.base, "A-RATE", samples.png(), "boss.png", STAFF)  # staff are exempt
    assert st == 201


BOT = token("bot1", "bot", orders="*")


@pytest.mark.parametrize(
    "sections", [{"attachments": {"upload_bytes_per_minute": 100_000, "max_bytes": 60_000}}], ids=["100-kB-a-minute"]
)
@pytest.mark.single_only("the clock is injected into the in-process server")
async def test_upload_bytes_are_rate_limited_for_every_role(server):
    """Staff and bots are exempt from the count of uploads, not from the bytes:
    a bot token cannot fill the disk (issue 9, item 7). The clock is injected."""
    await server.order("A-BYTES")
    now = [1000.0]
    server.app[ATTACHMENTS].clock = lambda: now[0]
    for who in (BOT, STAFF, BUYER):
        for i in range(2):
            st, body = await upload(server.base, "A-BYTES", samples.pdf(40_000), f"d{i}.pdf", who)
            assert st == 201, body
        st, body = await upload(server.base, "A-BYTES", samples.pdf(40_000), "d2.pdf", who)  # 120 kB > 100 kB
        assert st == 429 and body["error"]["code"] == "rate_limited", body
        assert "try again in" in body["error"]["message"]
        st, body = await upload(server.base, "A-BYTES", samples.pdf(1_000), "small.pdf", who)  # budget spent
        assert st == 429
    assert list((attachments_dir(server.cfg) / "tmp").iterdir()) == []  # refused parts removed
    st, body = await upload(server.base, "A-BYTES", samples.pdf(40_000), "other.pdf", SUPPLIER)  # own budget
    assert st == 201
    now[0] += 30.0  # half a minute: half the budget back (less the overdraft)
    st, body = await upload(server.base, "A-BYTES", samples.pdf(20_000), "later.pdf", BOT)
    assert st == 201, body
    now[0] += 60.0
    for i in range(2):
        st, body = await upload(server.base, "A-BYTES", samples.pdf(40_000), f"e{i}.pdf", BOT)
        assert st == 201, body


def test_upload_bytes_per_minute_is_at_least_max_bytes(tmp_path):
    from chatd import config

    path = tmp_path / "c.toml"
    path.write_text("[attachments]\nmax_bytes = 1000\nupload_bytes_per_minute = 999\n")
    with pytest.raises(ValueError, match="upload_bytes_per_minute"):
        config.load(path, environ={"CHATD_AUTH_SECRET": "s", "CHATD_API_KEY": "k"})
