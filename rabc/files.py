"""Writing rabc's output files safely: checked up front, atomic, with the user's umask, no orphans.

Every file rabc writes (progress and weights parquet, diagnostics plot and JSON) goes through
`atomic_write`: the content is written to a temporary file beside the target, named
`.<name>.rabc-tmp.<host>.<pid>.<random>`, and renamed into place, so a reader never sees half a
file. The temporary file is created with mode 0o666 and the process umask applies, as for any
`open()`. A write that fails (disk full included) removes its temporary file; one killed outright
leaves it behind, and the next write to the same path removes it (when its process is gone).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "check_output_dir", "check_output_file", "refuse_overwrite"]

TMP_TAG = ".rabc-tmp."
_LEGACY_TMP = re.compile(r"\.[a-z0-9_]{8}\.tmp")  # tempfile.mkstemp(prefix=".<name>.", suffix=".tmp")
_FOREIGN_TMP_AGE_S = 24 * 3600  # another host's temporary file is left alone for a day
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def check_output_file(path, what: str = "output path") -> Path:
    """Raise a one-line error unless a file can be written at `path` (before any compute is spent)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(
            f"{what} `{path}` is a directory, but a file is expected; give a file path such as "
            f"`{path / 'out.parquet'}`"
        )
    _check_writable_dir(path.parent, what, path)
    return path


def check_output_dir(path, what: str = "output directory") -> Path:
    """Raise a one-line error unless `path` is (or can be created as) a writable directory."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} `{path}` is a file, but a directory is expected; give a directory path")
    _check_writable_dir(path, what, path)
    return path


def refuse_overwrite(inputs: dict[str, object], outputs: dict[str, object]) -> None:
    """Refuse any output that is one of the inputs (same path, also through symlinks or hard links),
    or two outputs that are the same file. Keys are how the user named them (CLI flags)."""
    seen: list[tuple[str, Path]] = [(k, Path(v)) for k, v in inputs.items() if v is not None]
    for flag, value in outputs.items():
        if value is None:
            continue
        out = Path(value)
        for other, path in seen:
            if _same_file(out, path):
                kind = "input" if other in inputs else "output"
                raise ValueError(
                    f"{flag} `{out}` is the same file as the {kind} {other} `{path}`; writing it would "
                    f"replace that {kind}: choose another {flag} path"
                )
        seen.append((flag, out))


def atomic_write(path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it onto `path`.

    The file gets `0o666 & ~umask` permissions. On any error the temporary file is removed; a full
    disk raises `OSError(ENOSPC)` with a message that says "disk full" and names `path`.
    """
    path = check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path)
    tmp = path.parent / f".{path.name}{TMP_TAG}{_host()}.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies here
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        if _is_disk_full(err):
            raise OSError(
                errno.ENOSPC,
                f"disk full while writing `{path}` ({err}); nothing was written: free space on that file "
                "system or write to another path",
            ) from err
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return path


def remove_orphans(path) -> list[Path]:
    """Remove temporary files that an interrupted write to `path` left beside it; return them."""
    path = Path(path)
    removed = []
    try:
        candidates = list(path.parent.glob(f".{_glob_escape(path.name)}.*"))
    except OSError:
        return removed
    for tmp in candidates:
        rest = tmp.name[len(path.name) + 1 :]
        if not (_is_orphan(rest, tmp) or _LEGACY_TMP.fullmatch(rest)):
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def _glob_escape(name: str) -> str:
    """`name` as a glob pattern that matches only itself."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def _is_orphan(rest: str, tmp: Path) -> bool:
    if not rest.startswith(TMP_TAG):
        return False
    host, _, pid = rest[len(TMP_TAG) :].rpartition(".")[0].rpartition(".")
    if host != _host() or not pid.isdigit():
        try:
            return time.time() - tmp.stat().st_mtime > _FOREIGN_TMP_AGE_S
        except OSError:
            return False
    if int(pid) == os.getpid():
        return False  # this process's own write in progress (another thread)
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def _is_disk_full(err: OSError) -> bool:
    # pyarrow raises OSError without errno: "... [errno 28] No space left on device"
    return err.errno in _DISK_FULL or "No space left on device" in str(err) or "errno 28]" in str(err)


def _check_writable_dir(directory: Path, what: str, path: Path) -> None:
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(
            f"cannot write {what} `{path}`: `{existing}` is a file, not a directory; choose another path"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"cannot write {what} `{path}`: directory `{existing}` is not writable; choose a writable "
            "location or fix its permissions"
        )


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False
