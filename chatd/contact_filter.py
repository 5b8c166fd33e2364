"""Contact details in chat text: find them, mask them, or refuse the message.

Pure functions, no I/O. `scan` finds e-mail addresses, phone numbers
(international and local formats, with spaces, dots, dashes and brackets, or
spelled out: "five five five ..."), links and messenger handles. Numbers that
are not phones (order and invoice numbers, quantities, prices, dates, times,
SKUs, ranges) are recognised first and left alone. The patterns run on the
normalised views of chatd.contact_normalise, so disguises ("５５５",
"fivefive5", "j o h n @ g m a i l", "hxxps://x[.]com") are seen plain and
findings still name the original text. `screen` applies a
deployment's mode (`off`, `mask`, `block`); `applies` says which messages the
filter is for: buyer side <-> supplier side, never staff, bots or notes.

Precision and recall on the test corpus: docs/contact-filter.md.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import NamedTuple

from chatd.auth import permissions
from chatd.contact_normalise import DIGIT_WORDS, MAIL_PROVIDERS, MULTIPLIERS, digit_view, letter_view
from chatd.errors import BlockedContent

MODES = ("off", "mask", "block")

LABELS = {"email": "e-mail address", "phone": "phone number", "url": "link", "handle": "messenger handle"}
PLACEHOLDERS = {
    "email": "[e-mail removed]",
    "phone": "[phone removed]",
    "url": "[link removed]",
    "handle": "[contact removed]",
}
_PRIORITY = {"email": 0, "url": 1, "handle": 2, "phone": 3}


class Finding(NamedTuple):
    kind: str  # email, phone, url, handle
    start: int
    end: int
    text: str


# --- policy ---------------------------------------------------------------------


def applies(sender_role: str, kind: str) -> bool:
    """Whether a message of `kind` by a sender with this order role is screened.

    Buyer, supplier and sales rep write across the buyer/supplier line; staff
    and bots are exempt; notes never reach the buyer, so they are not screened.
    """
    return sender_role in permissions.CONTACT_FILTERED and kind != "note"


def describe(findings: list[Finding]) -> str:
    """'phone number, e-mail address': what was found, in order of appearance."""
    seen: list[str] = []
    for f in findings:
        label = LABELS[f.kind]
        if label not in seen:
            seen.append(label)
    return ", ".join(seen)


def screen(text: str, mode: str) -> tuple[str, list[Finding]]:
    """Apply `mode` to `text`: the text to store and what was found.

    `block` raises BlockedContent naming what was found; `mask` returns the
    text with each finding replaced; `off` returns it unchanged.
    """
    if mode == "off" or not text:
        return text, []
    return settle(text, scan(text), mode)


def settle(text: str, found: list[Finding], mode: str) -> tuple[str, list[Finding]]:
    """`screen`, for a text already scanned (`found`)."""
    if not found or mode == "off":
        return text, []
    if mode == "block":
        raise BlockedContent(f"contact details are not allowed here: {describe(found)}")
    return mask(text, found), found


@functools.lru_cache(maxsize=4096)
def masked_name(name: str, limit: int) -> str:
    """A display name with its contact details masked, cut again to `limit`. A name
    crosses the buyer/supplier line on every message, typing and dispute it is on;
    it is masked in both modes, never refused: it is not something its holder sends
    (the platform signs it, or sets it on the order), and refusing it would shut
    them out of the chat. The same few names come again and again: cached."""
    found = scan(name)
    return mask(name, found)[:limit] if found else name


def mask(text: str, findings: list[Finding] | None = None) -> str:
    """`text` with every finding replaced by a placeholder naming its kind."""
    if findings is None:
        findings = scan(text)
    out, pos = [], 0
    for f in findings:
        out.append(text[pos : f.start])
        out.append(PLACEHOLDERS[f.kind])
        pos = f.end
    out.append(text[pos:])
    return "".join(out)


# --- vocabulary -------------------------------------------------------------------

# Top-level domains a bare "name.tld" must end in to count as a link. Common
# words that are also TLDs and appear glued in business text ("Ref.No",
# "do.it", "log.in") are left out on purpose.
_TLDS = (
    "com net org info biz io co me app dev ai xyz online site store shop top club pro live email cloud "
    "tech space website page link blog news world today group company business market tv ly gl gg cc "
    "ru su ua by kz uz de uk fr es pt nl pl cz sk ch se dk fi gr tr ro hu bg rs hr lt lv ee ie eu "
    "cn jp kr vn th sg hk tw au nz ca us mx br ar cl pe ng za ke eg ae sa il ir pk bd lk"
).split()
_TLD = "(?:" + "|".join(sorted(_TLDS, key=len, reverse=True)) + ")"

# Vocabulary tables, packed by hand (the formatter would put each word on a line of its own).
# fmt: off
_MESSENGERS = (
    "telegram", "whatsapp", "whats app", "viber", "wechat", "weixin", "skype", "instagram", "insta",
    "discord", "snapchat", "facebook", "kik", "threema", "icq", "zalo", "kakaotalk", "kakao", "tiktok",
    "vkontakte", "imessage", "facetime",
)
# short or everyday words: only with "id"/"handle" or a colon and a handle-like name
_MESSENGERS_WEAK = ("tg", "wa", "ig", "fb", "vk", "line", "signal", "snap", "messenger", "teams")

# Words that make a following number something else than a phone.
_NOT_PHONE_WORDS = (
    "order", "orders", "ord", "po", "p.o", "invoice", "inv", "sku", "item", "items", "article", "art",
    "ref", "reference", "tracking", "track", "awb", "waybill", "batch", "lot", "model", "part", "pn",
    "code", "ticket", "case", "parcel", "shipment", "container", "account", "acct", "iban", "serial",
    "sn", "s/n", "barcode", "ean", "upc", "gtin", "hs", "vin", "qty", "quantity", "quantities", "size",
    "sizes", "total", "price", "prices", "amount", "cost", "budget", "sum", "id", "receipt", "contract",
    "version", "ver", "catalog", "catalogue", "page", "pages", "room", "box", "boxes", "pallet",
    "pallets", "unit", "units", "pcs", "pieces", "year", "years", "zip", "postcode", "postal",
    "bank", "swift", "bic", "card", "vat", "tax", "inn", "ogrn", "kpp", "okpo", "ssn", "passport",
)
# fmt: on
# Words that, right before the number, say it is a phone whatever its shape.
_STRONG_PHONE = re.compile(
    r"(?:\b(?:phone|telephone|tel|mobile|mob|cell|cellphone|fax|hotline|whatsapp|viber|telegram|signal|"
    r"sms|wa|tg)\b|\bcall(?:\s+me)?(?:\s+(?:at|on))?|\btext\s+me(?:\s+(?:at|on))?|\bring\s+me|"
    r"\breach\s+me(?:\s+(?:at|on))?|\bmy\s+(?:number|no|nr|cell|mobile)|\bcontact\s+(?:number|no|me(?:\s+(?:at|on))?)|"
    r"\bnumber)(?:\s+is)?\W{0,4}$",
    re.I,
)
# "item number 448-221", "part no. 1234-5678": the number of something else
_OTHER_NUMBER = re.compile(r"\b(" + "|".join(re.escape(w) for w in _NOT_PHONE_WORDS) + r")\s+(?:number|no|nr)\b", re.I)
_WEAK_BEFORE = re.compile(
    r"(?:^|[\s(\[,;:])(" + "|".join(re.escape(w) for w in _NOT_PHONE_WORDS) + r")\b[^\w]{0,3}"
    r"(?:[\w./-]{0,12}[^\w]{0,3})?$",
    re.I,
)

_UNITS = (
    r"(?:pcs|pc|pieces?|units?|items?|kg|kgs|g|gr|grams?|lbs?|oz|t|tons?|tonnes?|m|cm|mm|km|m2|m3|sqm|ml|l|"
    r"litres?|liters?|boxes|box|cartons?|ctns?|pallets?|sets?|pairs?|rolls?|bags?|sheets?|packs?|bottles?|"
    r"meters?|metres?|inch(?:es)?|in|ft|feet|yards?|yd|days?|hours?|hrs?|h|mins?|minutes?|weeks?|months?|"
    r"years?|%|x|pax|people|persons?|orders?|skus?|models?|colou?rs?|sizes?|times|mb|gb|kb|w|kw|v|mah|rpm)"
)
_CURRENCY = (
    r"(?:\$|€|£|¥|₽|₹|₴|₸|usd|eur|euro?s?|gbp|rub|rur|uah|cny|rmb|yuan|inr|kzt|aed|uzs|pln|chf|jpy|"
    r"dollars?|bucks|rubles?|roubles?|pounds?|руб\.?|р\.)"
)

# --- patterns -----------------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b")
_AT = r"(?:\s*[(\[{<]\s*at\s*[)\]}>]\s*|\s+at\s+|\s*@\s*)"
_DOT = r"(?:\s*[(\[{<]\s*dot\s*[)\]}>]\s*|\s+dot\s+|\.)"
# Patterns built from pieces, laid out by hand: one line per part of the pattern.
# fmt: off
_EMAIL_SPELLED = re.compile(
    r"(?<![\w.+-])[\w.+-]{2,64}" + _AT + r"[A-Za-z0-9-]{2,63}"
    + r"(?:" + _DOT + r"[A-Za-z0-9-]{2,63})*" + _DOT + _TLD + r"\b",
    re.I,
)
# "john at gmail", "chris@icloud": a well-known provider needs no ".com"
_EMAIL_PROVIDER = re.compile(
    r"(?<![\w.+-])([\w.+-]{2,64})(?:\s*[(\[{<]\s*at\s*[)\]}>]\s*|\s+at\s+|\s*@\s*)(?:"
    + "|".join(MAIL_PROVIDERS) + r")\b(?!\.\w)",
    re.I,
)
# Each of these is in every match of the pattern named, and starts at a character
# class instead of a look-behind tried at every position: a search for it is a
# cheap test of whether the pattern can match at all.
_EMAIL_SPELLED_HINT = re.compile(r"(?:dot\s*[)\]}>]\s*|dot\s+|\.)" + _TLD + r"\b", re.I)
_EMAIL_PROVIDER_HINT = re.compile(
    r"(?:at\s*[)\]}>]\s*|at\s+|@\s*)(?:" + "|".join(MAIL_PROVIDERS) + r")\b(?!\.\w)", re.I
)
_URL_BARE_HINT = re.compile(r"\." + _TLD + r"(?![\w\-])", re.I)
_SPELLED_MARK = re.compile(r"[(\[{<]\s*(?:at|dot)\s*[)\]}>]|\sdot\s", re.I)
_URL_SCHEME = re.compile(
    r"\b(?:https?|ftp)://[^\s<>\"']+|\b(?:viber|skype|tg|whatsapp|weixin|telegram|fb-messenger)://[^\s<>\"']+"
    r"|\bskype:[\w.\-]+(?:\?\w+)?|\bwww\.[^\s<>\"']+",
    re.I,
)
_URL_BARE = re.compile(
    r"(?<![\w@.\-/])(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+" + _TLD + r"(?![\w\-])(?:/[^\s<>\"']*)?",
    re.I,
)
_URL_SPELLED = re.compile(r"\b[a-z0-9][a-z0-9\-]{1,62}\s*(?:[(\[{<]\s*dot\s*[)\]}>]|\s+dot\s+)\s*" + _TLD + r"\b", re.I)

_HANDLE_AT = re.compile(r"(?<![\w@.+\-/])@[A-Za-z_][A-Za-z0-9_.]{2,31}(?<!\.)")
_HANDLE_NAME = r"@?[A-Za-z0-9_][A-Za-z0-9_.\-]{2,31}(?<![.\-])"
_M_STRONG = "(?:" + "|".join(re.escape(m).replace(r"\ ", r"\s?") for m in _MESSENGERS) + ")"
_M_ALL = "(?:" + "|".join(re.escape(m).replace(r"\ ", r"\s?") for m in _MESSENGERS + _MESSENGERS_WEAK) + ")"
_ID_WORD = r"(?:id|handle|username|user\s?name|user|nick(?:name)?|login|account|acc|name|contact)"
_HANDLE_RULES = [
    # "telegram: john_doe", "whatsapp - shop.x", "skype = j.smith"
    (re.compile(r"\b" + _M_STRONG + r"(?:\s*" + _ID_WORD + r")?\s*[:=\-–]\s*(" + _HANDLE_NAME + r")", re.I), False),
    # "wechat id abc123", "line id: shop01", "ig handle shop_x"
    (re.compile(r"\b" + _M_ALL + r"\s*" + _ID_WORD + r"\s*(?:is\s+)?[:=\-–]?\s*(" + _HANDLE_NAME + r")", re.I), False),
    # "my telegram is john_doe", "our instagram: shopx", "my insta shop_x"
    (re.compile(r"\b(?:my|our)\s+" + _M_ALL + r"(?:\s*" + _ID_WORD + r")?"
                + r"\s*(?:is\s+|[:=\-–]\s*)?(" + _HANDLE_NAME + r")", re.I), False),
    # "tg: @shop", "ig: shop_x" (weak names need a handle-like name)
    (re.compile(r"\b" + _M_ALL + r"\s*[:=]\s*(" + _HANDLE_NAME + r")", re.I), True),
    # "find me on telegram shop_x" (the name must look like a handle)
    (re.compile(r"\b(?:on|via|in|at|through)\s+" + _M_STRONG + r"\s*[:,\-]?\s*(" + _HANDLE_NAME + r")", re.I), True),
    # "whatsapp, name kate_store"
    (re.compile(r"\b" + _M_STRONG + r"\s*[,;]\s*(?:the\s+)?" + _ID_WORD + r"\s*(?:is\s+)?[:=\-–]?\s*(" + _HANDLE_NAME
                + r")", re.I), False),
    # "telegram john_doe" (no separator: the name must look like a handle)
    (re.compile(r"\b" + _M_STRONG + r"\s+(" + _HANDLE_NAME + r")", re.I), True),
    # "tg - johnsmith": "tg" is no everyday word
    (re.compile(r"\btg\s*[:=\-–]\s*(" + _HANDLE_NAME + r")", re.I), False),
]
# fmt: on
_NOT_HANDLES = frozenset(
    "down not blocked broken working busy off on the a an same below above here there fine ok okay available "
    "active new old disabled banned private open closed empty full slow great good bad me you him her us them "
    "it is and or but please too also only app account group chat call calls message messages now later today "
    "tomorrow instead as well number phone for with from to please thanks thank".split()
)

_NOT_MAILBOXES = _NOT_HANDLES | frozenset(
    "look looking looked check checking checked mail email e-mail inbox write send sent sign signed log logged "
    "login this that what who him her his my your our their account".split()
)
_DIGIT_WORDS = DIGIT_WORDS
_MULTIPLIERS = MULTIPLIERS

# Numbers that are something else; blanked before phone detection.
_DATE = re.compile(r"(?<![\d.\-/])(\d{1,4})([./\-])(\d{1,2})\2(\d{2,4})(?![\d]|[./\-]\d)")
_DAY_MONTH_RANGE = re.compile(r"(?<![\d.])(\d{1,2})[./](\d{1,2})\s?[\-–]\s?(\d{1,2})[./](\d{1,2})(?![\d.])")
_TIME = re.compile(r"(?<!\d)\d{1,2}[:h]\d{2}(?::\d{2})?(?:\s?[\-–]\s?\d{1,2}[:h.]\d{2})?(?!\d)", re.I)
_TIME_DOTS = re.compile(r"(?<![\d.])([01]?\d|2[0-3])\.([0-5]\d)\s?[\-–]\s?([01]?\d|2[0-3])\.([0-5]\d)(?![\d.])")
_NUM = r"\d[\d,.'\u00a0\u202f]*"
# Prices: found from the currency outwards (a scan for numbers first is slow on long texts).
_CURRENCY_TOKEN = re.compile(r"(?<![^\W\d_])" + _CURRENCY + r"(?![^\W\d_])", re.I)
_AMOUNT = r"(?:\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?:[.,]\d{1,2})?|" + _NUM + r")"
_MULT = r"(?:k|m|mln|thousand|million)"
_MONEY_AFTER = re.compile(r"\s?" + _AMOUNT + r"(?:\s?[\-–]\s?" + _AMOUNT + r")?(?:\s?" + _MULT + r"\b)?", re.I)
_MONEY_BEFORE = re.compile(_AMOUNT + r"(?:\s?[\-–]\s?" + _AMOUNT + r")?\s?(?:" + _MULT + r"\s?)?$", re.I)
# The numbers are atomic groups: a unit never starts with a digit or a separator,
# so giving digits back can never make a unit match, only cost time.
_QUANTITY = re.compile(
    r"(?<![\w.])(?:(?>\d{1,3}(?:[ ,.\u00a0]\d{3})+)|(?>\d+(?:[.,]\d+)?))"
    r"(?:\s?[\-–x×]\s?(?:(?>\d{1,3}(?:[ ,.]\d{3})+)|(?>\d+(?:[.,]\d+)?)))?"
    r"\s?" + _UNITS + r"(?!\w)",
    re.I,
)
_PERCENT = re.compile(r"\d+(?:[.,]\d+)?\s?%")
_ORDINAL_HASH = re.compile(r"(?:#|№|\bno\.|\bnr\.)\s?\d[\d\-/ ]*\d", re.I)

_RUN_SEPARATORS = " \t.-/()\u2010\u2011\u2012\u2013\u2014\u00a0_|*~\\\u00b7\u2022\u2219="
_SEP = "[" + re.escape(_RUN_SEPARATORS) + "]"
_DIGITS = re.compile(r"\d+")
_RUN = re.compile("[0-9]+(?:" + _SEP + "{1,3}[0-9]+)*")
_SIX_DIGITS = re.compile("[0-9](?:" + _SEP + "{0,3}[0-9]){5}")
# Cheap checks that say a pattern can match at all: a date needs "1.2", "1/2" or
# "1-2", a time "1:2", "1h2" or "1.2" (one search for all: _SEPARATED); an ASCII
# price needs one of these (each token of _CURRENCY contains one).
_SEPARATED = re.compile(r"\d[./\-:hH]\d")
_DATE_GATE = re.compile(r"\d[./\-]\d")
_CURRENCY_ASCII = (
    "$", "usd", "eur", "gbp", "rub", "rur", "uah", "cny", "rmb", "yuan", "inr", "kzt", "aed", "uzs", "pln", "chf",
    "jpy", "dollar", "buck", "rouble", "pound",
)  # fmt: skip
# (pattern, a cheap pattern that must match somewhere first, or None); times only
# where _SEPARATED matched
_PROTECTED: list[tuple[re.Pattern[str], re.Pattern[str] | None]] = [
    (_QUANTITY, None),
    (_PERCENT, re.compile("%")),
    (_ORDINAL_HASH, re.compile(r"[#№]|n[or]\.", re.I)),
]
_PROTECTED_SEPARATED = [
    (_TIME, re.compile(r"\d[:h]\d", re.I)),
    (_TIME_DOTS, re.compile(r"\d\.\d")),
    *_PROTECTED,
]
MAX_PRICES = 64  # currency amounts recognised per message
_BLANK = "\u00a4"  # replaces protected spans: breaks runs, never a digit or separator


_WORD = re.compile(r"[a-z]+")
_ANY_DIGIT = re.compile(r"\d")
_SPELLED_AT_WORDS = frozenset({"at", "dot"})
_MESSENGER_WORDS = frozenset(w for m in _MESSENGERS + _MESSENGERS_WEAK for w in m.split())
_SPELLED_DIGIT_WORDS = frozenset(w for w in _DIGIT_WORDS if w not in ("o", "oh"))

# --- scanning -----------------------------------------------------------------------


def scan(text: str) -> list[Finding]:
    """Every contact detail in `text`, in order, overlaps merged.

    The text is scanned as written and in the two normalised views of
    chatd.contact_normalise (digits for phones, letters for the rest), which
    undo disguises such as "５５５", "fivefive5", "j o h n @ g m a i l" or
    "hxxps://x[.]com"; findings in a view name the span of the original.
    """
    found = []
    for view, links in ((letter_view(text), True), (digit_view(text), False)):
        for f in _find(view.text, links=links, phones=not links):
            start, end = view.span(f.start, f.end)
            found.append(Finding(f.kind, start, end, text[start:end]))
    return _merge(found)


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_FB_WORD = re.compile(r"(?:^|-)fb", re.I)


def scan_id(client_id: str) -> list[Finding]:
    """`scan` for a client_id. The UUIDs the widget and the SDK generate are not
    scanned: a hex digit run inside one touches a letter or a dash, so it is never
    a phone; it has no "@", ".", ":", space or digit word; and the one messenger
    name spelled in hex, "fb", is scanned for where it can start a word: at the
    start of a group (inside one, a hex digit or letter before it is part of the
    same word). About one random UUID in 50 is scanned, not one in 10 as with "fb"
    anywhere: the full scan of a UUID costs ~50 us. (tests/functional/test_contact_filter.py
    checks this on random UUIDs.)"""
    if _UUID.fullmatch(client_id) and not _FB_WORD.search(client_id):
        return []
    return scan(client_id)


def _find(text: str, links: bool, phones: bool) -> list[Finding]:
    """The patterns on one text. Cheap substring and word checks decide which
    patterns can match at all, so a long message without, say, any messenger
    name never runs those."""
    found: list[Finding] = []
    if phones and _ANY_DIGIT.search(text):
        found.extend(_phones(text))
    if phones and _words(text) & _SPELLED_DIGIT_WORDS:
        found.extend(_spelled_phones(text))
    if not links:
        return found
    lower = text.lower()
    words = _words(text)
    has_at = "@" in text
    if has_at:
        for m in _EMAIL.finditer(text):
            found.append(Finding("email", m.start(), m.end(), m.group()))
    if (has_at or words & _SPELLED_AT_WORDS) and _EMAIL_SPELLED_HINT.search(text):
        for m in _EMAIL_SPELLED.finditer(text):
            if "@" in m.group() and _EMAIL.search(m.group()):
                continue  # a plain address, found above
            if not _SPELLED_MARK.search(m.group()) and not re.search(r"[\d._+\-]", m.group().split()[0]):
                continue  # "look at acme.com": a link (found below), not an address
            found.append(Finding("email", m.start(), m.end(), m.group()))
    if (has_at or "at" in words) and _EMAIL_PROVIDER_HINT.search(text):
        for m in _EMAIL_PROVIDER.finditer(text):
            if m.group(1).lower() not in _NOT_MAILBOXES:  # "look at gmail", "me at yahoo"
                found.append(Finding("email", m.start(), m.end(), m.group()))
    url_patterns = []
    if "://" in text or "www." in lower or "skype:" in lower:
        url_patterns.append(_URL_SCHEME)
    if "." in text and _URL_BARE_HINT.search(text):
        url_patterns.append(_URL_BARE)
    if "dot" in words:
        url_patterns.append(_URL_SPELLED)
    for rx in url_patterns:
        for m in rx.finditer(text):
            end = m.end()
            while end > m.start() and text[end - 1] in ".,;:!?)]}'\"":
                end -= 1
            found.append(Finding("url", m.start(), end, text[m.start() : end]))
    if has_at:
        for m in _HANDLE_AT.finditer(text):
            found.append(Finding("handle", m.start(), m.end(), m.group()))
    if words & _MESSENGER_WORDS:
        for rx, handle_like in _HANDLE_RULES:
            for m in rx.finditer(text):
                name = m.group(1)
                bare = name.lstrip("@")
                if bare.lower() in _NOT_HANDLES or not re.search(r"[A-Za-z_]", bare):
                    continue  # a plain word, or digits (a phone: found below)
                if handle_like and not name.startswith("@") and not re.search(r"[\d_.]", bare):
                    continue
                found.append(Finding("handle", m.start(), m.end(), m.group()))
    return found


@functools.lru_cache(maxsize=8)
def _words(text: str) -> frozenset[str]:
    """The lower-case ASCII words of `text`. Both views of a plain message are the
    message itself, so its words are found once."""
    return frozenset(_WORD.findall(text.lower()))


def _merge(found: list[Finding]) -> list[Finding]:
    found.sort(key=lambda f: (f.start, _PRIORITY[f.kind], -f.end))
    out: list[Finding] = []
    for f in found:
        if out and f.start < out[-1].end:
            last = out[-1]
            if f.end > last.end:
                out[-1] = Finding(last.kind, last.start, f.end, last.text + f.text[last.end - f.start :])
            continue
        out.append(f)
    return out


def _protect(text: str) -> str:
    """`text` with dates, times, prices, quantities and #numbers blanked out."""
    spans: list[tuple[int, int]] = []
    separated = _SEPARATED.search(text) is not None
    if separated and _DATE_GATE.search(text):
        for m in _DATE.finditer(text):
            if _is_date(m.group(1), m.group(3), m.group(4)):
                spans.append(m.span())
        for m in _DAY_MONTH_RANGE.finditer(text):
            d1, m1, d2, m2 = (int(x) for x in m.groups())
            if 1 <= d1 <= 31 and 1 <= m1 <= 12 and 1 <= d2 <= 31 and 1 <= m2 <= 12:
                spans.append(m.span())
    for rx, gate in _PROTECTED_SEPARATED if separated else _PROTECTED:
        if gate is None or gate.search(text):
            spans.extend(m.span() for m in rx.finditer(text))
    lower = text.lower()
    if text.isascii() and not any(w in lower for w in _CURRENCY_ASCII):
        return _blanked(text, spans)  # (re.I matches more than lower() outside ASCII)
    for n, m in enumerate(_CURRENCY_TOKEN.finditer(text)):
        if n == MAX_PRICES:
            break  # a price list that long: the rest stays as it is (bounded work per message)
        after = _MONEY_AFTER.match(text, m.end())
        if after:
            spans.append((m.start(), after.end()))
        head = text[max(0, m.start() - 48) : m.start()]
        if head.rstrip()[-1:].isalnum():  # a number (or 5k) right before the currency
            before = _MONEY_BEFORE.search(head)
            if before:
                spans.append((m.start() - len(head) + before.start(), m.end()))
    return _blanked(text, spans)


def _blanked(text: str, spans: list[tuple[int, int]]) -> str:
    if not spans:
        return text
    out, pos = [], 0
    for a, b in sorted(spans):
        if b <= pos:
            continue
        a = max(a, pos)
        out.append(text[pos:a])
        out.append(_BLANK * (b - a))
        pos = b
    out.append(text[pos:])
    return "".join(out)


def _is_date(a: str, b: str, c: str) -> bool:
    x, y, z = int(a), int(b), int(c)
    if len(a) == 4:  # y-m-d
        return 1900 <= x <= 2100 and 1 <= y <= 12 and 1 <= z <= 31
    if len(c) not in (2, 4) or (len(c) == 4 and not 1900 <= z <= 2100):
        return False
    return (1 <= x <= 31 and 1 <= y <= 12) or (1 <= x <= 12 and 1 <= y <= 31)


def _runs(work: str) -> Iterator[tuple[int, int]]:
    """(start, end) of maximal digit runs joined by phone separators (at most 3 in a row)."""
    n = len(work)
    for m in _RUN.finditer(work):
        start, end = m.span()
        # a leading "(" and "+" belong to the run: "+7 (916) ...", "(555) 123-4567"
        k = start
        while k > 0 and work[k - 1] == " " and start - k < 2:
            k -= 1
        if k > 0 and work[k - 1] == "(":
            start = k = k - 1
            while k > 0 and work[k - 1] == " " and start - k < 2:
                k -= 1
        if k > 0 and work[k - 1] == "+":
            start = k - 1
        if end < n and work[end] == ")" and work[start:end].count("(") > work[start:end].count(")"):
            end += 1
        yield start, end


def _phones(text: str) -> list[Finding]:
    if not _SIX_DIGITS.search(text):
        return []  # no run long enough, and blanking (below) only splits runs
    work = _protect(text)
    out = []
    for start, end in _runs(work):
        if end - start < 6:
            continue  # fewer than six digits: never a phone (_is_phone)
        run = work[start:end]
        groups = _DIGITS.findall(run)
        if _is_phone(work, text, start, end, run, groups):
            out.append(Finding("phone", start, end, text[start:end]))
    return out


def _is_phone(work: str, text: str, start: int, end: int, run: str, groups: list[str]) -> bool:
    digits = sum(len(g) for g in groups)
    plus = run.startswith("+")
    intl = plus or (run.startswith("00") and len(groups[0]) >= 3 and digits >= 10)
    if digits > 15 or digits < 6:
        return False
    # glued to a code: "SKU-1234-5678", "A12345678", "1234567-XL", "INV/2024/555123"
    before = text[start - 1] if start > 0 else " "
    before2 = text[start - 2] if start > 1 else " "
    after = text[end] if end < len(text) else " "
    after2 = text[end + 1] if end + 1 < len(text) else " "
    if before.isalnum() or before in "_#№" or (before in "-/.|*~\\" and before2.isalnum()):
        return False
    if after.isalnum() or after in "_" or (after in "-/|*~\\" and after2.isalnum()):
        return False
    head = text[max(0, start - 48) : start].split("\n")[-1]
    strong_m = _STRONG_PHONE.search(head)
    strong = strong_m is not None and not _OTHER_NUMBER.search(head[max(0, strong_m.start() - 16) :])
    weak = _WEAK_BEFORE.search(head) is not None or (strong_m is not None and not strong)
    if strong and digits >= 6:
        return True
    if plus:
        return digits >= 8
    if weak or digits < 7:
        return False  # "ref 00123456789": a reference, even with the 00 of a dialling prefix
    if intl:
        return True
    if len(groups) == 1:
        return digits in (10, 11)  # a bare 10-11 digit number: a phone more often than not
    return _phone_shaped(run, groups)


def _phone_shaped(run: str, groups: list[str]) -> bool:
    """Several digit groups that look like a phone, not like another number."""
    seps = re.findall(r"\D+", run.strip("()+ "))
    nums = [int(g) for g in groups]
    if (
        all(len(g) == 3 for g in groups[1:])
        and len(groups[0]) <= 3
        and all(s in (" ", ".", ",", "\u00a0") for s in seps)
    ):
        if len(groups) >= 3 and len(groups[0]) == 3:
            pass  # 3-3-3(-3): grouped like a phone as often as like a big number
        else:
            return False  # 1 000 000, 12.500.000
    if len(groups) == 2 and any("-" in s or "–" in s for s in seps):
        a, b = nums
        if (a % 10 == 0 and b % 10 == 0) or (1900 <= a <= 2100 and 1900 <= b <= 2100) or b <= a // 10:
            return False  # a range: 2000-3000, 2023-2024
    if len(groups) == 4 and all(s == "." for s in seps) and all(n <= 255 for n in nums):
        return False  # an IPv4 address
    if (
        len(groups) >= 3
        and all(len(g) == len(groups[0]) for g in groups)
        and all(nums[i + 1] - nums[i] in (1, -1) for i in range(len(nums) - 1))
    ):
        return False  # a list of sizes: 38 39 40 41
    if max(len(g) for g in groups) > 8:
        return False
    return True


def _spelled_phones(text: str) -> list[Finding]:
    """Digits spelled out ("five five five one two three four"), possibly mixed with numerals."""
    out = []
    tokens = list(re.finditer(r"[A-Za-z]+|\d+", text))
    i = 0
    while i < len(tokens):
        seq: list[str] = []
        spelled = 0
        first: re.Match[str] | None = None
        last: re.Match[str] | None = None
        j = i
        mult = 1
        while j < len(tokens):
            tok = tokens[j]
            word = tok.group().lower()
            if last is not None:
                gap = text[last.end() : tok.start()]
                if len(gap) > 3 or any(ch not in " ,.-/()\t" for ch in gap):
                    break
            if word in _MULTIPLIERS and j + 1 < len(tokens) and tokens[j + 1].group().lower() in _DIGIT_WORDS:
                mult = _MULTIPLIERS[word]
            elif word in _DIGIT_WORDS and (word not in ("o", "oh") or seq):
                seq.append(_DIGIT_WORDS[word] * mult)
                spelled += 1
                mult = 1
            elif word.isdigit() and (seq or (j + 1 < len(tokens) and tokens[j + 1].group().lower() in _DIGIT_WORDS)):
                seq.append(word)
            else:
                break
            first = first or tok
            last = tok
            j += 1
        digits = "".join(seq)
        if spelled >= 3 and 7 <= len(digits) <= 15 and not _counting(digits) and first and last:
            out.append(Finding("phone", first.start(), last.end(), text[first.start() : last.end()]))
            i = j
        else:
            i = max(j, i + 1) if seq else i + 1
    return out


def _counting(digits: str) -> bool:
    """1234567: counting, not a number anyone would call."""
    return all(int(digits[k + 1]) - int(digits[k]) == 1 for k in range(len(digits) - 1))
