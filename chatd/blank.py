"""Whether a text shows nothing: a message of zero-width spaces, joiners, BOMs,
bidi marks or Hangul fillers renders as an empty bubble and is refused like "".
Imports no chatd module."""

from __future__ import annotations

import unicodedata

# controls, format characters (ZWSP, ZWJ, BOM, bidi marks and isolates, soft
# hyphen, tags) and separators
_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
# default-ignorable or blank characters of other categories
_BLANK = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180e\u180f\u2800\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)


def is_blank(text: str) -> bool:
    """True when no character of `text` is visible (stops at the first that is)."""
    category = unicodedata.category
    return all(c in _BLANK or c.isspace() or category(c) in _CATEGORIES for c in text)
