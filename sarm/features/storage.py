"""How the feature cache touches the disk: atomic files, locks, orphan clean-up and size checks.

    check_out_dir(root, "out_dir")       # a file there, or no write permission: ValueError, up front
    atomic_save(path, array)             # temporary file + rename; disk full: DiskFullError naming path
    problem = npy_problem(path, (T, C, E), "float16")   # None, or how the file differs from the manifest
    with cache_lock(root): ...           # the manifest and text files, one writer at a time
    fd, holder = try_lock(path)          # an episode's lock, or (None, who holds it)

Locks are `fcntl.flock` locks on files in the cache directory: the kernel drops them when their process
dies, however it dies, so a lock is never stale. Each episode is written under its own lock, so shards
(`--shard i/n`) and even two unsharded runs share one directory without doing any episode twice.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = [
    "DiskFullError",
    "atomic_save",
    "atomic_text",
    "cache_lock",
    "check_out_dir",
    "npy_problem",
    "remove_orphans",
    "try_lock",
    "unlock",
]

META_LOCK = ".sarm-features.lock"


class DiskFullError(OSError, RuntimeError):
    """The disk filled up while writing a cache file (errno ENOSPC); the message names the file."""


def check_out_dir(root: Path, name: str = "out_dir", *, create: bool = True) -> None:
    """Fail before any work if `root` cannot be the cache directory: a file, or not writable.

    `name` is what the caller calls it (`out_dir` in Python, `--out` on the command line). `create`
    makes the directory; without it, the nearest existing folder is checked for permission to make it.
    """
    root = Path(root)
    blocker = next((p for p in [root, *root.parents] if p.exists()), Path.cwd())
    if not blocker.is_dir():
        where = "is an existing file" if blocker == root else f"lies under `{blocker}`, which is a file"
        raise ValueError(
            f"{name} `{root}` {where}; {name} should be a directory (the cache): pass a new path"
        )
    try:
        if create:
            (root / "episodes").mkdir(parents=True, exist_ok=True)
        probe = (root if create else blocker) / f".write-test.{socket.gethostname()}.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ValueError(
            f"{name} `{root}` is not writable ({type(e).__name__}: {e.strerror or e}); pass a directory you "
            "can write to"
        ) from None


def _disk_full(path: Path, error: OSError) -> DiskFullError:
    full = DiskFullError(
        f"disk full while writing `{path}` ({error.strerror}); free space on that disk (or pass another "
        "output directory) and run again: finished episodes are kept and the run resumes"
    )
    full.errno = errno.ENOSPC
    return full


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")


def _write(path: Path, fill) -> None:
    """Write through a temporary file (created with the user's umask, as open() does) and rename."""
    tmp = _tmp(path)
    try:
        with open(tmp, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _disk_full(path, e) from e
        raise


def atomic_save(path: Path, array: np.ndarray) -> None:
    _write(path, lambda f: np.save(f, array))


def atomic_text(path: Path, text: str) -> None:
    _write(path, lambda f: f.write(text.encode()))


def npy_problem(path: Path, shape: tuple[int, ...] | None, dtype: str | None) -> str | None:
    """None if `path` is a whole .npy file of this shape and dtype (None: any); else what is wrong.

    Reads only the header: the file size must be the header plus shape x itemsize.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            found, _, found_dtype = read(f)
            offset = f.tell()
    except FileNotFoundError:
        return "is missing"
    except (ValueError, OSError) as e:
        return f"is not a whole .npy file ({e}; {path.stat().st_size} bytes)"
    if shape is not None and tuple(found) != tuple(shape):
        return f"holds shape {tuple(found)}, but the manifest expects {tuple(shape)}"
    if dtype is not None and found_dtype != np.dtype(dtype):
        return f"holds dtype {found_dtype}, but the manifest expects {np.dtype(dtype)}"
    expected = offset + int(np.prod(found)) * found_dtype.itemsize
    if size != expected:
        return f"is truncated: {size} bytes, expected {expected} for shape {tuple(found)} {found_dtype}"
    return None


# ---- locks ------------------------------------------------------------------------------------------
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


def _flock(fd: int, operation: int, folder: Path) -> None:
    """flock, or a warning where the filesystem has no locks (some network filesystems): then runs on
    one directory are not kept apart, and only shards (disjoint episodes) may share it."""
    try:
        fcntl.flock(fd, operation)
    except OSError as e:
        if e.errno not in _NO_LOCKS:
            raise
        warnings.warn(
            f"cannot lock files in `{folder}` ({e.strerror}): this filesystem has no file locks, so runs "
            "on this cache directory are not kept apart; run one at a time (shards, --shard i/n, are fine)",
            stacklevel=3,
        )


@contextlib.contextmanager
def cache_lock(root: Path) -> Iterator[None]:
    """Hold the cache-wide lock (waits for another run that holds it; held only for short writes)."""
    fd = os.open(root / META_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        _flock(fd, fcntl.LOCK_EX, root)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def try_lock(path: Path) -> tuple[int | None, str]:
    """Take the lock file `path` without waiting: (fd, "") or (None, "pid P on HOST since TIME")."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, path.parent)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        return None, holder
    stamp = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
    os.ftruncate(fd, 0)
    os.pwrite(fd, stamp.encode(), 0)
    return fd, ""


def unlock(fd: int, path: Path, *, remove: bool) -> None:
    """Release a lock from `try_lock`; `remove` deletes its file (only once the work it guards is done:
    a process that then locks the removed file sees the work done and does nothing)."""
    if remove:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    os.close(fd)


def remove_orphans(folder: Path, prefix: str) -> int:
    """Delete temporary files `.<prefix>*.tmp` in `folder`; call it holding the lock that guards them."""
    removed = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("." + prefix) and entry.name.endswith(".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
    return removed
