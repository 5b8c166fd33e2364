"""What type a file is, from its content (magic bytes, containers), never from its name.

Pure: functions of bytes, or of a file they only read (the upload's temporary
file), so the allow-list can be tested without the attachment service.
Allowed: images, PDF, office documents without macros, plain UTF-8 text;
executables are refused however they are named.
"""

from __future__ import annotations

import codecs
import struct
import zipfile
from pathlib import Path

HEAD_BYTES = 4096

# What may be uploaded, by sniffed type. Office documents: OOXML and
# OpenDocument zip containers, and legacy OLE (doc, xls, ppt) without macros.
IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
EXECUTABLE_MAGIC = (
    b"MZ",  # DOS / Windows PE
    b"\x7fELF",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",  # Mach-O
    b"\xca\xfe\xba\xbe",  # Mach-O universal, Java class
    b"#!",  # scripts
    b"\x00asm",  # WebAssembly
    b"dex\n",  # Android
)
OOXML = {
    "word/": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xl/": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "ppt/": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
OLE_STREAMS = {
    "worddocument": "application/msword",
    "workbook": "application/vnd.ms-excel",
    "book": "application/vnd.ms-excel",
    "powerpoint document": "application/vnd.ms-powerpoint",
}
OLE_MACROS = {"macros", "_vba_project_cur", "vba", "_vba_project"}
ZIP_MAX_ENTRIES = 20000


def is_executable(head: bytes) -> bool:
    return any(head.startswith(m) for m in EXECUTABLE_MAGIC)


def sniff_head(head: bytes) -> str | None:
    """The type the first bytes prove, 'zip' / 'ole' for containers to open, or None."""
    for magic, mime in IMAGE_MAGIC:
        if head.startswith(magic):
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "ole"
    return None


class TextCheck:
    """Fed chunk by chunk: still plain text (valid UTF-8, no NUL)?"""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.ok = True

    def feed(self, chunk: bytes, final: bool = False) -> None:
        if not self.ok:
            return
        if b"\x00" in chunk:
            self.ok = False
            return
        try:
            self._decoder.decode(chunk, final)
        except UnicodeDecodeError:
            self.ok = False


# a central directory entry is 46 bytes and its name; an office document's names are short
ZIP_MAX_DIRECTORY_BYTES_PER_ENTRY = 512


def zip_directory_fits(path: Path) -> bool:
    """The end record's entry count and directory size are within bounds, read before
    ZipFile parses the directory (which it does by size, whatever the count says)."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        end = f.tell()
        f.seek(max(0, end - 65_557))  # the end record (22 bytes) and a comment of up to 64 KiB
        tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return False
    on_disk, total, dir_size = struct.unpack_from("<HHI", tail, at + 8)
    entries = max(on_disk, total)
    return bool(entries <= ZIP_MAX_ENTRIES and dir_size <= max(entries, 1) * ZIP_MAX_DIRECTORY_BYTES_PER_ENTRY)


def zip_type(path: Path) -> str | None:
    """An OOXML or OpenDocument file without macros, or None (also for any container
    too big to open or too broken to read: not a document this allows)."""
    try:
        if not zip_directory_fits(path):
            return None
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            if len(infos) > ZIP_MAX_ENTRIES:
                return None
            names = [i.filename for i in infos]
            lower = [n.lower() for n in names]
            if any(n.endswith("vbaproject.bin") or n.endswith(".bin") and "vba" in n for n in lower):
                return None  # macro-enabled: code, not a document
            if "[Content_Types].xml" in names:
                for prefix, mime in OOXML.items():
                    if any(n.startswith(prefix) for n in names):
                        return mime
                return None
            if "mimetype" in names:
                with z.open("mimetype") as f:
                    kind = f.read(100).decode("ascii", "replace").strip()
                if kind.startswith("application/vnd.oasis.opendocument.") and "template" not in kind:
                    return kind
    except Exception:  # noqa: BLE001 - zipfile raises what its decompressors do (zlib.error, EOFError, ...)
        return None
    return None


def ole_type(path: Path) -> str | None:
    """A legacy Word, Excel or PowerPoint file (by its stream names) without macros, or None."""
    try:
        names = _ole_names(path)
    except (OSError, ValueError, struct.error, IndexError):
        return None
    if names & OLE_MACROS:
        return None
    for stream, mime in OLE_STREAMS.items():
        if stream in names:
            return mime
    return None


def _ole_names(path: Path) -> set[str]:
    """Names of the entries of a compound file's directory (lower case)."""
    with open(path, "rb") as f:
        header = f.read(512)
        if len(header) < 512:
            raise ValueError("short header")
        shift = struct.unpack_from("<H", header, 0x1E)[0]
        if shift not in (9, 12):
            raise ValueError("bad sector size")
        size = 1 << shift
        n_fat, first_dir = struct.unpack_from("<II", header, 0x2C)
        first_difat, n_difat = struct.unpack_from("<II", header, 0x44)
        difat = list(struct.unpack_from("<109I", header, 0x4C))
        per = size // 4
        f.seek(0, 2)
        if n_fat > 4096 or n_fat * size > f.tell():
            raise ValueError("more FAT than file")

        def sector(n: int) -> bytes:
            f.seek((n + 1) * size)
            data = f.read(size)
            if len(data) < size:
                raise ValueError("truncated")
            return data

        nxt, hops = first_difat, 0
        while nxt < 0xFFFFFFFA and hops < n_difat and hops < 1000 and len(difat) < n_fat + 109:
            entries = struct.unpack(f"<{per}I", sector(nxt))
            difat.extend(entries[:-1])
            nxt, hops = entries[-1], hops + 1
        fat_sectors = [s for s in difat if s < 0xFFFFFFFA][:n_fat]

        def fat(n: int) -> int:
            """The FAT entry of sector n, read from where it is: the directory's chain
            needs a few, and the whole FAT of a crafted file can be millions."""
            if n // per >= len(fat_sectors):
                return 0xFFFFFFFE
            f.seek((fat_sectors[n // per] + 1) * size + (n % per) * 4)
            entry = f.read(4)
            if len(entry) < 4:
                raise ValueError("truncated")
            return int(struct.unpack("<I", entry)[0])

        names: set[str] = set()
        cur, seen = first_dir, 0
        while cur < 0xFFFFFFFA and seen < 1000:
            data = sector(cur)
            for off in range(0, size, 128):
                n_len = struct.unpack_from("<H", data, off + 64)[0]
                kind = data[off + 66]
                if kind in (1, 2, 5) and 2 <= n_len <= 64:
                    names.add(data[off : off + n_len - 2].decode("utf-16-le", "replace").lower())
            cur = fat(cur)
            seen += 1
        return names


def identify(path: Path, head: bytes, text_ok: bool) -> str | None:
    """The allowed type of the complete file at `path`, or None."""
    if not head or is_executable(head):
        return None
    kind = sniff_head(head)
    if kind == "zip":
        return zip_type(path)
    if kind == "ole":
        return ole_type(path)
    if kind is not None:
        return kind
    return "text/plain" if text_ok else None
