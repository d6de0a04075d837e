"""Atomic file writes: a reader (or an interrupted run) never sees a half-written file.

Data go to a temporary file beside the target, are optionally fsynced, and then take the
target's name with ``os.replace`` — an atomic rename on POSIX and Windows alike.

Temporary files are named ``.<target name>.<pid>-<token>.part<suffix>``. A run killed with
``kill -9`` cannot remove its own, so the first write of a process into a folder removes the
temporary files there whose process no longer runs: orphans live until the next run, not forever.
Files are created with mode 0o666 minus the umask, as ``open()`` would (not 0o600).
"""
from __future__ import annotations

import os
import re
import secrets
import threading
from pathlib import Path

_TEMP_NAME = re.compile(r"^\..+\.(?P<pid>\d+)-[0-9a-f]{8}\.part(\.[^.]*)?$")
_swept: set[Path] = set()
_sweep_lock = threading.Lock()


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass                 # it exists but is someone else's: not ours to judge
    return True


def sweep_orphans(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files (see the module docstring) in ``folder`` left by processes that no
    longer run; returns what was deleted. Files of running processes and all other files stay."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match and entry.is_file(follow_symlinks=False) and not _process_alive(int(match["pid"])):
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass
    return removed


def temporary_path(target: str | os.PathLike) -> Path:
    """A fresh, unused temporary name beside ``target`` that keeps its suffix (a video writer
    picks its container from it). The first call of this process for a folder sweeps orphans."""
    target = Path(target)
    folder = target.parent.resolve()
    with _sweep_lock:
        if folder not in _swept:
            sweep_orphans(folder)
            _swept.add(folder)
    return target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.part{target.suffix}")


def create_temporary(target: str | os.PathLike) -> Path:
    """Create an empty temporary file beside ``target`` (mode 0o666 minus the umask); returns it."""
    while True:
        tmp = temporary_path(target)
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:     # a token collision: draw another
            continue


def write_atomically(path: str | os.PathLike, data: bytes | str, *, fsync: bool = True) -> Path:
    """Write ``data`` (bytes, or str as UTF-8) to ``path`` atomically; returns ``path``.

    ``fsync`` flushes to disk before the rename, so the new content also survives a power
    cut; skip it for many small files that can be regenerated.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = create_temporary(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(payload)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename is None and exc.errno is not None:   # a failed write() (full disk): name the target
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


__all__ = ["write_atomically", "temporary_path", "create_temporary", "sweep_orphans"]
