"""kdsim/files.py: the one writer of whole files, and OS errors in kd's words."""
from __future__ import annotations

import errno
import os
import stat

import pytest

from kdsim.files import NewFile, NotRegularFile, cannot_create


def test_the_file_appears_whole_and_only_at_the_end(tmp_path):
    path = tmp_path / "x.bin"
    with NewFile(path, overwrite=False) as handle:
        handle.write(b"abc")
        assert not path.exists()
        (temp,) = tmp_path.iterdir()
        assert temp.name.startswith(".x.bin.") and temp.name.endswith(".tmp")
    assert path.read_bytes() == b"abc"
    assert list(tmp_path.iterdir()) == [path]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_an_error_while_writing_leaves_what_was_there(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with NewFile(path, overwrite=True) as handle:
            handle.write(b"half")
            raise RuntimeError
    assert path.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [path]


def test_without_overwrite_a_file_that_appears_meanwhile_is_kept(tmp_path):
    path = tmp_path / "x.bin"
    with pytest.raises(FileExistsError):
        with NewFile(path, overwrite=False) as handle:
            handle.write(b"mine")
            path.write_bytes(b"theirs")
    assert path.read_bytes() == b"theirs"
    assert list(tmp_path.iterdir()) == [path]


def test_only_regular_files_are_replaced(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    device = tmp_path / "null"
    device.symlink_to(os.devnull)             # never anything under /dev itself
    for path in (fifo, device, tmp_path):
        with pytest.raises(NotRegularFile):
            NewFile(path, overwrite=True)
        with pytest.raises(FileExistsError):
            NewFile(path, overwrite=False)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and device.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "null"]


def test_cannot_create_in_kds_words(tmp_path):
    assert cannot_create("x", NotRegularFile("x")) == (
        "Unable to create file 'x' - Win32 error 0n5\n    \"Access is denied.\"")
    assert cannot_create("x", OSError(errno.ETXTBSY, "busy")) == (
        "Unable to create file 'x' - Win32 error 0n32\n    \"The process cannot access the file "
        "because it is being used by another process.\"")
    assert cannot_create("a\0b", ValueError()).startswith(
        "Unable to create file 'a\0b' - Win32 error 0n123\n")
    assert cannot_create("x", OSError(errno.ELOOP, "Too many levels of symbolic links")) == (
        "Unable to create file 'x' - error 40\n    \"Too many levels of symbolic links\"")
