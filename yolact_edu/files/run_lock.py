"""One writer per run folder: a training run holds a lock on its output folder while it runs.

Two ``yolact-edu train`` runs started into the same ``--output`` would interleave their logs and
checkpoints and prune each other's files. The lock is an advisory ``flock`` on a file in the
folder, so the operating system releases it when its process ends, however it ends (``kill -9``
included): a lock is never left stale. Where ``fcntl`` does not exist (Windows) runs are not locked.

    >>> with RunLock("outputs/train"):      # RunLocked if another process holds it
    ...     trainer.run()
"""
from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:         # Windows: no flock; runs there are not locked
    fcntl = None

LOCK_NAME = ".yolact_edu_run.lock"


class RunLocked(OSError):
    """Another process is writing to the run folder."""


class RunLock:
    """An exclusive lock on ``folder`` (created if needed), taken by :meth:`acquire` (or ``with``),
    released by :meth:`release` or when the process ends. The lock file holds the holder's PID,
    which the refusal names."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._handle = None

    def acquire(self) -> RunLock:
        if self._handle is not None or fcntl is None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunLocked(f"another run (process {holder}) is writing to {self.folder}; wait for it to end or "
                            "choose another output folder") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()


__all__ = ["RunLock", "RunLocked", "LOCK_NAME"]
