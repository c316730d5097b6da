"""Reading and writing files safely: NPZ without pickle, atomic writes, outputs checked before the work.

Every file DynaFlow reads from elsewhere (datasets, motions, checkpoint weights) goes through
:func:`read_npz`, which never unpickles and names the file and the problem in one line. Every file it writes
goes through a temporary sibling renamed into place (:func:`atomic_write`), so a reader never sees half a
file and a failed write leaves the previous file as it was. :func:`check_output` runs before a command
starts its work, so an unusable output path fails in a second, not after a ten-minute evaluation.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO

import numpy as np


class FileProblem(ValueError):
    """A file that cannot be read or written as asked; the message names the path and the problem."""


def _os_reason(e: OSError) -> str:
    if isinstance(e, PermissionError):
        return "permission denied"
    if e.errno == errno.ENOSPC:
        return "no space left on the device"
    if e.errno == errno.EROFS:
        return "read-only file system"
    return e.strerror or type(e).__name__


def describe_os_error(e: OSError) -> str:
    """One line for an OS error: the path(s) and the reason (a full disk, a permission, a missing folder)."""
    paths = [p for p in (e.filename, getattr(e, "filename2", None)) if p]
    where = " -> ".join(str(p) for p in paths)
    return f"{where}: {_os_reason(e)}" if where else _os_reason(e)


def read_npz(path: str | Path, what: str = "file") -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, read with ``allow_pickle=False``.

    Raises :class:`FileProblem` naming the file for: a missing file, a directory, a permission problem,
    a file that is not a zip archive (not an NPZ), a member that is not a NumPy array, and an object array
    (which only pickle could read: refused, never unpickled). ``what`` names the file's role in messages
    ("dataset", "motion")."""
    path = Path(path)
    if not path.exists():
        raise FileProblem(f"{path}: no such {what}")
    if path.is_dir():
        raise FileProblem(f"{path}: is a directory, expected a {what} (.npz file)")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as e:
        raise FileProblem(f"{path}: cannot read the {what} ({_os_reason(e)})") from e
    if magic != b"PK\x03\x04":
        raise FileProblem(f"{path}: not a valid .npz file (not a zip archive); write it with numpy.savez")
    out: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as f:
            for key in f.files:
                try:
                    value = f[key]
                except ValueError as e:
                    if "pickle" in str(e) or "Object arrays" in str(e):
                        raise FileProblem(
                            f"{path}: key '{key}' holds Python objects (an object array); only plain "
                            "numeric arrays are read, and never with pickle"
                        ) from e
                    raise FileProblem(f"{path}: key '{key}' is not a valid NumPy array ({e})") from e
                if not isinstance(value, np.ndarray):
                    raise FileProblem(f"{path}: member '{key}' is not a NumPy array (not a valid .npz file)")
                out[key] = value
    except FileProblem:
        raise
    except OSError as e:
        raise FileProblem(f"{path}: cannot read the {what} ({_os_reason(e)})") from e
    except (zipfile.BadZipFile, EOFError, ValueError, KeyError) as e:
        raise FileProblem(f"{path}: not a valid .npz file (truncated or damaged: {e})") from e
    return out


def check_output(path: str | Path, what: str = "output", is_dir: bool = False, inputs: Iterable = ()) -> Path:
    """Check before any work that ``path`` can be written: its parent is (or can become) a directory, it is
    not a directory when a file is expected (or a file when a directory is), and it is none of ``inputs``
    (a command never writes over what it reads). Creates nothing; returns the path."""
    path = Path(path)
    for item in inputs:
        if item is None:
            continue
        with contextlib.suppress(OSError):
            if path.resolve() == Path(item).resolve():
                raise FileProblem(
                    f"{path}: the {what} would overwrite an input of this command; choose another"
                )
    if is_dir and path.exists() and not path.is_dir():
        raise FileProblem(f"{path}: exists and is not a directory (the {what} is a directory)")
    if not is_dir and path.is_dir():
        raise FileProblem(f"{path}: is a directory; the {what} is a file path")
    parent = path.parent
    while not parent.exists():
        if parent == parent.parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise FileProblem(f"{path}: {parent} is a file, not a directory")
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise FileProblem(f"{path}: cannot write in {parent} (permission denied)")
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary sibling of ``path`` to write (by name, e.g. for ffmpeg), renamed over ``path`` when the
    block succeeds: readers never see half a file, and a failure (a full disk, Ctrl-C) leaves the previous
    file untouched and no temporary behind. The parent directory is created if missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None] | bytes | str) -> Path:
    """Write ``path`` atomically (:func:`atomic_path`, fsynced). ``write`` is the content (bytes or text)
    or a function given the open binary file."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        if callable(write):
            write(f)
        else:
            f.write(write.encode() if isinstance(write, str) else write)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def write_npz(path: str | Path, arrays: Mapping[str, np.ndarray], compressed: bool = False) -> Path:
    """:func:`atomic_write` of an ``.npz`` holding ``arrays``."""
    save = np.savez_compressed if compressed else np.savez
    return atomic_write(path, lambda f: save(f, **arrays))
