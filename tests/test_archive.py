"""data_prep.archive: safe extraction and in-place listing of (nested) zips.

The helpers at the top build PAMAP2-shaped archives in memory; tests/test_download.py reuses them.
"""

from __future__ import annotations

import gc
import io
import tempfile
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from data_prep.archive import ArchiveError, find_zip_recordings, safe_extract
from harkit.errors import HarError
from tests.conftest import activity_blocks, assert_umask_modes, write_dat


# --------------------------------------------------------------------------- archive builders
def dat_bytes(tmp_path: Path, seed: int, rows: int = 40) -> bytes:
    """A tiny but valid 54-column PAMAP2 recording (two activities)."""
    ts, act = activity_blocks([(1, rows // 2), (2, rows - rows // 2)])
    path = tmp_path / f"_dat_{seed}.dat"
    write_dat(path, ts, act, seed=seed)
    data = path.read_bytes()
    path.unlink()
    return data


def dataset_files(tmp_path: Path, prefix: str = "PAMAP2_Dataset/") -> dict:
    """``{member path: bytes}`` of a miniature PAMAP2_Dataset folder."""
    return {
        f"{prefix}Protocol/subject101.dat": dat_bytes(tmp_path, 1),
        f"{prefix}Protocol/subject102.dat": dat_bytes(tmp_path, 2),
        f"{prefix}Optional/subject101.dat": dat_bytes(tmp_path, 3),
        f"{prefix}readme.txt": b"PAMAP2 miniature for tests\n",
    }


def zip_bytes(members: dict, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip holding ``members`` (names written verbatim, even unsafe ones)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, (2012, 8, 5, 0, 0, 0)), data,
                        compress_type=compression)
    return buf.getvalue()


def nested_zip(members: dict, inner: int = zipfile.ZIP_STORED,
               inner_name: str = "PAMAP2_Dataset.zip") -> bytes:
    """The UCI layout: an outer zip holding ``inner_name`` (stored or deflated) + a readme."""
    return zip_bytes({inner_name: zip_bytes(members)} | {"readme.pdf": b"%PDF-1.4 tiny"},
                     compression=inner)


def corrupt(data: bytes, needle: bytes) -> bytes:
    """``data`` with one byte flipped inside the first occurrence of ``needle``."""
    at = data.index(needle) + len(needle) // 2
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def listing(folder: Path) -> set:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# --------------------------------------------------------------------------- safe_extract
def test_safe_extract_flat(tmp_path):
    files = dataset_files(tmp_path)
    archive = write(tmp_path / "flat.zip", zip_bytes(files))
    out = safe_extract(archive, tmp_path / "out")
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in out) == sorted(files)
    for name, data in files.items():
        assert (tmp_path / "out" / name).read_bytes() == data


def test_safe_extract_gives_the_folder_the_umask_mode(tmp_path, umask_002):
    archive = write(tmp_path / "flat.zip", zip_bytes(dataset_files(tmp_path)))
    out = safe_extract(archive, tmp_path / "out")
    assert_umask_modes(tmp_path / "out", *out)          # not mkdtemp's 0o700


@pytest.mark.parametrize("inner", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_safe_extract_nested(tmp_path, inner):
    files = dataset_files(tmp_path)
    archive = write(tmp_path / "pamap2.zip", nested_zip(files, inner=inner))
    dest = tmp_path / "raw" / "out"
    out = safe_extract(archive, dest)
    for name, data in files.items():
        assert (dest / name).read_bytes() == data
    assert not (dest / "PAMAP2_Dataset.zip").exists()          # inner zip not kept
    assert (dest / "readme.pdf").exists()
    assert set(out) == {p for p in dest.rglob("*") if p.is_file()}
    assert listing(tmp_path / "raw") == {"out"} | {f"out/{p}" for p in listing(dest)}


def test_safe_extract_into_empty_folder_and_refuses_nonempty(tmp_path):
    archive = write(tmp_path / "a.zip", zip_bytes({"x/subject101.dat": b"1\n"}))
    (tmp_path / "empty").mkdir()
    safe_extract(archive, tmp_path / "empty")
    assert (tmp_path / "empty/x/subject101.dat").read_bytes() == b"1\n"
    with pytest.raises(HarError, match="already exists"):
        safe_extract(archive, tmp_path / "empty")


@pytest.mark.parametrize("evil", ["../evil.dat", "/tmp/evil.dat", "C:/evil.dat",
                                  "a/../../evil.dat", "..\\evil.dat"])
def test_safe_extract_refuses_escaping_members(tmp_path, evil):
    members = {"PAMAP2_Dataset/Protocol/subject101.dat": b"ok\n", evil: b"pwned\n"}
    archive = write(tmp_path / "evil.zip", zip_bytes(members))
    with pytest.raises(ArchiveError, match="unsafe member") as info:
        safe_extract(archive, tmp_path / "sub" / "out")
    assert evil in str(info.value) and "\n" not in str(info.value)
    assert listing(tmp_path) == {"evil.zip", "sub"}            # nothing extracted, no temp left


def test_safe_extract_refuses_escaping_member_of_nested_zip(tmp_path):
    archive = write(tmp_path / "outer.zip", nested_zip({"../evil.dat": b"pwned\n"}))
    with pytest.raises(ArchiveError,
                       match=r"outer.zip has an unsafe member 'PAMAP2_Dataset.zip!../evil.dat'"):
        safe_extract(archive, tmp_path / "out")
    assert listing(tmp_path) == {"outer.zip"}


def test_safe_extract_allows_harmless_dotdot(tmp_path):
    archive = write(tmp_path / "a.zip", zip_bytes({"a/../b/subject101.dat": b"1\n"}))
    safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out/b/subject101.dat").read_bytes() == b"1\n"


@pytest.mark.parametrize("damage", ["crc", "truncated", "not_zip", "nested_crc"])
def test_safe_extract_corrupt(tmp_path, damage):
    files = dataset_files(tmp_path)
    if damage == "crc":
        data = corrupt(zip_bytes(files, zipfile.ZIP_STORED), b"PAMAP2 miniature")
    elif damage == "truncated":
        data = zip_bytes(files)[:-200]
    elif damage == "not_zip":
        data = b"<html>not found</html>"
    else:
        data = zip_bytes({"PAMAP2_Dataset.zip": corrupt(zip_bytes(files, zipfile.ZIP_STORED),
                                                        b"PAMAP2 miniature")},
                         zipfile.ZIP_STORED)
    archive = write(tmp_path / "bad.zip", data)
    with pytest.raises(ArchiveError, match=r"bad.zip is corrupt or truncated \(.*\): "
                                           "delete it and download again$"):
        safe_extract(archive, tmp_path / "out")
    assert listing(tmp_path) == {"bad.zip"}


# --------------------------------------------------------------------------- find_zip_recordings
def test_find_zip_recordings_flat(tmp_path):
    files = dataset_files(tmp_path)
    archive = write(tmp_path / "flat.zip", zip_bytes(files))
    recs = find_zip_recordings(archive)
    assert [r.name for r in recs] == [f"flat.zip!{m}" for m in files if m.endswith(".dat")]
    assert [r.folder for r in recs] == ["Protocol", "Protocol", "Optional"]
    for r in recs:
        assert r.read_bytes() == files[r.member]
        assert r.size == len(files[r.member]) and r.crc == zlib.crc32(files[r.member])


@pytest.mark.parametrize("inner", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_find_zip_recordings_nested(tmp_path, monkeypatch, inner):
    spill = tmp_path / "tmp"
    spill.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spill))
    files = dataset_files(tmp_path)
    archive = write(tmp_path / "pamap2.zip", nested_zip(files, inner=inner))
    recs = find_zip_recordings(archive)
    assert [r.name for r in recs] == [
        "pamap2.zip!PAMAP2_Dataset.zip!PAMAP2_Dataset/Protocol/subject101.dat",
        "pamap2.zip!PAMAP2_Dataset.zip!PAMAP2_Dataset/Protocol/subject102.dat",
        "pamap2.zip!PAMAP2_Dataset.zip!PAMAP2_Dataset/Optional/subject101.dat",
    ]
    assert recs[0].member == "PAMAP2_Dataset/Protocol/subject101.dat"
    with ThreadPoolExecutor(max_workers=4) as pool:                # read_bytes is thread-safe
        got = list(pool.map(lambda r: r.read_bytes(), recs * 3))
    assert got == [files[r.member] for r in recs * 3]
    # a stored inner zip is read in place; a compressed one is copied once, then cleaned up
    assert len(list(spill.iterdir())) == (0 if inner == zipfile.ZIP_STORED else 1)
    del recs, got
    gc.collect()
    assert list(spill.iterdir()) == []


def test_find_zip_recordings_doubly_nested_and_pattern(tmp_path):
    inner = zip_bytes({"Protocol/subject103.dat": b"3\n", "Protocol/notes.txt": b"x"})
    middle = zip_bytes({"deep/inner.zip": inner, "Optional/subject109.dat": b"9\n"},
                       zipfile.ZIP_STORED)
    archive = write(tmp_path / "outer.zip",
                    zip_bytes({"middle.zip": middle, "__MACOSX/._middle.zip": b"junk",
                               "._subject1.dat": b"junk"}))
    recs = find_zip_recordings(archive)
    assert [(r.name, r.folder) for r in recs] == [
        ("outer.zip!middle.zip!Optional/subject109.dat", "Optional"),
        ("outer.zip!middle.zip!deep/inner.zip!Protocol/subject103.dat", "Protocol"),
    ]
    assert [r.read_bytes() for r in recs] == [b"9\n", b"3\n"]
    assert [r.member for r in find_zip_recordings(archive, "*.txt")] == ["Protocol/notes.txt"]


def test_find_zip_recordings_corrupt(tmp_path):
    files = dataset_files(tmp_path)
    truncated = write(tmp_path / "cut.zip", nested_zip(files)[:-100])
    with pytest.raises(ArchiveError, match="cut.zip is corrupt or truncated"):
        find_zip_recordings(truncated)
    # a damaged member is found when it is read
    bad = corrupt(zip_bytes(files, zipfile.ZIP_STORED), dat_bytes(tmp_path, 2)[:40])
    archive = write(tmp_path / "crc.zip", zip_bytes({"PAMAP2_Dataset.zip": bad},
                                                    zipfile.ZIP_STORED))
    recs = find_zip_recordings(archive)
    assert recs[0].read_bytes() == files[recs[0].member]
    with pytest.raises(ArchiveError, match=r"crc.zip is corrupt or truncated \("
                                           r"PAMAP2_Dataset.zip!.*subject102.dat: Bad CRC"):
        recs[1].read_bytes()
