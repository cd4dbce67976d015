"""Atomic file writes: a reader sees a file's old content or its new one, never a part."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it; put it straight back
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Writes ``data`` so that ``path`` holds either its old or its new content, never a part.

    The file gets the mode any file the process creates gets (0644 under umask 022): the temp
    file that ``mkstemp`` makes is 0600. A kill mid-write leaves at most a hidden
    ``.NAME.*.tmp`` file beside it, which readers ignore. A failed write raises ``OSError``
    naming ``path``.
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise OSError(error.errno, error.strerror or str(error), str(path)) from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def describe_os_error(error: OSError) -> str:
    """One line for a disk or permission fault: the path, the cause and what to do."""
    import errno

    path = error.filename or "a file"
    hints = {
        errno.EACCES: ("permission denied", "choose a folder you can write to, or change its permissions"),
        errno.EPERM: ("operation not permitted", "choose a folder you can write to, or change its permissions"),
        errno.EROFS: ("the file system is read-only", "choose a folder on a writable disk"),
        errno.ENOSPC: ("no space left on the device", "free some space or choose a folder on another disk"),
        errno.EDQUOT: ("the disk quota is exceeded", "free some space or choose a folder on another disk"),
        errno.EFBIG: ("file too large for the limit on file sizes (ulimit -f)",
                      "raise the limit or write smaller files (fewer --eval-samples, no --logger tensorboard)"),
        errno.ENOENT: ("no such file or folder", "check the path"),
        errno.ENOTDIR: ("a part of the path is a file, not a folder", "check the path"),
        errno.EISDIR: ("it is a folder, not a file", "name a file"),
        errno.ENAMETOOLONG: ("the name is too long", "choose a shorter path"),
    }
    cause, fix = hints.get(error.errno, (error.strerror or type(error).__name__, "check the path and the disk"))
    return f"cannot use {path}: {cause}; {fix}"


def array_file_problem(path: Path, error: BaseException) -> str:
    """Why ``numpy.load`` could not read ``path``, in words that name the file and the fix."""
    path = Path(path)
    if isinstance(error, PermissionError):
        return f"cannot read {path}: permission denied; make it readable (chmod u+r {path.name})"
    if isinstance(error, IsADirectoryError):
        return f"{path} is a folder, not a .npy/.npz file"
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as problem:
        return f"cannot read {path}: {problem.strerror}"
    if not head:
        return f"{path} is empty; save the array with numpy.save"
    if not head.startswith((b"\x93NUMPY", b"PK")):
        return (f"{path} is not a NumPy file (a .npy starts with \\x93NUMPY, an .npz is a zip archive); "
                f"save the array with numpy.save / numpy.savez")
    if "allow_pickle" in str(error) or "pickle" in str(error).lower():
        return f"{path} holds Python objects (pickled data), not numbers; save a numeric array with numpy.save"
    first = " ".join(str(error).split())[:160] or type(error).__name__
    return f"{path} is damaged or cut short ({first}); save it again with numpy.save / numpy.savez"
