"""chatd.mail.parse: the text, the files, automatic mail and the retry key of a MIME message."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from chatd.mail.parse import read, unflow


def message(**headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Jane <jane@customer.example>"
    msg["To"] = "reply+x@reply.shop.test"
    msg["Subject"] = "Re: PO-7"
    msg["Date"] = "Mon, 01 Dec 2025 10:05:00 +0000"
    for k, v in headers.items():
        msg[k.replace("_", "-")] = v
    return msg


def test_the_plain_part_of_an_alternative_is_the_text():
    msg = message(Message_ID="<a1@mail.customer.example>")
    msg.set_content("Plain words.\n")
    msg.add_alternative("<p>HTML words</p>", subtype="html")
    mail = read(msg.as_bytes(), "jane@customer.example")
    assert (mail.text, mail.files, mail.automatic) == ("Plain words.\n", [], None)
    assert mail.message_id == "<a1@mail.customer.example>"


def test_html_alone_becomes_text_and_charsets_are_decoded():
    msg = message()
    msg.set_content("<div>Grüße, <b>Jörg</b></div>", subtype="html", charset="iso-8859-1")
    assert read(msg.as_bytes(), "j@x").text == "Grüße, Jörg"
    odd = b"From: j@x\r\nContent-Type: text/plain; charset=x-unknown-charset\r\n\r\nhello \xe2\x9c\x93\r\n"
    assert read(odd, "j@x").text.strip() == "hello \u2713"


def test_attachments_and_inline_photos_are_files_cid_images_and_signatures_are_not():
    msg = message()
    msg.set_content("See attached.")
    msg.add_related("<p>See <img src='cid:logo'></p>", subtype="html")  # becomes multipart/related inside
    msg.make_mixed()
    msg.add_attachment(b"%PDF-1.4 quote", maintype="application", subtype="pdf", filename="quote.pdf")
    photo = EmailMessage()
    photo.set_content(b"\x89PNG photo", maintype="image", subtype="png", disposition="inline", filename="IMG_1.png")
    msg.attach(photo)
    logo = EmailMessage()
    logo.set_content(b"\x89PNG logo", maintype="image", subtype="png", disposition="inline", filename="logo.png")
    logo["Content-ID"] = "<logo>"
    related = next(p for p in msg.walk() if p.get_content_type() == "multipart/related")
    related.attach(logo)
    mail = read(msg.as_bytes(), "j@x")
    assert mail.text == "See attached.\n"
    assert [(f.name, f.data) for f in mail.files] == [("quote.pdf", b"%PDF-1.4 quote"), ("IMG_1.png", b"\x89PNG photo")]


def test_a_signed_mail_has_no_signature_file():
    raw = (
        b"From: j@x\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nSigned words.\r\n"
        b'--b\r\nContent-Type: application/pkcs7-signature; name="smime.p7s"\r\n'
        b'Content-Disposition: attachment; filename="smime.p7s"\r\n\r\nMIIB\r\n--b--\r\n'
    )
    mail = read(raw, "j@x")
    assert (mail.text.strip(), mail.files) == ("Signed words.", [])


@pytest.mark.parametrize(
    "headers,mail_from,why",
    [
        ({"Auto_Submitted": "auto-replied"}, "j@x", "an automatic message (Auto-Submitted: auto-replied)"),
        ({"Auto_Submitted": "auto-generated; x=y"}, "j@x", "an automatic message (Auto-Submitted: auto-generated)"),
        ({"Precedence": "bulk"}, "j@x", "an automatic message (Precedence: bulk)"),
        ({"X_Autoreply": "yes"}, "j@x", "an automatic message (X-Autoreply)"),
        ({}, "<>", "a delivery report (null sender)"),
        ({"Auto_Submitted": "no"}, "j@x", None),
    ],
)
def test_mail_a_program_sent_is_recognised(headers, mail_from, why):
    msg = message(**headers)
    msg.set_content("I am away until Monday.")
    assert read(msg.as_bytes(), mail_from).automatic == why


def test_the_client_id_is_a_short_hash_of_the_message_id_or_of_the_content():
    a = message(Message_ID="<CAF=x+long@mail.gmail.com>")
    a.set_content("one")
    b = message(Message_ID="<CAF=x+long@mail.gmail.com>")
    b.set_content("the same mail, delivered again with other headers")
    ka, kb = read(a.as_bytes(), "j@x").client_id, read(b.as_bytes(), "j@x").client_id
    assert ka == kb and ka.startswith("mail-") and len(ka) == 37
    assert "gmail" not in ka and "@" not in ka  # names no mail host, nothing the contact filter flags
    huge = message(Message_ID="<" + "x" * 5000 + "@y>")
    huge.set_content("one")
    assert len(read(huge.as_bytes(), "j@x").client_id) == 37
    plain1, plain2, other = message(), message(), message()
    plain1.set_content("no id")
    plain2.set_content("no id")
    other.set_content("no id, other words")
    keys = [read(m.as_bytes(), "j@x").client_id for m in (plain1, plain2, other)]
    assert keys[0] == keys[1] != keys[2]


def test_format_flowed_paragraphs_are_joined():
    raw = (
        b"From: j@x\r\nContent-Type: text/plain; charset=utf-8; format=flowed\r\n\r\n"
        b"The pallets can go on \r\nFriday, or on Monday \r\nif that suits.\r\n\r\n From here.\r\n"
        b"> quoted and \r\n> flowed\r\n-- \r\nJane\r\n"
    )
    text = read(raw, "j@x").text
    first = "The pallets can go on Friday, or on Monday if that suits."
    assert text == first + "\n\nFrom here.\n> quoted and \n> flowed\n-- \nJane\n"
    assert unflow("a-\nb", delsp=True) == "a-\nb" and unflow("wrap \nme", delsp=True) == "wrapme"
