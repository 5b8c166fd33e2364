"""chatd.filetypes without the attachment service: the allow-list, by content only."""

from __future__ import annotations

import pytest

from chatd.filetypes import HEAD_BYTES, TextCheck, identify
from tests.support import samples


def _identify(tmp_path, data: bytes) -> str | None:
    path = tmp_path / "upload.part"  # no extension: the name is never looked at
    path.write_bytes(data)
    check = TextCheck()
    for i in range(0, len(data), 7):  # fed in small chunks, as an upload streams
        check.feed(data[i : i + 7])
    check.feed(b"", final=True)
    return identify(path, data[:HEAD_BYTES], check.ok)


@pytest.mark.parametrize(
    "data, mime",
    [
        (samples.png(), "image/png"),
        (samples.jpeg(), "image/jpeg"),
        (samples.gif(), "image/gif"),
        (samples.webp(), "image/webp"),
        (samples.pdf(), "application/pdf"),
        (samples.docx(), "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        (samples.xlsx(), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (samples.odt(), "application/vnd.oasis.opendocument.text"),
        (samples.ole(), "application/msword"),
        (samples.text(), "text/plain"),
        ("Grüße, 東京 ✓\n".encode(), "text/plain"),  # multi-byte characters split across chunks
    ],
    ids=["png", "jpeg", "gif", "webp", "pdf", "docx", "xlsx", "odt", "doc", "text", "utf8"],
)
def test_allowed_types_are_named_by_content(tmp_path, data, mime):
    assert _identify(tmp_path, data) == mime


@pytest.mark.parametrize(
    "data",
    [
        samples.exe(),
        samples.elf(),
        b"#!/bin/sh\nrm -rf /\n",
        samples.plain_zip(),
        samples.docx(macros=True),
        samples.ole("WordDocument", ("Macros",)),
        samples.ole("SummaryInformation"),
        b"",
        b"abc\x00def",
        b"\xff\xfe not utf-8",
    ],
    ids=["exe", "elf", "script", "zip", "docm", "doc-macros", "msi", "empty", "nul", "latin"],
)
def test_refused_content_has_no_type(tmp_path, data):
    assert _identify(tmp_path, data) is None
