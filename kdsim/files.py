"""Files kdsim writes, and what the debugger says when the operating system refuses.

`NewFile` is the one way a dump, a snapshot or a boot-cache entry reaches the disk: the bytes
go to a temporary file beside the destination, which is renamed onto it only once it is
whole, so a reader never sees half a file and a failed write leaves what was there.  Only a
regular file is ever replaced: a device, a FIFO or a directory at the destination is refused
before anything is written and left as it was (a rename onto `/dev/null` would have removed
the device node).  A symbolic link is followed, so the file it names is replaced and the
link stays.

`read_regular` (and `open_regular`) is the one way a file from a user or a stranger is read: a
dump, a snapshot, a script, a tag file.  It is opened without blocking and checked on the open
descriptor, so a FIFO never waits for a writer and a device (`/dev/zero`) or a directory is
refused before a byte is read, and no more than the caller's limit is ever read.

`win32_error` puts an OS error in kd's words (`Win32 error 0nN` and Windows' message), as the
debugger on Windows would report the same failure.
"""
from __future__ import annotations

import errno
import io
import os
import secrets
import stat
from types import TracebackType

__all__ = ["NewFile", "NotRegularFile", "FileTooLarge", "open_regular", "read_regular",
           "TEMP_SUFFIX", "INVALID_NAME", "win32_error", "cannot_create"]

TEMP_SUFFIX = ".tmp"
_NAME_TRIES = 16
_BASE_KEPT = 200              # of the destination's name in the temporary name (NAME_MAX 255)


class NotRegularFile(PermissionError):
    """The file exists and is not a regular file: it is never read, written or replaced."""

    def __init__(self, path: str, directory: bool = False):
        super().__init__(errno.EACCES, "Not a regular file", path)
        self.directory = directory


class FileTooLarge(ValueError):
    """A file to read holds more than its reader's limit."""

    def __init__(self, path: str, limit: int):
        super().__init__(f"{path}: more than {limit} bytes")
        self.limit = limit


def open_regular(path: str | os.PathLike[str]) -> io.BufferedReader:
    """`path` opened for reading if it is a regular file; NotRegularFile if it is not (the
    check is made on the open descriptor, opened without blocking); OSError (ValueError for a
    NUL in the name) if it cannot be opened.  The name is checked before it is opened too: a
    socket cannot be opened at all."""
    _check_regular(path, os.stat(path).st_mode)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
                 | getattr(os, "O_BINARY", 0))
    try:
        _check_regular(path, os.fstat(fd).st_mode)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _check_regular(path: str | os.PathLike[str], mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise NotRegularFile(os.fspath(path), directory=stat.S_ISDIR(mode))


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of the regular file at `path`; FileTooLarge above `limit` bytes (at most
    `limit` + 1 are read), and what `open_regular` raises."""
    with open_regular(path) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(os.fspath(path), limit)
    return data


class NewFile:
    """A binary file that takes `path`'s place when the `with` block ends without an error.

    Creating it raises the OSError that stops it (NotRegularFile; FileExistsError when `path`
    exists and `overwrite` is False; whatever creating the temporary file raises) and
    ValueError for a NUL in the name.  Errors while writing, and a rename that fails, leave
    the `with` block as OSError, with the temporary file removed."""

    def __init__(self, path: str | os.PathLike[str], *, overwrite: bool):
        self.name = os.fspath(path)
        self.overwrite = overwrite
        self.target = os.path.realpath(self.name)       # a link is followed, not replaced
        _check(self.target, self.name, overwrite)
        folder, base = os.path.split(self.target)
        self.temp, fd = _create_beside(folder, base)
        self.handle: io.BufferedWriter = os.fdopen(fd, "wb")

    def __enter__(self) -> io.BufferedWriter:
        return self.handle

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        try:
            self.handle.close()                 # its last bytes may fail too (a full disk)
            if kind is None:
                self._place()
        except BaseException:
            _unlink(self.temp)
            raise
        if kind is not None:
            _unlink(self.temp)

    def _place(self) -> None:
        existing = _check(self.target, self.name, self.overwrite)   # it may have changed
        if existing is not None:                 # a replaced file keeps its permissions
            os.chmod(self.temp, stat.S_IMODE(existing.st_mode))
        if self.overwrite:
            os.replace(self.temp, self.target)
            return
        try:
            os.link(self.temp, self.target)      # never over a file that appeared meanwhile
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                raise
            os.replace(self.temp, self.target)   # a file system without hard links
            return
        _unlink(self.temp)


def _check(target: str, name: str, overwrite: bool) -> os.stat_result | None:
    """What is at the destination now (None: nothing), if it may be replaced."""
    try:
        info = os.stat(target)
    except FileNotFoundError:
        return None
    if not overwrite:
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), name)
    if not stat.S_ISREG(info.st_mode):
        raise NotRegularFile(name, directory=stat.S_ISDIR(info.st_mode))
    return info


def _create_beside(folder: str, base: str) -> tuple[str, int]:
    """A new, hidden temporary file in `folder` (created with the umask's permissions, as
    the destination would be); its path and descriptor."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_NAME_TRIES):
        temp = os.path.join(folder, f".{base[:_BASE_KEPT]}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            return temp, os.open(temp, flags, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", folder)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# -- OS errors in the debugger's words ----------------------------------------------------------
INVALID_NAME = "The filename, directory name, or volume label syntax is incorrect."

_WIN32 = {
    errno.ENOENT: (2, "The system cannot find the file specified."),
    errno.ENOTDIR: (3, "The system cannot find the path specified."),
    errno.EACCES: (5, "Access is denied."),
    errno.EPERM: (5, "Access is denied."),
    errno.EISDIR: (5, "Access is denied."),
    errno.EROFS: (19, "The media is write protected."),
    errno.EIO: (1117, "The request could not be performed because of an I/O device error."),
    errno.EEXIST: (80, "The file exists."),
    errno.ETXTBSY: (32, "The process cannot access the file because it is being used by another "
                        "process."),
    errno.ENOSPC: (112, "There is not enough space on the disk."),
    errno.ENAMETOOLONG: (206, "The filename or extension is too long."),
}


def win32_error(exc: OSError, path: str | os.PathLike[str] | None,
                creating: bool) -> tuple[str, str]:
    """kd's `Win32 error 0nN` and its message for an OS error.  A missing directory is
    ERROR_PATH_NOT_FOUND (3), a missing file ERROR_FILE_NOT_FOUND (2), as on Windows."""
    if exc.errno == errno.ENOENT and path is not None:
        parent = os.path.dirname(os.path.abspath(path))
        if creating or not os.path.isdir(parent):
            code, text = _WIN32[errno.ENOTDIR]
            return f"Win32 error 0n{code}", text
    if exc.errno in _WIN32:
        code, text = _WIN32[exc.errno]
        return f"Win32 error 0n{code}", text
    return f"error {exc.errno}", exc.strerror or str(exc)


def cannot_create(name: str, exc: OSError | ValueError) -> str:
    """kd's two lines for a file it cannot create (a ValueError: a NUL in the name, which
    Windows calls invalid)."""
    if isinstance(exc, OSError):
        code, text = win32_error(exc, name, creating=True)
    else:
        code, text = "Win32 error 0n123", INVALID_NAME
    return f"Unable to create file '{name}' - {code}\n    \"{text}\""
