"""Undo the disguises people put on contact details, so the filter's patterns see them plain.

`views(text)` gives two rewritten copies of a message, each character knowing
the span of the original it came from (so a finding in a view masks the right
part of the original):

* the *digit view*, for phone numbers: every Unicode decimal digit and
  full-width form as ASCII, letters that stand in for digits inside numbers
  ("O7OO", "555-l23"), digit words glued or mixed with numerals
  ("fivefivefive 1234", "555 one two three 4567") as numerals;
* the *letter view*, for e-mail addresses, links and handles: NFKC, invisible
  characters dropped, look-alike Cyrillic and Greek letters inside Latin
  words, defanged links ("hxxps", "[.]", "(.)"), letters spaced out
  ("j o h n @ g m a i l"), spaces around ".", "@" and "/", split or
  misspelt messenger names ("tele gram", "W-h-a-t-s-A-p-p"), digits in
  domain names (".c0m", "gmai1").

Pure functions, no I/O; the work is linear in the text.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import cast

# Vocabulary tables, packed by hand (the formatter would put each word on a line of its own).
# fmt: off
DIGIT_WORDS = {
    "zero": "0", "oh": "0", "o": "0", "nought": "0", "nil": "0", "one": "1", "two": "2", "three": "3",
    "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}
MULTIPLIERS = {"double": 2, "triple": 3}

# well-known mail providers: "john at gmail" is an address even without ".com"
MAIL_PROVIDERS = (
    "gmail", "googlemail", "yahoo", "ymail", "hotmail", "outlook", "icloud", "aol", "yandex", "protonmail",
    "proton", "gmx", "qq", "163", "126", "sina", "rambler", "zoho", "fastmail", "tutanota", "naver",
    "daum", "hanmail", "rediffmail", "libero", "mailru",
)
# canonical messenger name -> its misspellings and other scripts
MESSENGER_VARIANTS = {
    "telegram": ("teleqram", "tlgrm", "telega", "телеграм", "телеграмм", "телега"),
    "whatsapp": ("whatsap", "watsapp", "watsap", "wh4tsapp", "ватсап", "вотсап", "вацап"),
    "viber": ("вайбер",),
    "wechat": ("вичат",),
    "skype": ("скайп",),
    "instagram": ("инстаграм", "инста"),
}
# split forms are joined back ("tele gram", "s.k.y.p.e"); short everyday words are left out
_SPLIT_MESSENGERS = ("telegram", "whatsapp", "viber", "wechat", "skype", "instagram", "insta", "discord",
                     "snapchat", "facebook", "signal", "tg")

_TLD_WORDS = ("com", "net", "org", "info", "biz", "io", "co", "me", "ru", "de", "uk", "cn", "in")

_CONFUSABLES = str.maketrans({
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
    "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ɡ": "g", "ӏ": "l",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
    "У": "Y", "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S",
    "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
})
# fmt: on
_LEET = str.maketrans({"0": "o", "1": "l", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a"})
_LOOKALIKE_DIGITS = str.maketrans({"O": "0", "o": "0", "I": "1", "l": "1", "i": "1", "S": "5"})
_DOTS = str.maketrans({"。": ".", "｡": ".", "·": "."})


class Mapped:
    """A string derived from an original; `origin[i]` is the original span of
    character i (None: the original itself, unchanged)."""

    __slots__ = ("text", "origin")

    def __init__(self, text: str, origin: list[tuple[int, int]] | None = None) -> None:
        self.text = text
        self.origin = origin

    def _at(self, i: int) -> tuple[int, int]:
        return (i, i + 1) if self.origin is None else self.origin[i]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of view characters start..end."""
        return self._at(start)[0], self._at(end - 1)[1]

    def _origins(self, start: int, end: int) -> list[tuple[int, int]]:
        if self.origin is None:
            return [(i, i + 1) for i in range(start, end)]
        return self.origin[start:end]

    def replace(self, spans: Iterable[tuple[int, int, str]]) -> Mapped:
        """(start, end, new text) for ordered, disjoint spans; new characters come from the whole span."""
        text = self.text
        out: list[str] = []
        org: list[tuple[int, int]] = []
        pos = 0
        for start, end, new in spans:
            out.append(text[pos:start])
            org.extend(self._origins(pos, start))
            out.append(new)
            org.extend([self.span(start, end)] * len(new))
            pos = end
        if not out:
            return self
        out.append(text[pos:])
        org.extend(self._origins(pos, len(text)))
        return Mapped("".join(out), org)

    def sub(self, rx: re.Pattern[str], repl: str | Callable[[re.Match[str]], str]) -> Mapped:
        """Like `rx.sub(repl, text)`."""
        spans: list[tuple[int, int, str]] = []
        for m in rx.finditer(self.text):
            new = repl(m) if callable(repl) else m.expand(repl)
            if new != m.group() and m.end() > m.start():
                spans.append((m.start(), m.end(), new))
        return self.replace(spans)


# --- both views -------------------------------------------------------------------------


_MARKS = frozenset(("Mn", "Me"))  # combining marks: a keycap's U+20E3, underline, strike-through


def _base(text: str) -> Mapped:
    """NFKC, every decimal digit as ASCII, invisible (format) characters and combining
    marks dropped: "5\ufe0f\u20e3" (a keycap) is a 5, "b\u0332o\u0332b\u0332" is "bob".
    A mark belongs to the character before it, so a finding masks its marks too."""
    if text.isascii():
        return Mapped(text)
    out: list[str] = []
    org: list[tuple[int, int]] = []
    for i, c in enumerate(text):
        if c.isascii():
            new = c
        else:
            cat = unicodedata.category(c)
            if cat in _MARKS:
                if org and org[-1][1] == i:  # directly after what it marks
                    org[-1] = (org[-1][0], i + 1)
                continue
            if cat == "Cf":
                continue
            new = str(unicodedata.decimal(c)) if cat == "Nd" else unicodedata.normalize("NFKC", c)
        out.append(new)
        org.extend([(i, i + 1)] * len(new))
    return Mapped("".join(out), org)


# Words, then a test of each: one pattern for "a word with a letter of another script"
# ([^\W_]*[^\W\d_a-zA-Z][^\W_]*) backtracks over every start in a long Latin word, a
# cost that grows with the square of its length (a 16,000-letter word took 2 s).
_WORD = re.compile(r"[^\W_]+")
_OTHER_SCRIPT_LETTER = re.compile(r"[^\W\d_a-zA-Z]")
_LATIN_OR_DIGIT = re.compile(r"[a-zA-Z0-9]")


def _unconfuse(view: Mapped) -> Mapped:
    """Look-alike letters of other scripts inside words that also have Latin letters or digits."""
    if view.text.isascii():
        return view

    def fix(m: re.Match[str]) -> str:
        word: str = m.group()
        if word.isascii() or not _OTHER_SCRIPT_LETTER.search(word) or not _LATIN_OR_DIGIT.search(word):
            return word
        return word.translate(_CONFUSABLES)

    return view.sub(_WORD, fix)


# --- the digit view ---------------------------------------------------------------------

_LOOKALIKE_TOKEN = re.compile(r"(?<![^\W_])(?=[OoIliS]*\d)[0-9OoIliS]+(?![^\W_])")
# a token it changes holds a look-alike and a digit, so one next to the other (after
# _base every digit is ASCII): a search that starts at a character class, not at
# every position as the token's look-behind does
_LOOKALIKE_HINT = re.compile(r"[0-9][OoIliS]|[OoIliS][0-9]")
_TOKEN = re.compile(r"[^\W_]+")
_ANY_DIGIT = re.compile(r"\d")
_GAP_OK = frozenset(" ,.-/()\t")
_PIECES = sorted(list(DIGIT_WORDS) + list(MULTIPLIERS), key=len, reverse=True)
_DIGIT_WORD_RX = re.compile("|".join(_PIECES))
_ALL_PIECES = re.compile("(?:" + "|".join(_PIECES) + ")+")
_SPELLED_HINT = re.compile("zero|one|two|three|four|five|six|seven|eight|nine|nought|nil", re.I)
_SPELLED_HINT_LOWER = re.compile(_SPELLED_HINT.pattern)  # on an ASCII text lowered: the same hits, 5x faster
# where numerals are, a run needs two digit words (glued "doublefive" too) or a
# look-alike word ("0 7 9 I I") after a gap: what either needs, cheaply
_COUNTED_PIECES = tuple(p for p in _PIECES if p not in ("o", "oh"))
_LOOKALIKE_AFTER = re.compile(r"[ ,.\-/()\t][OoIl]+(?![^\W_])")


@functools.lru_cache(maxsize=4096)
def _word_digits(word: str) -> tuple[str, ...] | None:
    """'fivefivefive' -> ('5', '5', '5'); None unless the word is nothing but digit words."""
    word = word.lower()
    if not _ALL_PIECES.fullmatch(word):
        return None
    best: dict[int, list[str] | None] = {len(word): []}  # decomposition of word[i:]
    for i in range(len(word) - 1, -1, -1):
        best[i] = None
        for piece in _PIECES:
            rest = best[i + len(piece)] if word.startswith(piece, i) else None
            if rest is None:
                continue
            if piece in MULTIPLIERS:
                if rest:
                    best[i] = [rest[0] * MULTIPLIERS[piece]] + rest[1:]
                    break
                continue
            best[i] = [DIGIT_WORDS[piece]] + rest
            break
    return tuple(best[0]) if best[0] else None


def _spelled_runs(view: Mapped) -> Mapped:
    """Runs of digit words and numerals ("five5five 1234", "nine one seven, five five five")
    as numerals, one group per word, when at least two digit words are in the run."""
    text = view.text
    if not _ANY_DIGIT.search(text):
        hits = _SPELLED_HINT_LOWER.finditer(text.lower()) if text.isascii() else _SPELLED_HINT.finditer(text)
        if len(list(itertools.islice(hits, 2))) < 2:
            return view  # neither numerals nor two digit words: nothing to read
    elif sum(map(text.lower().count, _COUNTED_PIECES)) < 2 and not _LOOKALIKE_AFTER.search(text):
        return view  # a run needs two digit words or a look-alike after a numeral
    tokens = list(_TOKEN.finditer(text))
    spans: list[tuple[int, int, str]] = []
    i = 0
    while i < len(tokens):
        groups: list[str] = []
        spelled = lookalikes = 0
        mult = 1
        first: re.Match[str] | None = None
        last: re.Match[str] | None = None
        j = i
        while j < len(tokens):
            tok = tokens[j]
            if last is not None:
                gap = text[last.end() : tok.start()]
                if len(gap) > 3 or any(c not in _GAP_OK for c in gap):
                    break
            word = tok.group()
            if word.isdigit():
                groups.append(word)
            elif word.lower() in MULTIPLIERS:
                mult = MULTIPLIERS[word.lower()]  # "double five": applies to the next digit word
            else:
                pieces = _word_digits(word) if word.isascii() else None
                if pieces is None:
                    if groups and set(word) <= set("OoIl"):
                        groups.append(word.translate(_LOOKALIKE_DIGITS))  # "0 7 9 I I 2 3"
                        lookalikes += 1
                    else:
                        break
                else:
                    groups.append(pieces[0] * mult)
                    groups.extend(pieces[1:])
                    mult = 1
                    spelled += sum(1 for w in _DIGIT_WORD_RX.findall(word.lower()) if w not in ("o", "oh"))
            first = first or tok
            last = tok
            j += 1
        if (spelled >= 2 or lookalikes) and sum(len(g) for g in groups) >= 6 and first and last:
            spans.append((first.start(), last.end(), " ".join(groups)))
        # a run that does not qualify has no sub-run that does
        i = max(j, i + 1)
    return view.replace(spans)


def digit_view(text: str) -> Mapped:
    view = _base(text)
    if _LOOKALIKE_HINT.search(view.text):
        view = view.sub(_LOOKALIKE_TOKEN, lambda m: m.group().translate(_LOOKALIKE_DIGITS))
    return _spelled_runs(view)


# --- the letter view --------------------------------------------------------------------

# `(?<!\s)`: a match starts where a run of white space does, as the leftmost match
# would anyway; without it each space of a long run starts a scan of the rest.
_DEFANG = [
    (re.compile(r"\bh(?:xx|\*\*|__)p(s?)(?=\s*[:\[(]|\b)", re.I), r"http\1"),
    (re.compile(r"(?<!\s)\s*[\[({<]\s*\.\s*[\])}>]\s*"), "."),
    (re.compile(r"(?<!\s)\s*[\[({<]\s*:\s*[\])}>]\s*"), ":"),
    (re.compile(r"(?<!\s)\s*[\[({<]\s*/\s*[\])}>]\s*"), "/"),
    (re.compile(r"(?<!\s)\s*[\[({<]\s*@\s*[\])}>]\s*"), "@"),
]
# three or more single characters separated by single spaces: "j o h n", "h t t p s : / /"
_SPACED = re.compile(r"(?<!\S)(?:\S ){2,}\S(?!\w)")
_SPACED_HINT = re.compile(r" \S \S")  # in every match; starts at a space, not at every position
_PROVIDER = "(?:" + "|".join(MAIL_PROVIDERS) + ")"
# "peter @ outlook.com", "john@ gmail": joined; "follow @shop.studio" (space before only) is a handle
_AROUND_AT = re.compile(r"(?<=[\w.])(?:[ \t]+@|@)[ \t]+(?=[\w-]+\.[a-z]|" + _PROVIDER + r"\b)", re.I)
_AFTER_AT = re.compile(r"(?<![\w.])@[ \t]+(?=\w)")
_AROUND_DOT = re.compile(r"(?<=\w)[ \t]+([./])[ \t]+(?=\w)")  # one side only is prose: "the .com", "ok. me"
# "@ shopx" is a handle only where a messenger or handle is talked about ("made @ home" is not)
_HANDLE_TALK = re.compile(r"\b(?:" + "|".join(_SPLIT_MESSENGERS) + r"|handle|username|nick|ig|dm)\b", re.I)


def _split_name(name: str) -> str:
    return r"\b" + r"[\s.\-_*'’]{0,2}".join(re.escape(c) for c in name) + r"\b"


_SPLIT = re.compile("|".join(f"(?P<m{i}>{_split_name(n)})" for i, n in enumerate(_SPLIT_MESSENGERS)), re.I)
_VARIANTS = {v: canon for canon, vs in MESSENGER_VARIANTS.items() for v in vs}
_VARIANT = re.compile(
    r"(?<![^\W_])(?:" + "|".join(sorted(map(re.escape, _VARIANTS), key=len, reverse=True)) + r")(?![^\W_])", re.I
)
_LEET_WORDS = frozenset(_TLD_WORDS) | frozenset(p for p in MAIL_PROVIDERS if not p.isdigit())
_LEET_TOKEN = re.compile(r"(?<=[.@ ])(?=[a-z@]*\d)[a-z0-9@]{2,12}(?![\w])", re.I)
# in every match that changes something: after its look-behind, a letter (or "@") and
# a digit, in either order (an all-digit token stays as it is)
_LEET_HINT = re.compile(r"[.@ ](?:[a-z@]+\d|\d+[a-z@])", re.I)


def _leet(m: re.Match[str]) -> str:
    word: str = m.group()
    plain = word.lower().translate(_LEET)
    return plain if plain in _LEET_WORDS and not word.isdigit() else word


_SQUEEZE = str.maketrans("", "", " \t\n.-_*'’")
_SQUEEZE_ASCII = b" \t\n.-_*'"  # the same for an ASCII text, as bytes: a table lookup, not a dict's
_ASCII_VARIANTS = tuple(v for v in _VARIANTS if v.isascii())  # all an ASCII text can hold
_DEFANG_HINT = re.compile(r"[\[({<]|h(?:xx|\*\*|__)p", re.I)


def letter_view(text: str) -> Mapped:
    """Each step runs only where a cheap check says it can change something:
    most messages are plain and cost a few substring checks."""
    view = _base(text)
    if not view.text.isascii():
        view = _unconfuse(view).sub(re.compile("[。｡]"), ".")
    if _DEFANG_HINT.search(view.text):
        for rx, repl in _DEFANG:
            view = view.sub(rx, repl)
    if _SPACED_HINT.search(view.text):
        view = view.sub(_SPACED, lambda m: m.group().replace(" ", ""))
    has_at = "@" in view.text
    if has_at:
        view = view.sub(_AROUND_AT, "@")
    if " ." in view.text or " /" in view.text:
        view = view.sub(_AROUND_DOT, r"\1")
    lower = view.text.lower()
    is_ascii = lower.isascii()
    squeezed = lower.encode().translate(None, _SQUEEZE_ASCII).decode() if is_ascii else lower.translate(_SQUEEZE)
    if any(name in squeezed for name in _SPLIT_MESSENGERS):
        # every alternative of _SPLIT is a named group, so `lastgroup` is set
        view = view.sub(_SPLIT, lambda m: _SPLIT_MESSENGERS[int(cast(str, m.lastgroup)[1:])])
    if any(v in lower for v in (_ASCII_VARIANTS if is_ascii else _VARIANTS)):
        view = view.sub(_VARIANT, lambda m: _VARIANTS[m.group().lower()])
    if has_at and _HANDLE_TALK.search(view.text):
        view = view.sub(_AFTER_AT, "@")
    if _ANY_DIGIT.search(view.text) and _LEET_HINT.search(view.text):
        view = view.sub(_LEET_TOKEN, _leet)
    return view
