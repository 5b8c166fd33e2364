"""A MIME message read for the chat: its text, its files, whether a program sent
it, and the key that stores it once. Pure (stdlib `email`, `policy.default`).

The text is the text/plain body, else the HTML body as text (chatd.mail.htmltext):
never HTML. Files are the parts sent as attachments, and named inline parts
outside `multipart/related` (a photo an iPhone puts in the text); images an HTML
body shows by `cid:` (signature logos, mostly) and the signature part of
`multipart/signed` are not files of the message.
"""

from __future__ import annotations

import hashlib
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import NamedTuple

from chatd.mail import htmltext
from chatd.mail.addresses import b32

_SIGNATURE_TYPES = frozenset(
    {"application/pkcs7-signature", "application/x-pkcs7-signature", "application/pgp-signature"}
)
_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
CLIENT_ID_PREFIX = "mail-"


class MailFile(NamedTuple):
    name: str | None
    data: bytes


class Mail(NamedTuple):
    text: str  # the whole body text, quotes included (chatd.mail.quotes strips them)
    files: list[MailFile]
    message_id: str  # "" when the mail has none
    automatic: str | None  # why this mail was sent by a program (not posted), or None
    client_id: str  # the chat's retry key: the same mail delivered twice has the same one


def read(raw: bytes, mail_from: str = "") -> Mail:
    """Read `raw` (the message as received, headers and body), sent by `mail_from`
    (the envelope sender; "" or "<>" for a delivery report)."""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)  # policy.default builds EmailMessage objects
    body = msg.get_body(preferencelist=("plain", "html"))
    text = ""
    if isinstance(body, EmailMessage):
        text = _content(body)
        if body.get_content_subtype() == "html":
            text = htmltext.to_text(text)
        elif str(body.get_param("format", "")).lower() == "flowed":
            text = unflow(text, str(body.get_param("delsp", "")).lower() == "yes")
    files: list[MailFile] = []
    _files(msg, body, files, related=False)
    message_id = _header(msg, "Message-ID").strip()
    return Mail(text, files, message_id, _automatic(msg, mail_from), client_id(msg, message_id, text, files))


def unflow(text: str, delsp: bool = False) -> str:
    """`format=flowed` text (RFC 3676, Apple Mail and Thunderbird send it) as the
    paragraphs it stands for: a line ending in a space goes on on the next one.
    Quoted lines are left as they are (they are not posted)."""
    out: list[str] = []
    para: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith(">"):
            if para:
                out.append("".join(para))
                para = []
            out.append(line)
            continue
        if line.startswith(" "):
            line = line[1:]  # space-stuffing
        if line.endswith(" ") and line != "-- ":
            para.append(line[:-1] if delsp else line)
            continue
        para.append(line)
        out.append("".join(para))
        para = []
    if para:
        out.append("".join(para))
    return "\n".join(out)


def client_id(msg: Message, message_id: str, text: str, files: list[MailFile]) -> str:
    """`mail-` and 32 base32 characters of a SHA-256: of the Message-ID, or of the
    content when there is none (sender, date, subject, text, files). Always a
    hash: the client_id is shown to the other participants and screened by the
    contact filter, and a Message-ID names the sender's mail host."""
    key = message_id.strip("<> \t")
    if key:
        digest = hashlib.sha256(b"message-id\0" + key.encode("utf-8", "surrogateescape")).digest()
    else:
        h = hashlib.sha256(b"content\0")
        for name in ("From", "Date", "Subject"):
            h.update(_header(msg, name).encode("utf-8", "surrogateescape") + b"\0")
        h.update(text.encode("utf-8", "surrogateescape") + b"\0")
        for f in files:
            h.update(hashlib.sha256(f.data).digest())
        digest = h.digest()
    return CLIENT_ID_PREFIX + b32(digest[:20])


def _header(msg: Message, name: str) -> str:
    """A header's value as text ("" if absent or unreadable: a malformed header is
    not a reason to refuse the reply)."""
    try:
        value = msg.get(name)
    except Exception:  # noqa: BLE001 - the header parser's defects on hostile input
        return ""
    return "" if value is None else str(value)


def _content(part: EmailMessage) -> str:
    try:
        content = part.get_content()
        if isinstance(content, str):
            return content
    except (LookupError, UnicodeError, ValueError, AssertionError):
        pass  # an unknown or wrong charset: decoded as UTF-8, whatever does not fit replaced
    payload = part.get_payload(decode=True)
    return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def _files(part: Message, body: Message | None, out: list[MailFile], related: bool) -> None:
    ctype = part.get_content_type()
    if ctype == "message/rfc822" or not part.is_multipart():
        if part is body or ctype in _SIGNATURE_TYPES:
            return
        disposition = part.get_content_disposition()
        name = part.get_filename()
        if disposition == "attachment" or (name and not related) or ctype == "message/rfc822":
            out.append(MailFile(name, _bytes(part)))
        return
    subtype = part.get_content_subtype()
    kids = list(part.iter_parts()) if isinstance(part, EmailMessage) else []
    if subtype == "signed":
        kids = kids[:1]  # the signed content; the signature is no file of the message
    for kid in kids:
        _files(kid, body, out, related or subtype == "related")


def _bytes(part: Message) -> bytes:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload(0)
        return inner.as_bytes(policy=policy.default) if isinstance(inner, Message) else b""
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _automatic(msg: Message, mail_from: str) -> str | None:
    """Why a program sent this mail (RFC 3834 and common practice), or None: an
    out-of-office answer or a bounce must not become a chat message."""
    if mail_from.strip() in ("", "<>"):
        return "a delivery report (null sender)"
    if msg.get_content_type() == "multipart/report":
        return "a delivery report"
    auto = _header(msg, "Auto-Submitted").strip().lower()
    if auto and auto != "no":
        return f"an automatic message (Auto-Submitted: {auto.split(';')[0]})"
    precedence = _header(msg, "Precedence").strip().lower()
    if precedence in _PRECEDENCE:
        return f"an automatic message (Precedence: {precedence})"
    for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response"):
        if _header(msg, name):
            return f"an automatic message ({name})"
    return None
