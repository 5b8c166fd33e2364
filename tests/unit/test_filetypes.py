"""chatd.filetypes without the attachment service: the allow-list, by content only."""

from __future__ import annotations

import io
import struct
import zipfile

import pytest

from chatd.filetypes import HEAD_BYTES, TextCheck, identify, zip_directory_fits
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


def _corrupt_deflate() -> bytes:
    """An OpenDocument-looking zip whose `mimetype` entry's deflate data is broken."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.text" * 10)
    data = bytearray(buf.getvalue())
    data[38:44] = b"\xff" * 6  # after the 30-byte local header and the 8-byte name
    return bytes(data)


def _zip_directory(entries: int, claimed: int) -> bytes:
    """A zip of `entries` one-letter entries whose end record claims `claimed`: small
    on disk, and ZipFile builds an object for each entry before any count is checked."""
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, 1, 0) + b"a"
    one = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0) + b"a"
    directory = one * entries
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, claimed, claimed, len(directory), len(local), 0)
    return local + directory + end


def _ole_fat_bomb() -> bytes:
    """A 24 KB compound file claiming 4,096 FAT sectors of 4 KiB (all the same one):
    read whole, its FAT is 4 million entries."""
    size = 4096
    header = bytearray(size)
    header[0:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    struct.pack_into("<H", header, 0x1E, 12)
    struct.pack_into("<II", header, 0x2C, 4096, 0)
    struct.pack_into("<II", header, 0x44, 1, 4)
    fat = struct.pack("<1024I", *([0xFFFFFFF0] * 1024))
    difat = b"".join(struct.pack("<1024I", *([0] * 1023 + [k + 2 if k < 3 else 0xFFFFFFFE])) for k in range(4))
    return bytes(header) + fat + difat


@pytest.mark.parametrize(
    "data",
    [_corrupt_deflate(), _zip_directory(30_000, 30_000), _zip_directory(30_000, 1), _ole_fat_bomb()],
    ids=["corrupt-deflate", "zip-30k-entries", "zip-entries-not-counted", "ole-fat-bomb"],
)
def test_containers_made_to_break_or_to_bloat_the_reader_have_no_type(tmp_path, data):
    """No exception (an upload would answer 500) and nothing read in full."""
    assert _identify(tmp_path, data) is None


def test_a_zip_directory_is_bounded_before_zipfile_reads_it(tmp_path):
    path = tmp_path / "f"
    for data, fits in ((_zip_directory(30_000, 30_000), False), (_zip_directory(30_000, 1), False)):
        path.write_bytes(data)
        assert zip_directory_fits(path) is fits
    path.write_bytes(samples.docx())
    assert zip_directory_fits(path) is True
