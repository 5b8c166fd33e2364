"""chatd.mail.quotes: what a person wrote, without quoted history and signatures,
over the shapes common mail programs send."""

from __future__ import annotations

import pytest

from chatd.mail.quotes import REPLY_ABOVE, strip

GMAIL = (
    "Friday works.\n\nOn Mon, 1 Dec 2025 at 10:00, Berg Tools <reply+abc@reply.shop.test> wrote:\n\n"
    "> When can we ship?\n> \n> Berg\n"
)
GMAIL_WRAPPED = (
    "Friday works.\n\nOn Mon, Dec 1, 2025 at 10:00 AM Berg Tools <\nreply+abc@reply.shop.test> wrote:\n\n"
    "> When can we ship?\n"
)
APPLE = "Friday works.\n\nSent from my iPhone\n\n> On 1 Dec 2025, at 10:00, Berg <x@y.test> wrote:\n>\n> hi\n"
OUTLOOK = (
    "Friday works.\n\nGet Outlook for Android\n________________________________\n"
    "From: Berg Tools <reply+abc@reply.shop.test>\nSent: Monday, December 1, 2025 10:00 AM\n"
    "To: Jane\nSubject: RE: PO-7\n\nWhen can we ship?\n"
)
OUTLOOK_BOLD = "Friday works.\n\n*From:* Berg Tools\n*Sent:* Monday\n*To:* Jane\n*Subject:* PO-7\n\nold"
ORIGINAL = "Friday works.\n\n-----Original Message-----\nFrom: Berg\nWhen can we ship?"
SIGNATURE = "Friday works.\n\n-- \nJane Buyer\nPurchasing, ACME Ltd\n"
SIGNATURE_NO_SPACE = "Friday works.\n--\nJane\n"
GERMAN = "Freitag passt.\n\nAm 01.12.2025 um 10:00 schrieb Berg Tools <x@y.test>:\n\n> Wann?\n"
FRENCH = "Vendredi.\n\nLe 1 déc. 2025 à 10:00, Berg <x@y.test> a écrit :\n> Quand ?\n"
SPANISH = "El viernes.\n\nEl lun, 1 dic 2025 a las 10:00, Berg (<x@y.test>) escribió:\n> ¿Cuándo?\n"
DUTCH = "Vrijdag.\n\nOp 1 dec. 2025 om 10:00 schreef Berg <x@y.test>:\n> Wanneer?\n"
UNMARKED = "Friday works.\n\nOn Mon, 1 Dec 2025 at 10:00, Berg wrote:\nWhen can we ship?\nBerg"
MARKER = f"Friday works.\n\n-- {REPLY_ABOVE.capitalize()} --\nBerg Tools wrote on the order PO-7:\nWhen?"


@pytest.mark.parametrize(
    "mail",
    [GMAIL, GMAIL_WRAPPED, APPLE, OUTLOOK, OUTLOOK_BOLD, ORIGINAL, SIGNATURE, SIGNATURE_NO_SPACE, UNMARKED, MARKER],
    ids="gmail gmail-wrapped apple outlook outlook-bold original signature signature-no-space unmarked marker".split(),
)
def test_history_and_signature_go(mail):
    assert strip(mail) == "Friday works."


@pytest.mark.parametrize(
    "mail,text",
    [(GERMAN, "Freitag passt."), (FRENCH, "Vendredi."), (SPANISH, "El viernes."), (DUTCH, "Vrijdag.")],
    ids=["de", "fr", "es", "nl"],
)
def test_attributions_in_other_languages(mail, text):
    assert strip(mail) == text


def test_a_reply_below_the_quote_is_kept():
    bottom = "On Mon, 1 Dec 2025, Berg wrote:\n> When can we ship?\n\nOn Friday.\n\n-- \nJane"
    assert strip(bottom) == "On Friday."
    interleaved = "> When?\nFriday.\n> Where?\nThe back door.\n"
    assert strip(interleaved) == "Friday.\nThe back door."


def test_own_words_that_look_like_an_attribution_stay():
    text = "On Monday I wrote: the pallets are ready.\nThey still are."
    assert strip(text) == text
    assert strip("On Monday I wrote:\nthe pallets are ready") == "On Monday I wrote:\nthe pallets are ready"
    assert strip("From: our warehouse in Leeds.\nThanks") == "From: our warehouse in Leeds.\nThanks"
    assert strip("Sent from my iPhone is all I know.\nok") == "Sent from my iPhone is all I know.\nok"


def test_layout_is_tidied_not_rewritten():
    assert strip("\r\n\r\nHello,\r\n\r\n\r\n\r\nSee you   \r\n\r\n") == "Hello,\n\nSee you"
    assert strip("  indented line\n- a list\n") == "  indented line\n- a list"


def test_only_quotes_leave_nothing():
    assert strip("> a\n> b\n") == ""
    assert strip(GMAIL.split("Friday works.")[1]) == ""
    assert strip("") == ""
