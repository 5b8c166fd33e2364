"""Small real files of each allowed (and refused) type, made in memory for the tests."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib


def png(width: int = 1, height: int = 1) -> bytes:
    """A valid RGB PNG: one red pixel, or a red-to-blue gradient of the given size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    def row(y: int) -> bytes:
        return b"\x00" + b"".join(bytes((255 - 255 * x // width, 40, 255 * y // height)) for x in range(width))

    raw = b"\x00\xff\x00\x00" if (width, height) == (1, 1) else b"".join(row(y) for y in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def jpeg() -> bytes:
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64 + b"\xff\xd9"


def gif() -> bytes:
    return (
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00"
        b"\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
    )


def webp() -> bytes:
    body = b"WEBPVP8 " + struct.pack("<I", 10) + b"\x00" * 10
    return b"RIFF" + struct.pack("<I", len(body)) + body


def pdf(size: int = 0) -> bytes:
    head = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n"
    tail = b"\n%%EOF\n"
    return head + b"0" * max(0, size - len(head) - len(tail)) + tail


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def docx(macros: bool = False) -> bytes:
    entries = {
        "[Content_Types].xml": b"<?xml version='1.0'?><Types/>",
        "_rels/.rels": b"<Relationships/>",
        "word/document.xml": b"<w:document/>",
    }
    if macros:
        entries["word/vbaProject.bin"] = b"\xd0\xcf\x11\xe0 macro code"
    return _zip(entries)


def xlsx() -> bytes:
    return _zip({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>"})


def odt() -> bytes:
    return _zip({"mimetype": b"application/vnd.oasis.opendocument.text", "content.xml": b"<office/>"})


def plain_zip() -> bytes:
    return _zip({"payload.exe": b"MZ\x90\x00", "readme.txt": b"hi"})


def ole(stream: str = "WordDocument", extra: tuple[str, ...] = ()) -> bytes:
    """A minimal compound file (legacy Office container) whose directory holds `stream`."""
    sector = 512
    header = bytearray(sector)
    header[0:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    struct.pack_into("<HHHHH", header, 0x18, 0x3E, 3, 0xFFFE, 9, 6)
    struct.pack_into("<IIII", header, 0x2C, 1, 1, 0, 4096)  # 1 FAT sector, directory at sector 1
    struct.pack_into("<III", header, 0x3C, 0xFFFFFFFE, 0, 0xFFFFFFFE)
    struct.pack_into("<I", header, 0x48, 0)
    difat = [0] + [0xFFFFFFFF] * 108  # the FAT is sector 0
    struct.pack_into("<109I", header, 0x4C, *difat)
    fat = [0xFFFFFFFD, 0xFFFFFFFE] + [0xFFFFFFFF] * 126
    fat_sector = struct.pack("<128I", *fat)

    def entry(name: str, kind: int) -> bytes:
        e = bytearray(128)
        raw = name.encode("utf-16-le") + b"\x00\x00"
        e[0 : len(raw)] = raw
        struct.pack_into("<HBB", e, 64, len(raw), kind, 1)
        struct.pack_into("<III", e, 68, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
        struct.pack_into("<IQ", e, 116, 0xFFFFFFFE, 0)
        return bytes(e)

    names = [("Root Entry", 5), (stream, 2)] + [(n, 1) for n in extra]
    directory = b"".join(entry(n, k) for n, k in names)
    directory += bytes(128) * (4 - len(names))
    return bytes(header) + fat_sector + directory


def exe() -> bytes:
    return (
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 50 + b"This program cannot be run in DOS mode"
    )


def elf() -> bytes:
    return b"\x7fELF\x02\x01\x01" + b"\x00" * 100


def text() -> bytes:
    return "Packing list\n- 12 boxes\n- Grüße, привет, 你好\n".encode()
