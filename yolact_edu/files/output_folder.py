"""Output folders that never clobber what the user owns.

Every file yolact_edu writes into an output folder is recorded, before it is written, in that
folder's ledger ``.yolact_edu_outputs.json``. A later run may replace or delete what the ledger
lists (its own earlier output). A file that is there but not listed belongs to the user: it is
replaced only with ``force=True`` (the ``--force`` of the commands) and never deleted.
Inputs passed as ``protect`` are never replaced, not even with ``force``; they are compared by
identity (device and inode), not by name, so ``clip.mp4``, ``./clip.mp4`` and a hard link to it
are one file. A protected folder protects every file already in it that the ledger does not list
(a command may read any of them); new files may still be written there.

    >>> out = OutputFolder("outputs/predict", protect=[Path("photo.png")])
    >>> out.write_bytes("photo.png", png_bytes)     # OutputConflict: it would replace an input
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from .atomic_write import write_atomically

LEDGER = ".yolact_edu_outputs.json"
LEDGER_FORMAT = "yolact_edu outputs/1"


class OutputConflict(ValueError):
    """Writing an output would replace a file yolact_edu does not own (or an input)."""


def file_identity(path: str | os.PathLike) -> tuple:
    """What makes a file itself: (device, inode) when it exists (links and other spellings of the
    path included), else its resolved path."""
    try:
        info = os.stat(path)
        return ("inode", info.st_dev, info.st_ino)
    except OSError:
        return ("path", str(Path(path).resolve()))


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` are the same file on disk (see :func:`file_identity`)."""
    return file_identity(a) == file_identity(b)


def is_inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """True when ``path`` is ``folder`` or lies below it (both resolved, links followed)."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


class OutputFolder:
    """A folder that yolact_edu writes into, with its ledger of the files it wrote there.

    root: the folder (created on the first write).
    force: replace files that exist but are not in the ledger (the user's), instead of refusing.
    protect: input files, and folders whose files, that must never be replaced, whatever ``force``
        says (the commands pass every path of their command line: ``cli.common.output_folder``).
    hint: how the user can allow the replacement, for the error message.
    """

    def __init__(self, root: str | os.PathLike, *, force: bool = False,
                 protect: Iterable[str | os.PathLike] = (), hint: str = "pass --force to replace it"):
        self.root = Path(root)
        self.force = force
        self.hint = hint
        self.protect = [Path(p) for p in protect]
        self._protected = {file_identity(p): p for p in self.protect}   # one stat per input, not per pair
        self._protected_folders = [p for p in self.protect if p.is_dir()]
        self._owned: set[str] | None = None

    # -- the ledger -------------------------------------------------------------------------
    @property
    def ledger_path(self) -> Path:
        return self.root / LEDGER

    def owned(self) -> set[str]:
        """Names (relative to ``root``, with '/') of the files the ledger lists."""
        if self._owned is None:
            self._owned = set()
            try:
                data = json.loads(self.ledger_path.read_text(encoding="utf-8"))
                if isinstance(data, dict) and data.get("format") == LEDGER_FORMAT:
                    self._owned = {str(name) for name in data.get("files", [])}
            except (OSError, ValueError):
                pass        # no ledger (or an unreadable one): nothing here counts as ours
        return self._owned

    def _save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        payload = {"format": LEDGER_FORMAT,
                   "note": "files yolact_edu wrote here; it may replace or delete only these",
                   "files": sorted(self.owned())}
        write_atomically(self.ledger_path, json.dumps(payload, indent=1), fsync=False)

    def _name(self, name: str | os.PathLike) -> str:
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise ValueError(f"output name {str(name)!r} must be a plain path inside {self.root}")
        return relative.as_posix()

    def owns(self, name: str | os.PathLike) -> bool:
        return self._name(name) in self.owned()

    # -- checking and claiming ----------------------------------------------------------------
    def problem(self, name: str | os.PathLike) -> str | None:
        """Why writing ``root/name`` is not allowed, or None if it is."""
        path = self.root / self._name(name)
        blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            return f"{blocking} is a file, not a folder outputs can go into"
        source = self._protected.get(file_identity(path))
        if source is not None:
            return f"{path} is the input {source}: writing there would replace it; choose another output"
        if path.exists() and not self.owns(name):      # its own earlier output stays replaceable
            folder = next((f for f in self._protected_folders if is_inside(path, f)), None)
            if folder is not None:
                return (f"{path} lies in the input folder {folder}: replacing it could change what this "
                        "command reads; choose another output")
        if path.is_dir():
            return f"{path} is a folder, not a file it could write"
        if (path.exists() or path.is_symlink()) and not self.force and not self.owns(name):
            return f"{path} exists and was not written by yolact_edu; {self.hint} (or choose another output)"
        return None

    def check(self, names: Iterable[str | os.PathLike]) -> None:
        """Raise :class:`OutputConflict` for the first of ``names`` that may not be written; call it
        before any work so a run never stops half-way on a name it could have checked."""
        for name in names:
            why = self.problem(name)
            if why:
                raise OutputConflict(why)

    def claim(self, *names: str | os.PathLike) -> list[Path]:
        """Check ``names`` and record them in the ledger (before writing, so a run killed mid-write
        still owns what it left); returns their paths, parent folders created."""
        self.check(names)
        relative = [self._name(n) for n in names]
        new = set(relative) - self.owned()
        if new:
            self.owned().update(new)
            self._save()
        paths = [self.root / r for r in relative]
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
        return paths

    def path(self, name: str | os.PathLike) -> Path:
        """:meth:`claim` one name; returns its path."""
        return self.claim(name)[0]

    def write_bytes(self, name: str | os.PathLike, data: bytes | str, *, fsync: bool = False) -> Path:
        """Claim ``name`` and write ``data`` to it atomically."""
        return write_atomically(self.path(name), data, fsync=fsync)

    def write_text(self, name: str | os.PathLike, text: str) -> Path:
        return self.write_bytes(name, text)

    # -- removing -------------------------------------------------------------------------
    def remove(self, name: str | os.PathLike) -> bool:
        """Delete ``root/name`` if the ledger lists it (True); a file not ours is left alone (False)."""
        relative = self._name(name)
        if relative not in self.owned():
            return False
        (self.root / relative).unlink(missing_ok=True)
        self.owned().discard(relative)
        self._save()
        return True

    def clear(self) -> list[Path]:
        """Delete every file the ledger lists, and the folders that leaves empty; the user's files
        stay. Returns the deleted paths."""
        removed = []
        for relative in sorted(self.owned()):
            path = self.root / relative
            if path.is_file() or path.is_symlink():
                path.unlink()
                removed.append(path)
            for parent in path.parents:
                if parent == self.root or self.root not in parent.parents:
                    break
                try:
                    parent.rmdir()          # only succeeds when empty
                except OSError:
                    break
        self.owned().clear()
        if self.ledger_path.exists():
            self._save()
        return removed


__all__ = ["OutputFolder", "OutputConflict", "LEDGER", "file_identity", "same_file", "is_inside"]
