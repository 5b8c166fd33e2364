"""Reply by e-mail (issue 13): a real SMTP exchange, aiosmtplib sending to chatd's
aiosmtpd listener on 127.0.0.1, into a real server over a real store (SQLite, or
PostgreSQL with CHATD_TEST_STORE=postgres).

The reply addresses are minted in the in-process app (`ReplyAddresses.address_for`,
which outbound notification mail calls), so the module runs on the single server.
"""

from __future__ import annotations

import hashlib
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib
import pytest

from chatd.app import create_app
from chatd.edge.keys import ATTACHMENTS, REPLIES
from chatd.mail.addresses import ReplyAddresses
from tests.support import samples
from tests.support.client import SECRET, request, token
from tests.support.receiver import get

DOMAIN = "reply.shop.test"
ORDER = "PO-7"
INVALID = "this reply address is not valid (revoked or unknown): reply in the chat instead"
EMPTY = "the reply is empty once quoted text and signatures are removed: nothing was posted"
QUOTED = (
    "\n\nOn Mon, 1 Dec 2025 at 10:00, Berg Tools <reply+x@reply.shop.test> wrote:\n\n"
    "> Your pallets are ready. When can we ship?\n> \n> Berg Tools\n"
)


@pytest.fixture
def email_section():
    """Override (parametrize) to change `[email]` beyond the domain and the port."""
    return {}


@pytest.fixture
def attachments_section():
    """Override (parametrize) to change `[attachments]`."""
    return {}


@pytest.fixture
def sections(inbound_port, email_section, attachments_section):
    # the filter as shipped (tests elsewhere turn it off)
    return {
        "email": {"reply_domain": DOMAIN, "inbound_port": inbound_port, **email_section},
        "filter": {"mode": "block"},
        "attachments": attachments_section,
    }


async def address(server, user: str, order: str = ORDER) -> str:
    return await server.app[REPLIES].address_for(user, order)


def mail(
    to: str,
    text: str | None,
    *,
    html: str | None = None,
    message_id: str | None = "",
    files: tuple[tuple[str, str, bytes], ...] = (),
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Jane Buyer <jane@customer.example>"
    msg["To"] = to
    msg["Subject"] = f"Re: your order {ORDER}"
    msg["Date"] = "Mon, 01 Dec 2025 10:05:00 +0000"
    if message_id is not None:
        msg["Message-ID"] = message_id or make_msgid(domain="customer.example")
    for k, v in (headers or {}).items():
        msg[k] = v
    if text is not None:
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    for name, mime, data in files:
        maintype, subtype = mime.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg


async def deliver(server, msg: EmailMessage, *recipients: str) -> tuple[int, str]:
    """Send `msg` over SMTP: (reply code, text) of the refusal or of the final 250."""
    port = server.cfg.email.inbound_port
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="mx.customer.example") as smtp:
        try:
            refused, answer = await smtp.send_message(
                msg, sender="jane@customer.example", recipients=list(recipients) or None
            )
        except aiosmtplib.SMTPSenderRefused as exc:  # SIZE over the limit, at MAIL FROM
            return exc.code, exc.message
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return exc.recipients[0].code, exc.recipients[0].message
        except aiosmtplib.SMTPDataError as exc:
            return exc.code, exc.message
        assert not refused, refused
        return 250, answer


async def history(server, order: str = ORDER) -> list[dict]:
    st, page = await server.api("GET", f"/api/v1/orders/{order}/messages")
    assert st == 200, page
    return page["messages"]


async def test_a_reply_is_posted_as_its_recipient_and_reaches_the_room_live(server):
    await server.order(ORDER)
    supplier = await server.client("supplier1", "supplier")
    await supplier.join(ORDER)
    to = await address(server, "buyer1")
    local = to.split("@")[0]
    assert to.endswith("@" + DOMAIN) and local.startswith("reply+") and len(local) <= 64
    assert await address(server, "buyer1") == to  # one address per recipient and order

    code, answer = await deliver(server, mail(to, "Friday works for us.\n\n-- \nJane Buyer\nACME Ltd" + QUOTED))
    assert code == 250 and "posted to the order chat as message 1" in answer, answer
    live = await supplier.expect("message", order=ORDER)
    assert live["text"] == "Friday works for us."
    assert live["sender"] == {"id": "buyer1", "name": "Buyer1", "role": "buyer"}
    assert live["kind"] == "text" and live["client_id"].startswith("mail-") and len(live["client_id"]) <= 128


async def test_a_reply_delivered_twice_is_stored_once(server):
    await server.order(ORDER)
    to = await address(server, "buyer1")
    msg = mail(to, "Please deliver to the back door.")
    first = await deliver(server, msg)
    again = await deliver(server, msg)
    assert first == (250, "2.0.0 posted to the order chat as message 1"), first
    assert again == (250, "2.0.0 already posted to the order chat as message 1"), again
    # without a Message-ID, the content is the key
    bare = mail(to, "Ring twice.", message_id=None)
    assert (await deliver(server, bare))[1].endswith("posted to the order chat as message 2")
    assert (await deliver(server, bare))[1].endswith("already posted to the order chat as message 2")
    assert [m["text"] for m in await history(server)] == ["Please deliver to the back door.", "Ring twice."]


async def orphans(server) -> int:
    """Uploads no message carries (removed by this count, as the clean-up would)."""
    deleted, _ = await server.app[ATTACHMENTS].store.delete_unreferenced(2**62)
    return deleted


@pytest.mark.parametrize("attachments_section", [{"uploads_per_minute": 3}])
async def test_a_reply_with_files_delivered_again_uploads_nothing(server):
    """A repeat is answered before its files are uploaded again: no orphaned copies, and
    the user's upload budget (3 a minute, spent by the first delivery's 2 files and one
    more) is not what answers the sending server's retries."""
    await server.order(ORDER)
    to = await address(server, "buyer1")
    files = (("a.png", "image/png", samples.png(3, 2)), ("b.pdf", "application/pdf", samples.pdf(300)))
    msg = mail(to, "Two photos of the pallet.", files=files)
    assert await deliver(server, msg) == (250, "2.0.0 posted to the order chat as message 1")
    for _ in range(3):
        assert await deliver(server, msg) == (250, "2.0.0 already posted to the order chat as message 1")
    assert await orphans(server) == 0
    (posted,) = await history(server)
    assert [a["name"] for a in posted["attachments"]] == ["a.png", "b.pdf"]
    # the budget is untouched by the repeats: one more upload is still allowed
    one = mail(to, "And the label.", files=(("label.png", "image/png", samples.png(2, 2)),))
    assert await deliver(server, one) == (250, "2.0.0 posted to the order chat as message 2")


async def test_a_reply_delivered_again_after_the_chat_closed_is_already_posted(server):
    """A retry is answered as before even when the chat has closed since, with or
    without files; a new reply to the closed chat is still refused."""
    body = {"buyer": {"id": "buyer1", "name": "B"}, "supplier": {"id": "supplier1", "name": "S"}, "workflow": "retail"}
    assert (await server.api("PUT", f"/api/v1/orders/{ORDER}", body))[0] == 201
    to = await address(server, "buyer1")
    with_file = mail(to, "Photo attached.", files=(("photo.png", "image/png", samples.png(3, 2)),))
    text_only = mail(to, "Text before the close.")
    assert await deliver(server, with_file) == (250, "2.0.0 posted to the order chat as message 1")
    assert await deliver(server, text_only) == (250, "2.0.0 posted to the order chat as message 2")
    assert (await server.api("PUT", f"/api/v1/orders/{ORDER}", {"status": "cancelled"}))[0] == 200
    assert await deliver(server, with_file) == (250, "2.0.0 already posted to the order chat as message 1")
    assert await deliver(server, text_only) == (250, "2.0.0 already posted to the order chat as message 2")
    assert await deliver(server, mail(to, "A new one.")) == (550, "5.7.1 the chat is closed: the order is cancelled")
    assert await orphans(server) == 0
    assert [m["kind"] for m in await history(server)] == ["text", "text", "status"]


async def test_quoted_history_and_signatures_are_not_posted(server):
    await server.order(ORDER)
    to = await address(server, "supplier1")
    outlook = (
        "We ship on Friday.\n\nGet Outlook for iOS\n________________________________\n"
        "From: Buyer1 <reply+x@reply.shop.test>\nSent: Monday, December 1, 2025 10:00 AM\n"
        "To: Berg Tools\nSubject: PO-7\n\nWhen do you ship?\n"
    )
    assert (await deliver(server, mail(to, outlook)))[0] == 250
    iphone = "Thanks!\n\nSent from my iPhone" + QUOTED
    assert (await deliver(server, mail(to, iphone)))[0] == 250
    assert [m["text"] for m in await history(server)] == ["We ship on Friday.", "Thanks!"]


async def test_an_address_in_upper_case_still_posts(server):
    await server.order(ORDER)
    to = (await address(server, "buyer1")).upper()
    assert (await deliver(server, mail(to, "Shouting, sorry.")))[0] == 250
    assert [m["sender"]["id"] for m in await history(server)] == ["buyer1"]


async def test_a_bad_token_is_refused_at_rcpt(server):
    await server.order(ORDER)
    to = await address(server, "buyer1")
    local, domain = to.split("@")
    tampered = local[:-1] + ("a" if local[-1] != "a" else "b") + "@" + domain
    code, text = await deliver(server, mail(tampered, "hello"))
    assert (code, text) == (550, f"5.1.1 {INVALID}")
    # signed with the right key, but no such token in the store
    forged = ReplyAddresses(server.app[REPLIES].store, SECRET, DOMAIN).address("a" * 16)
    assert (await deliver(server, mail(forged, "hello")))[0] == 550
    assert (await deliver(server, mail(f"reply+short@{DOMAIN}", "hello")))[0] == 550
    assert await history(server) == []


async def test_a_recipient_removed_from_the_order_has_their_address_revoked(server):
    await server.order(ORDER)
    old = await address(server, "supplier1")
    buyer = await address(server, "buyer1")
    await server.order(ORDER, supplier="supplier2")  # PUT /api/v1/orders/PO-7 with a new supplier
    code, text = await deliver(server, mail(old, "still here?"))
    assert code == 550 and "not valid (revoked or unknown)" in text, text
    assert (await deliver(server, mail(buyer, "the buyer's still works")))[0] == 250
    with pytest.raises(Exception, match="no participant slot"):
        await address(server, "supplier1")
    assert await address(server, "supplier2") != old


async def test_a_closed_chat_refuses_the_reply_and_keeps_the_address(server):
    st, _ = await server.api(
        "PUT",
        f"/api/v1/orders/{ORDER}",
        {
            "buyer": {"id": "buyer1", "name": "Buyer1"},
            "supplier": {"id": "supplier1", "name": "S"},
            "workflow": "retail",
        },
    )
    assert st == 201
    to = await address(server, "buyer1")
    st, _ = await server.api("PUT", f"/api/v1/orders/{ORDER}", {"status": "cancelled"})
    assert st == 200
    code, text = await deliver(server, mail(to, "Why was it cancelled?"))
    assert (code, text) == (550, "5.7.1 the chat is closed: the order is cancelled")
    assert await address(server, "buyer1") == to  # a refusal, not a revocation
    assert [m["kind"] for m in await history(server)] == ["status"]


async def test_contact_details_are_blocked(server):
    await server.order(ORDER)
    to = await address(server, "buyer1")
    code, text = await deliver(server, mail(to, "Call me on +44 20 7946 0958 instead."))
    assert (code, text) == (550, "5.7.1 contact details are not allowed here: phone number")
    assert await history(server) == []


async def test_an_attachment_is_screened_and_posted_with_the_text(server):
    await server.order(ORDER)
    to = await address(server, "buyer1")
    photo = samples.png(3, 2)
    sent = mail(to, "Photo of the damage attached.", files=(("damage.png", "image/png", photo),))
    code, _ = await deliver(server, sent)
    assert code == 250
    (msg,) = await history(server)
    assert msg["text"] == "Photo of the damage attached."
    (att,) = msg["attachments"]
    assert (att["name"], att["mime"], att["size"]) == ("damage.png", "image/png", len(photo))
    st, _, body = await get(f"{server.base}/api/v1/attachments/{att['id']}", token("supplier1", "supplier"))
    assert st == 200 and hashlib.sha256(body).digest() == hashlib.sha256(photo).digest()
    # a file alone is a reply too; an executable is refused like an upload
    assert (await deliver(server, mail(to, "", files=(("scan.pdf", "application/pdf", samples.pdf(500)),))))[0] == 250
    code, text = await deliver(
        server, mail(to, "invoice", files=(("invoice.pdf", "application/pdf", b"MZ\x90\x00" + b"\x00" * 200),))
    )
    assert (code, text) == (554, "5.6.1 invoice.pdf: executables are not accepted")
    assert len(await history(server)) == 2


async def test_mail_for_another_domain_or_mailbox_is_refused(server):
    await server.order(ORDER)
    local = (await address(server, "buyer1")).split("@")[0]
    code, text = await deliver(server, mail(f"{local}@elsewhere.test", "hi"))
    assert code == 550
    assert text == f"5.7.1 relay access denied: this server takes mail for reply addresses @{DOMAIN} only"
    code, text = await deliver(server, mail(f"sales@{DOMAIN}", "hi"))
    assert code == 550 and text.startswith("5.1.1 no such mailbox"), text


async def test_multipart_alternative_posts_the_plain_part_and_html_alone_as_text(server):
    await server.order(ORDER)
    to = await address(server, "buyer1")
    both = mail(to, "Plain words.", html="<p>HTML <b>words</b></p>")
    assert (await deliver(server, both))[0] == 250
    html = (
        '<div dir="ltr">Only <b>HTML</b> here.<br>Second line</div>'
        '<div class="gmail_quote"><div>On Mon, 1 Dec 2025 Berg wrote:</div><blockquote>old</blockquote></div>'
    )
    assert (await deliver(server, mail(to, None, html=html)))[0] == 250
    assert [m["text"] for m in await history(server)] == ["Plain words.", "Only HTML here.\nSecond line"]


async def test_an_empty_reply_an_automatic_one_and_a_second_address_are_answered(server):
    await server.order(ORDER)
    to = await address(server, "buyer1")
    code, text = await deliver(server, mail(to, QUOTED))
    assert (code, text) == (554, "5.6.0 " + EMPTY)
    away = mail(to, "I am out of the office.", headers={"Auto-Submitted": "auto-replied"})
    assert await deliver(server, away) == (250, "2.0.0 an automatic message (Auto-Submitted: auto-replied): not posted")
    assert await history(server) == []
    # two reply addresses in one transaction: the second is deferred (452), the first posted once
    other = await address(server, "supplier1")
    port = server.cfg.email.inbound_port
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="mx.test") as smtp:
        refused, _ = await smtp.send_message(mail(to, "to both"), sender="x@customer.example", recipients=[to, other])
    assert [(r.code, r.message) for r in refused.values()] == [
        (452, "4.5.3 one reply address per message: send it again for this one")
    ]
    assert [(m["text"], m["sender"]["id"]) for m in await history(server)] == [("to both", "buyer1")]


@pytest.mark.parametrize("limits", [{"rate_per_s": 0.001, "rate_burst": 2, "max_text_chars": 40}])
async def test_limits_rate_and_length(server):
    await server.order(ORDER)
    to = await address(server, "buyer1")
    code, text = await deliver(server, mail(to, "x" * 41))
    assert (code, text) == (552, "5.3.4 text is longer than 40 characters")
    assert (await deliver(server, mail(to, "one")))[0] == 250
    code, text = await deliver(server, mail(to, "two"))  # the burst of 2 is spent (the long one took a token)
    assert (code, text) == (451, "4.7.1 too many replies by e-mail; try again later")
    # the socket has buckets of its own, per connection
    buyer = await server.client("buyer1", "buyer")
    ack = await request(buyer, {"type": "send", "order": ORDER, "client_id": "c1", "text": "by socket"}, "ack")
    assert ack["type"] == "ack"


@pytest.mark.parametrize("email_section", [{"max_message_bytes": 4096}])
async def test_a_mail_over_max_message_bytes_is_refused(server):
    await server.order(ORDER)
    to = await address(server, "buyer1")
    big = mail(to, "big", files=(("a.pdf", "application/pdf", samples.pdf(8000)),))
    code, text = await deliver(server, big)  # announced with SIZE: refused at MAIL FROM
    assert (code, text) == (552, "Error: message size exceeds fixed maximum message size")
    port = server.cfg.email.inbound_port
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="mx.test") as smtp:
        await smtp.mail("jane@customer.example")  # no SIZE: refused once the data passed the limit
        await smtp.rcpt(to)
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await smtp.data(big.as_bytes())
    assert (refused.value.code, refused.value.message) == (552, "Error: Too much mail data")
    assert await history(server) == []


async def test_the_listener_stops_with_the_server(tmp_path, aiohttp_server, inbound_port):
    from tests.conftest import make_config, with_sections

    cfg = with_sections(make_config(tmp_path), {"email": {"reply_domain": DOMAIN, "inbound_port": inbound_port}})
    srv = await aiohttp_server(create_app(cfg))
    idle = aiosmtplib.SMTP(hostname="127.0.0.1", port=inbound_port, local_hostname="mx.test")
    await idle.connect()
    assert (await idle.noop()).code == 250
    await srv.close()
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):  # its session ended with the server
        await idle.noop()
    with pytest.raises(aiosmtplib.SMTPConnectError):  # and nothing listens any more
        await aiosmtplib.SMTP(hostname="127.0.0.1", port=inbound_port, local_hostname="mx.test").connect()


async def test_a_notification_mail_is_answered_into_the_chat(tmp_path, aiohttp_server, inbound_port):
    """Both ways over real SMTP: chatd's notification mail (to an aiosmtpd sink that
    requires STARTTLS) carries the Reply-To, and answering it as a mail program does,
    the notification quoted below, posts the answer to the chat."""
    import trustme

    from chatd.edge.keys import NOTIFIER
    from tests.conftest import Server, make_config, with_sections
    from tests.support.smtp import SmtpSink

    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    sink = SmtpSink(str(ca_file), ca.issue_cert("127.0.0.1"))
    sink.controller.start()
    try:
        email = {"reply_domain": DOMAIN, "inbound_port": inbound_port, "smtp_url": sink.url}
        email |= {"tls_ca_file": str(ca_file), "from_address": "orders@shop.test"}
        cfg = with_sections(make_config(tmp_path), {"email": email, "notify": {"delay_s": 0.0, "poll_s": 3600.0}})
        server = Server(await aiohttp_server(create_app(cfg)), cfg)
        body = {
            "buyer": {"id": "buyer1", "name": "Bea", "email": "bea@customer.example"},
            "supplier": {"id": "supplier1", "name": "Berg Tools"},
        }
        assert (await server.api("PUT", f"/api/v1/orders/{ORDER}", body))[0] == 201
        supplier = await server.client("supplier1", "supplier")
        await supplier.join(ORDER)
        sent = {"type": "send", "order": ORDER, "client_id": "c1", "text": "Your pallets are packed. When can we ship?"}
        assert (await request(supplier, sent, "ack"))["type"] == "ack"
        await server.app[NOTIFIER].deliver_due()
        (note,) = await sink.wait_for(1)
        assert note["To"] == "bea@customer.example" and note["Auto-Submitted"] == "auto-generated"
        assert note["Reply-To"] == await address(server, "buyer1")

        plain = note.get_body(("plain",)).get_content()
        answer = EmailMessage()
        answer["From"], answer["To"] = "Bea <bea@customer.example>", note["Reply-To"]
        answer["Subject"], answer["In-Reply-To"] = "Re: " + note["Subject"], note["Message-ID"]
        answer["Message-ID"] = make_msgid(domain="customer.example")
        quoted = "\n".join("> " + line for line in plain.splitlines())
        answer.set_content(f"Friday, please.\n\nOn Mon, 1 Dec 2025 at 10:00, orders@shop.test wrote:\n\n{quoted}\n")
        code, text = await deliver(server, answer)
        assert code == 250, text
        got = await supplier.expect("message", order=ORDER, seq=2)
        assert (got["text"], got["sender"]["id"]) == ("Friday, please.", "buyer1")
        for c in server.clients:
            await c.close()
    finally:
        sink.controller.stop()
