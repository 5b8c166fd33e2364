"""What a person wrote in a reply, without the history their mail program quoted
and without their signature. Pure functions of the text, no I/O.

Removed: lines quoted with `>`; an attribution ("On <date>, <name> wrote:", and
its German, French, Spanish, Italian, Dutch, Portuguese, Scandinavian and Polish
forms, also wrapped over up to three lines) with the quote after it; everything
from an "-----Original Message-----" line, an Outlook header block ("From: ...",
then "Sent:"/"Date:", "To:", "Subject:" ...), a line holding `REPLY_ABOVE`, or a
`-- ` signature delimiter on; mobile and webmail taglines ("Sent from my
iPhone", "Get Outlook for Android") and separators left at the end.

A reply written below the quote (bottom-posting) keeps what follows the quote
when the quote is marked with `>`; history that is not marked (Outlook's) is cut
with everything after it.
"""

from __future__ import annotations

import re

# A line holding this (any case) ends the reply: outbound mail may put it above its text.
REPLY_ABOVE = "reply above this line"

_VERBS = r"wrote|schrieb|a\s+écrit|escribió|ha\s+scritto|schreef|escreveu|skrev|napisał|napisal|kirjoitti"
_OPENERS = r"on|am|le|el|il|op|em|den|d\.|w\s+dniu|dne"
# "On Mon, 1 Jan 2024 at 10:00, Jane <j@x> wrote:", "Am 01.01.2024 um 10:00 schrieb Jane <j@x>:"
_ATTRIBUTION = re.compile(rf"^(?:{_OPENERS})\b.{{0,300}}?\b(?:{_VERBS})\b.{{0,200}}?:\s*$", re.I | re.S)
_BARE_ATTRIBUTION = re.compile(rf"^.{{1,200}}?\b(?:{_VERBS})\s*:\s*$", re.I | re.S)  # "Jane Doe wrote:"
_OPENER = re.compile(rf"^(?:{_OPENERS})\b", re.I)
_ORIGINAL = re.compile(
    r"^-{2,}\s*(?:original message|ursprüngliche nachricht|message d'origine|mensaje original|"
    r"messaggio originale|oorspronkelijk bericht|mensagem original|originalmeddelande|"
    r"opprinnelig melding|oprindelig meddelelse|wiadomość oryginalna)\s*-{2,}$",
    re.I,
)
_FROM = re.compile(r"^\*?(?:from|von|de|da|van|från|fra|od|lähettäjä)\s*:\*?\s*\S", re.I)
_HEADER = re.compile(
    r"^\*?(?:sent|date|to|cc|subject|gesendet|datum|an|betreff|envoyé|date|à|objet|enviado|fecha|para|asunto|"
    r"inviato|data|a|oggetto|verzonden|aan|onderwerp|skickat|till|ämne|sendt|til|emne|wysłano|do|temat)\s*:",
    re.I,
)
_SIGNATURE = re.compile(r"^--\s?$")  # "-- " (RFC 3676), or "--" where a program dropped the space
_TAGLINE = re.compile(
    r"^(?:sent from my \w[\w ]{0,40}|sent from (?:mail|outlook|yahoo mail|gmail|my mobile|proton mail)\b.{0,60}|"
    r"get outlook for \w[\w ]{0,20}|sent with proton ?mail\b.{0,60}|sent via \w[\w .]{0,40}|"
    r"von meinem \w[\w ]{0,40} gesendet|envoyé de mon \w[\w ]{0,40}|enviado desde mi \w[\w ]{0,40}|"
    r"inviato da \w[\w ]{0,40}|verzonden vanaf mijn \w[\w ]{0,40}|skickat från min \w[\w ]{0,40})\.?$",
    re.I,
)
_SEPARATOR = re.compile(r"^(?:_{4,}|-{4,}|={4,}|\*{4,})$")


def strip(text: str) -> str:
    """The reply's own text: see the module docstring for what goes."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if _ends_reply(lines, i):
            break
        span, dated = _attribution(lines, i)
        if span:
            after = _next_filled(lines, i + span)
            if after is not None and lines[after].lstrip().startswith(">"):
                i += span  # the attribution goes; its quote goes line by line, what follows it stays
                continue
            if dated or after is None:
                break  # history without `>` marks: everything from here on
        if not s.startswith(">"):
            out.append(line.rstrip())
        i += 1
    return _tidy(out)


def _ends_reply(lines: list[str], i: int) -> bool:
    line = lines[i]
    s = line.strip()
    if REPLY_ABOVE in s.lower() or _SIGNATURE.match(line) or _ORIGINAL.match(s):
        return True
    return bool(_FROM.match(s)) and _outlook_headers(lines, i + 1) >= 2


def _outlook_headers(lines: list[str], start: int) -> int:
    """How many of the next few filled lines are header lines (Sent:, To:, Subject: ...)."""
    n = seen = 0
    for line in lines[start:]:
        s = line.strip()
        if not s:
            continue
        seen += 1
        if _HEADER.match(s):
            n += 1
        if seen == 5:
            break
    return n


def _attribution(lines: list[str], i: int) -> tuple[int, bool]:
    """(lines the attribution at `i` spans, or 0; whether it has an opener and a date or time)."""
    first = lines[i].strip()
    if not first or first.startswith(">"):
        return 0, False
    joined = ""
    for span in range(1, 4):
        if i + span > len(lines):
            break
        part = lines[i + span - 1].strip()
        if not part:
            break
        joined = f"{joined} {part}".strip()
        if _ATTRIBUTION.match(joined):
            return span, any(c.isdigit() for c in joined)
        if span == 1 and _BARE_ATTRIBUTION.match(joined):
            return 1, False
        if not _OPENER.match(first):
            break
    return 0, False


def _next_filled(lines: list[str], start: int) -> int | None:
    for j in range(start, len(lines)):
        if lines[j].strip():
            return j
    return None


def _tidy(out: list[str]) -> str:
    """Taglines, separators and blank lines off the end; blank runs down to one."""
    while out and (not out[-1].strip() or _TAGLINE.match(out[-1].strip()) or _SEPARATOR.match(out[-1].strip())):
        out.pop()
    tidy: list[str] = []
    for line in out:
        if line.strip() or (tidy and tidy[-1]):
            tidy.append(line if line.strip() else "")
    return "\n".join(tidy).strip("\n")
