"""DirectoryFiles (chatd.files): a file appears under its name whole or not at
all, a failed or refused write leaves nothing behind, and no name reaches
outside the directory."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from chatd.files import DirectoryFiles

DATA = b"%PDF-1.7\n" + bytes(range(256)) * 1000
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
async def files(tmp_path):
    f = DirectoryFiles(tmp_path / "files")
    await f.start()
    return f


def visible(files: DirectoryFiles) -> list[str]:
    """Every file outside tmp/, relative to the root."""
    return sorted(
        str(p.relative_to(files.root)) for p in files.root.rglob("*") if p.is_file() and p.parent != files.tmp
    )


async def test_a_file_is_visible_under_its_name_only_once_placed(files):
    async with files.put() as part:
        for i in range(0, len(DATA), 10_000):
            await part.write(DATA[i : i + 10_000])
        assert part.size == len(DATA)
        assert not await files.exists(SHA)
        name = await part.finish()
        assert name == SHA
        assert part.path.read_bytes() == DATA  # readable for sniffing before it has a name
        assert visible(files) == [] and not await files.exists(SHA)
        await part.place()
    assert await files.exists(SHA)
    assert files.path(SHA) == files.root / SHA[:2] / SHA
    assert files.path(SHA).read_bytes() == DATA
    assert list(files.tmp.iterdir()) == []


async def test_a_write_that_fails_half_way_leaves_nothing(files):
    with pytest.raises(RuntimeError):
        async with files.put() as part:
            await part.write(DATA[:5000])
            raise RuntimeError("the client went away")
    assert list(files.tmp.iterdir()) == [] and visible(files) == []


async def test_a_refused_file_is_removed(files):
    async with files.put() as part:  # finished, sniffed, not wanted: never placed
        await part.write(DATA)
        await part.finish()
    assert list(files.tmp.iterdir()) == [] and visible(files) == []
    assert not await files.exists(SHA)


async def test_a_rename_that_fails_leaves_nothing_under_the_name(files):
    files.root.joinpath(SHA[:2]).write_bytes(b"")  # a file where its folder would go: mkdir fails
    with pytest.raises(OSError):
        async with files.put() as part:
            await part.write(DATA)
            await part.place()
    assert list(files.tmp.iterdir()) == []
    assert not files.path(SHA).exists()


async def test_the_same_content_is_stored_once(files):
    for _ in range(2):
        async with files.put() as part:
            await part.write(DATA)
            await part.place()
    assert visible(files) == [f"{SHA[:2]}/{SHA}"]
    assert list(files.tmp.iterdir()) == []


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "..",
        ".",
        "",
        "tmp",
        SHA[:2] + "/" + SHA[2:],
        SHA.upper(),
        SHA + "0",
        SHA[:-1],
        "../" + SHA[3:],
        SHA[:60] + "/../",
        "\0" * 64,
        SHA[:63] + "\n",
    ],
)
async def test_no_name_reaches_outside_the_directory(files, name):
    with pytest.raises(ValueError):
        files.path(name)
    with pytest.raises(ValueError):
        await files.exists(name)
    with pytest.raises(ValueError):
        await files.delete(name)


async def test_delete_and_delete_unless_kept(files):
    async with files.put() as part:
        await part.write(DATA)
        await part.place()

    async def kept():
        assert not files.path(SHA).exists()  # out of sight while the store is asked
        return True

    await files.delete(SHA, keep=kept)
    assert files.path(SHA).read_bytes() == DATA

    async def gone():
        return False

    await files.delete(SHA, keep=gone)
    assert not await files.exists(SHA)
    assert list(files.tmp.iterdir()) == []
    await files.delete(SHA)  # missing: nothing to do
    await files.delete(SHA, keep=gone)


async def test_sweep_removes_only_what_dead_writers_left(tmp_path):
    files = DirectoryFiles(tmp_path / "files", stale_after_s=60)
    await files.start()
    old, fresh = files.tmp / "old.part", files.tmp / "fresh.part"
    old.write_bytes(b"x")
    fresh.write_bytes(b"x")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    await files.sweep()
    assert sorted(p.name for p in files.tmp.iterdir()) == ["fresh.part"]
