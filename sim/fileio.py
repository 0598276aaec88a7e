"""Output files, written atomically and checked before a run starts.

Every writer in clustersim (charts, Chrome traces, timelines, reports, sweep tables,
calibration profiles, validation tables) goes through ``atomic_write_text`` /
``atomic_write_bytes`` or the ``atomic_path`` context manager: the data goes to a temporary
file in the destination's folder and ``os.replace`` renames it over the destination (atomic
on POSIX and Windows when both are on one file system), so a kill mid-write leaves either the
previous file or the new one, never a truncated one.

``check_output(path, flag, inputs=...)`` is called by the CLI before any simulation: it
refuses a path whose folder cannot be created or written, a path that is a directory, and a
path equal to one of the run's input files (``--trace my.json --model my.json``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from sim.errors import OutputPathError


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    The temporary name keeps ``path``'s suffix (matplotlib and pandas pick the format from it).
    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.",
                                   suffix=suffix or path.suffix or ".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputPathError(f"cannot write '{path}': {exc.strerror or exc}; choose a "
                              "writable path", field=str(path)) from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OutputPathError(f"cannot write '{path}': {exc.strerror or exc}; choose a "
                              "writable path", field=str(path)) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + os.replace)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8, no newline translation) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def check_output(path: str | Path | None, flag: str, *, inputs: Iterable = (),
                 directory: bool = False) -> Path | None:
    """Refuse an output path that cannot be written or that is one of the run's inputs.

    ``directory``: the path is a folder the command writes into (created if missing).
    Raises ``OutputPathError`` naming ``flag``; returns the path (None passes through).
    """
    if path is None:
        return None
    p = Path(str(path))
    if not str(path).strip():
        raise OutputPathError(f"{flag} '': give a file path", flag=flag)
    for inp in inputs:
        if inp is not None and _same_file(p, Path(str(inp))):
            raise OutputPathError(f"{flag} '{path}' is also an input of this run ({inp}); "
                                  "writing it would destroy the input: choose another path",
                                  flag=flag)
    if directory:
        _check_dir(p, flag, path)
        return p
    if p.is_dir():
        raise OutputPathError(f"{flag} '{path}' is a directory; give a file path", flag=flag)
    _check_dir(p.parent if str(p.parent) else Path("."), flag, path)
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputPathError(f"{flag} '{path}' exists and is not writable; choose another "
                              "path or fix its permissions", flag=flag)
    return p


def _check_dir(d: Path, flag: str, shown) -> None:
    """The nearest existing ancestor must be a writable directory."""
    probe = d
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OutputPathError(f"{flag} '{shown}': '{probe}' is a file, not a directory; "
                              "choose another path", flag=flag)
    try:  # access() says yes to root everywhere; creating a file is the real test
        fd, tmp = tempfile.mkstemp(prefix=".clustersim-probe-", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise OutputPathError(f"{flag} '{shown}': directory '{probe}' is not writable "
                              f"({exc.strerror}); choose a path you can write",
                              flag=flag) from None
