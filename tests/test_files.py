"""``harkit.files``: atomic writes whose results get the mode the process umask implies (not
mkstemp's private 0o600), and :func:`default_permissions` for mkstemp/mkdtemp results."""

from __future__ import annotations

import os
import tempfile

from harkit.files import copy_atomic, current_umask, default_permissions, write_atomic, write_with
from tests.conftest import assert_umask_modes


def test_current_umask_reads_the_process_umask(umask_002):
    assert current_umask() == 0o002
    os.umask(0o027)
    assert current_umask() == 0o027


def test_atomic_writes_get_the_umask_mode(tmp_path, umask_002):
    write_atomic(tmp_path / "a.txt", "text\n")
    copy_atomic(tmp_path / "a.txt", tmp_path / "b.txt")
    write_with(tmp_path / "sub" / "c.bin", lambda fh: fh.write(b"\0"))
    assert_umask_modes(tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "sub",
                       tmp_path / "sub" / "c.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt", "sub"]  # no temp


def test_default_permissions_of_mkstemp_and_mkdtemp(tmp_path, umask_002):
    fd, name = tempfile.mkstemp(dir=tmp_path)
    os.close(fd)
    folder = tempfile.mkdtemp(dir=tmp_path)
    default_permissions(name)
    default_permissions(folder)
    assert_umask_modes(name, folder)
    os.umask(0o077)
    default_permissions(folder)
    assert_umask_modes(folder, umask=0o077)
