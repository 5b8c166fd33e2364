"""Where attachment files live: a small interface (`FileStore`) and the one
implementation chatd ships, `DirectoryFiles`, over a directory.

Files are content addressed: a file's name is the sha256 of its bytes (hex),
so it is written once and never changed. A new file streams into a partial
file (`put`), is flushed to disk, and only then renamed to its name in one
step: nobody ever sees part of a file under a name, and a file that fails
half way leaves nothing behind under one. Metadata (who uploaded what, who
may see it) is the store's; this module knows bytes and names only.

Several hosts share attachments by mounting one volume at the same
`[attachments] dir` on each (docs/operations.md, "Attachments on several
hosts"): the partial files are in `<dir>/tmp`, on the same file system as
their final place, so the rename stays atomic there too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import BinaryIO, Protocol

_NAME = re.compile(r"[0-9a-f]{64}")  # a sha256, hex: no separator, no dot, so no way out of the directory


class Part(Protocol):
    """A file being written, not visible under any name until `place`."""

    path: Path  # the partial file, readable (content sniffing) once `finish` returned
    size: int  # bytes written so far

    async def write(self, chunk: bytes) -> None: ...

    async def finish(self) -> str:
        """Flush to disk and close; the file's name (its sha256, hex)."""

    async def place(self) -> None:
        """Give the finished file its name (atomically). A file of that name
        already there is kept: same name, same bytes."""


class FileStore(Protocol):
    async def start(self) -> None:
        """Ready to write; what a crashed writer left half done is removed."""

    def put(self) -> AbstractAsyncContextManager[Part]:
        """A new file, streamed: leaving the block without `place` (an error, a
        refusal) removes the partial file."""

    def path(self, name: str) -> Path:
        """Where the file of this name is read from (downloads serve it from there)."""

    async def exists(self, name: str) -> bool: ...

    async def delete(self, name: str, keep: Callable[[], Awaitable[bool]] | None = None) -> None:
        """Remove the file (missing: nothing to do). With `keep`: the file is
        first moved out of sight, then `keep()` is asked, and if it says True
        (a new upload of the same content committed meanwhile, maybe on
        another host) the file is put back."""

    async def sweep(self) -> None:
        """Remove leftovers of writers that died (older than an hour)."""


class DirectoryFiles:
    """`<root>/<name[:2]>/<name>`, partial files in `<root>/tmp`. Safe for
    several processes and hosts sharing `root`: every change is a rename."""

    def __init__(self, root: Path | str, stale_after_s: float = 3600.0) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.stale_after_s = stale_after_s

    async def start(self) -> None:
        await asyncio.to_thread(self.tmp.mkdir, parents=True, exist_ok=True)
        await self.sweep()

    def path(self, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a file name of this store: {name!r}")
        return self.root / name[:2] / name

    async def exists(self, name: str) -> bool:
        return await asyncio.to_thread(self.path(name).exists)

    @contextlib.asynccontextmanager
    async def put(self) -> AsyncIterator[Part]:
        part = _Part(self, self.tmp / f"{secrets.token_hex(16)}.part")
        part._file = await asyncio.to_thread(_open_for_writing, part.path)
        try:
            yield part
        finally:
            if part._file is not None:
                await asyncio.to_thread(part._file.close)
            if not part.placed:
                await asyncio.to_thread(_unlink, part.path)

    async def delete(self, name: str, keep: Callable[[], Awaitable[bool]] | None = None) -> None:
        final = self.path(name)
        if keep is None:
            await asyncio.to_thread(_unlink, final)
            return
        aside = self.tmp / f"{name}.{secrets.token_hex(4)}.gone"
        try:
            await asyncio.to_thread(os.replace, final, aside)
        except FileNotFoundError:
            return
        if await keep():
            await asyncio.to_thread(_restore, aside, final)
        else:
            await asyncio.to_thread(_unlink, aside)

    async def sweep(self) -> None:
        await asyncio.to_thread(self._sweep, self.stale_after_s)

    def _sweep(self, older_than_s: float) -> None:
        limit = time.time() - older_than_s
        try:
            entries = list(os.scandir(self.tmp))
        except FileNotFoundError:
            return
        for e in entries:
            try:
                st = e.stat()
                # .gone: moved aside by `delete`; a rename updates ctime, not mtime
                if (e.name.endswith(".part") and st.st_mtime <= limit) or (
                    e.name.endswith(".gone") and st.st_ctime <= limit
                ):
                    os.unlink(e.path)
            except FileNotFoundError:
                pass


class _Part:
    def __init__(self, files: DirectoryFiles, path: Path) -> None:
        self._files = files
        self.path = path
        self.size = 0
        self._file: BinaryIO | None = None
        self._digest = hashlib.sha256()
        self.name: str | None = None
        self.placed = False

    async def write(self, chunk: bytes) -> None:
        if self._file is None:
            raise ValueError("the file is finished")
        await asyncio.to_thread(self._write, chunk)
        self.size += len(chunk)

    def _write(self, chunk: bytes) -> None:
        assert self._file is not None  # checked by write
        self._file.write(chunk)
        self._digest.update(chunk)

    async def finish(self) -> str:
        if self._file is not None:
            f, self._file = self._file, None
            await asyncio.to_thread(_finish, f)
            self.name = self._digest.hexdigest()
        assert self.name is not None  # finished once, named then
        return self.name

    async def place(self) -> None:
        name = await self.finish()
        await asyncio.to_thread(_place, self.path, self._files.path(name))
        self.placed = True


def _open_for_writing(path: Path) -> BinaryIO:
    return open(path, "wb")  # noqa: SIM115 - closed by _finish or by put's cleanup


def _finish(f: BinaryIO) -> None:
    try:
        f.flush()
        os.fsync(f.fileno())
    finally:
        f.close()


def _place(tmp: Path, final: Path) -> None:
    """Content addressed: an identical file already there is kept, the new copy dropped."""
    if final.exists():
        os.unlink(tmp)
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)


def _restore(aside: Path, final: Path) -> None:
    if final.exists():  # a new upload placed its own copy meanwhile
        os.unlink(aside)
    else:
        os.replace(aside, final)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
