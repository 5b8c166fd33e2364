"""An HTML mail body as plain text, for mails that have no text/plain part: the
chat never shows HTML. Pure, stdlib only.

Block elements and `<br>` become line breaks, list items "- ", text inside
`<blockquote>` is marked `> ` (chatd.mail.quotes removes it), scripts, styles
and hidden elements go, links keep their text. The quoted history that mail
programs mark in HTML (Gmail's `gmail_quote`, Outlook's `divRplyFwdMsg` and
`appendonsend`, Thunderbird's `moz-cite-prefix`, Yahoo's `yahoo_quoted`) ends
the text there, and a `gmail_signature` is left out.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCKS = frozenset(
    "address article aside dd div dl dt figcaption footer form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre "
    "section table tbody td th thead tr ul".split()
)
_SKIPPED = frozenset("head script style template noscript title object iframe svg".split())
_VOID = frozenset("area base br col embed hr img input link meta source track wbr".split())
_HISTORY = ("gmail_quote", "divrplyfwdmsg", "appendonsend", "moz-cite-prefix", "yahoo_quoted", "x_divrplyfwdmsg")
_LEFT_OUT = ("gmail_signature",)
_SPACE = re.compile(r"\s+")


def to_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    return parser.text()


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.line: list[str] = []
        self.stack: list[str] = []  # open elements
        self.skip_at: int | None = None  # depth of the element whose content is left out
        self.quote = 0
        self.pre = 0
        self.done = False  # quoted history began: nothing more is taken

    # --- lines ---------------------------------------------------------------------

    def _end_line(self, hard: bool = False) -> None:
        """End the line being written; a hard break (`<br>`) also ends an empty one."""
        text = "".join(self.line)
        text = text if self.pre else text.strip()
        if text or hard:
            self.lines.append(("> " * self.quote) + text if text else ("> " * self.quote).rstrip())
        self.line = []

    def text(self) -> str:
        self._end_line()
        out: list[str] = []
        for line in self.lines:
            if line.strip() or (out and out[-1].strip()):
                out.append(line.rstrip())
        return "\n".join(out).strip("\n")

    # --- parsing -------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.done:
            return
        marks = " ".join((v or "") for k, v in attrs if k in ("class", "id")).lower()
        if self.skip_at is None and any(m in marks for m in _HISTORY):
            self._end_line()
            self.done = True
            return
        if tag in _VOID:
            if self.skip_at is None and tag == "br":
                self._end_line(hard=True)
            elif self.skip_at is None and tag == "hr":
                self._end_line()
            return
        self.stack.append(tag)
        if self.skip_at is not None:
            return
        style = "".join((v or "") for k, v in attrs if k == "style").replace(" ", "").lower()
        if tag in _SKIPPED or "display:none" in style or any(m in marks for m in _LEFT_OUT):
            self.skip_at = len(self.stack)
            return
        if tag in _BLOCKS or tag == "blockquote":
            self._end_line()
        if tag == "blockquote":
            self.quote += 1
        elif tag == "pre":
            self.pre += 1
        elif tag == "li":
            self.line.append("- ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID and not self.done and self.stack and self.stack[-1] == tag:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.done or tag in _VOID or tag not in self.stack:
            return
        while self.stack:  # close what was left open inside it, as browsers do
            open_tag = self.stack.pop()
            depth = len(self.stack) + 1
            if self.skip_at is not None:
                if depth == self.skip_at:
                    self.skip_at = None
            else:
                self._close(open_tag)
            if open_tag == tag:
                break

    def _close(self, tag: str) -> None:
        if tag in _BLOCKS or tag == "blockquote":
            self._end_line()
        if tag == "blockquote":
            self.quote = max(0, self.quote - 1)
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag == "p":
            self.lines.append("")

    def handle_data(self, data: str) -> None:
        if self.done or self.skip_at is not None:
            return
        if self.pre:
            parts = data.split("\n")
            for n, part in enumerate(parts):
                if n:
                    self._end_line(hard=True)
                self.line.append(part)
            return
        text = _SPACE.sub(" ", data)
        if not self.line or "".join(self.line).endswith(" "):
            text = text.lstrip()
        self.line.append(text)
