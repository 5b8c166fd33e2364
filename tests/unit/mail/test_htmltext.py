"""chatd.mail.htmltext: an HTML body as the plain text the chat shows."""

from __future__ import annotations

from chatd.mail.htmltext import to_text
from chatd.mail.quotes import strip


def test_blocks_breaks_lists_and_entities():
    html = "<p>Hello&nbsp;there,</p><p>line one<br>line&nbsp;two</p><ul><li>bolts</li><li>nuts</li></ul><h2>End</h2>"
    assert to_text(html) == "Hello there,\n\nline one\nline two\n\n- bolts\n- nuts\nEnd"


def test_gmail_divs_and_empty_lines():
    html = '<div dir="ltr"><div>Thanks,</div><div><br></div><div>Jane</div></div>'
    assert to_text(html) == "Thanks,\n\nJane"


def test_no_markup_script_style_or_hidden_text_survives():
    html = (
        "<html><head><title>t</title><style>p {color: red}</style></head><body>"
        '<script>alert("x")</script><span style="display: none">preheader</span>'
        '<a href="https://x.test/track">Visible <i>link</i> text</a> &lt;b&gt;</body></html>'
    )
    assert to_text(html) == "Visible link text <b>"


def test_quoted_history_marked_in_html_ends_the_text():
    gmail = 'Yes.<div class="gmail_quote"><div class="gmail_attr">On Mon wrote:</div><blockquote>old</blockquote></div>'
    outlook = 'Yes.<div id="appendonsend"></div><hr><div id="divRplyFwdMsg"><b>From:</b> Berg</div><div>old</div>'
    thunderbird = 'Yes.<div class="moz-cite-prefix">On 01/12/2025 Berg wrote:</div><blockquote>old</blockquote>'
    for html in (gmail, outlook, thunderbird):
        assert to_text(html) == "Yes."
    signature = 'Yes.<br>-- <br><div class="gmail_signature"><div>Jane <b>ACME</b></div></div>'
    assert strip(to_text(signature)) == "Yes."


def test_blockquotes_are_marked_for_the_quote_stripper():
    apple = '<div>Yes.</div><div><br><blockquote type="cite">On 1 Dec 2025, Berg wrote:<br><div>old</div></blockquote>'
    text = to_text(apple + "<div>After the quote.</div>")
    assert text == "Yes.\n\n> On 1 Dec 2025, Berg wrote:\n> old\nAfter the quote."
    assert strip(text) == "Yes.\n\nAfter the quote."


def test_pre_keeps_its_layout_and_broken_markup_is_read_anyway():
    assert to_text("<pre>qty  sku\n 2   A-1</pre>") == "qty  sku\n 2   A-1"
    assert to_text("<div><p>unclosed <b>bold<div>next</span></div>") == "unclosed bold\nnext"
    assert to_text("") == ""
