"""Atomic file writes: a reader (or an interrupted run) never sees a half-written file.

Data go to a temporary file beside the target, are optionally fsynced, and then take the
target's name with ``os.replace`` — an atomic rename on POSIX and Windows alike.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: str | os.PathLike, data: bytes | str, *, fsync: bool = True) -> Path:
    """Write ``data`` (bytes, or str as UTF-8) to ``path`` atomically; returns ``path``.

    ``fsync`` flushes to disk before the rename, so the new content also survives a power
    cut; skip it for many small files that can be regenerated.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
