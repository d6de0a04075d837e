"""The official COCO annotation files: download the 2017 archive (resumable) and extract it
safely, every member checked before anything is written (a crafted archive must not write
outside its folder); then find ``instances_<split>.json`` in it. :mod:`.coco_subset` builds a
small subset from one of them.

    >>> from yolact_edu.data.coco_annotations import annotations_file, download_coco_annotations
    >>> ann_dir = download_coco_annotations("data/coco")            # ~250 MB once, then cached
    >>> annotations_file(ann_dir, "val2017")                        # data/coco/annotations/instances_val2017.json
"""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
import urllib.parse
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from ..files.atomic_write import write_atomically
from ..files.download import download_file

COCO_ANNOTATIONS_URL = "http://images.cocodataset.org/annotations/annotations_trainval2017.zip"


class UnsafeArchiveError(ValueError):
    """An archive member would be written outside the destination, or is a link/device."""


def _check_member(info: zipfile.ZipInfo, root: Path) -> None:
    """Raise UnsafeArchiveError unless ``info`` is a plain file or folder that stays inside ``root``."""
    name = info.filename
    # Zip names are meant to use "/", but extractors on Windows also split on "\",
    # so both count as separators when looking for ".." and absolute names.
    parts = re.split(r"[\\/]", name)
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).anchor or name.startswith("\\"):
        raise UnsafeArchiveError(f"refusing archive member {name!r}: absolute path or drive letter")
    if ".." in parts:
        raise UnsafeArchiveError(f"refusing archive member {name!r}: '..' would leave the destination")
    # Lexical, not resolve(): a folder the user symlinked into place (annotations -> /big/disk) is fine.
    root = root.absolute()
    if not Path(os.path.normpath(root / name)).is_relative_to(root):
        raise UnsafeArchiveError(f"refusing archive member {name!r}: resolves outside {root}")
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        raise UnsafeArchiveError(f"refusing archive member {name!r}: symbolic link")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise UnsafeArchiveError(f"refusing archive member {name!r}: not a regular file (mode {kind:o})")


def _check_zip_integrity(path: Path) -> None:
    """download_file's verify hook: a corrupt archive is deleted, not kept for resuming."""
    with zipfile.ZipFile(path) as archive:
        bad = archive.testzip()  # reads every member and checks its CRC
    if bad is not None:
        raise zipfile.BadZipFile(f"member {bad!r} is corrupt")


def _extract_safely(archive_path: Path, dest_dir: Path, marker: Path) -> list[str]:
    """Extract every file of the archive into ``dest_dir``; return the files' relative names.

    All members are checked before the first byte is written, and files are
    unpacked into a hidden temporary folder inside ``dest_dir`` and moved into
    place with ``os.replace``, so no file under ``dest_dir`` is ever half-written.
    ``marker`` lists what was extracted. A file already at a member's place is replaced only if
    the marker names it (an earlier extraction's); anything else there is the user's, and
    FileExistsError names it. The marker is written before the first file moves into place, so
    a run cut during the moves still owns what it moved.
    """
    replaceable: set[str] = set()
    if marker.exists():
        replaceable = set(json.loads(marker.read_text()))
    try:
        archive = zipfile.ZipFile(archive_path)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{archive_path} is not a valid zip archive ({exc}); delete it to download it again") from exc
    with archive:
        members = archive.infolist()
        for info in members:
            _check_member(info, dest_dir)
        files = [info for info in members if not info.is_dir()]
        for info in files:
            if (dest_dir / info.filename).exists() and info.filename not in replaceable:
                raise FileExistsError(f"{dest_dir / info.filename} exists and was not extracted by yolact_edu; "
                                      f"it is kept: move it away or extract {archive_path} elsewhere")
        staging = Path(tempfile.mkdtemp(prefix=f".{archive_path.name}.extract-", dir=dest_dir))
        try:
            for info in files:
                staged = staging / info.filename
                staged.parent.mkdir(parents=True, exist_ok=True)
                # zipfile.extract would silently rewrite unsafe names; we have
                # refused them above, so copying the stream is all that is left.
                with archive.open(info) as source, open(staged, "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
            names = [info.filename for info in files]
            write_atomically(marker, json.dumps(sorted(replaceable | set(names)), indent=1))
            for info in files:
                final = dest_dir / info.filename
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / info.filename, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return [info.filename for info in files]


def download_coco_annotations(
    dest_dir: str | os.PathLike,
    url: str = COCO_ANNOTATIONS_URL,
    *,
    progress: bool = True,
    retries: int = 3,
) -> Path:
    """Download and extract the COCO annotation archive; return ``dest_dir / "annotations"``.

    The archive is kept in ``dest_dir`` under its own name (a broken transfer is
    resumed by the next call). Once extracted, a marker file lists what was
    unpacked, and later calls whose files are all still present return at once
    without touching the network. An interrupted extraction leaves no marker and
    is redone. Raises UnsafeArchiveError (naming the member) for members with
    absolute paths, '..' components or drive letters, and for links and devices,
    before anything is extracted; DownloadError if the download fails.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    archive_name = Path(urllib.parse.urlparse(url).path).name or "annotations.zip"
    marker = dest_dir / f".{archive_name}.extracted"
    annotations_dir = dest_dir / "annotations"

    if marker.exists() and all((dest_dir / name).is_file() for name in json.loads(marker.read_text())):
        return annotations_dir

    archive_path = download_file(
        url, dest_dir / archive_name, retries=retries, progress=progress, verify=_check_zip_integrity
    )
    for stale in dest_dir.glob(f".{archive_name}.extract-*"):  # left by an interrupted extraction
        shutil.rmtree(stale, ignore_errors=True)
    _extract_safely(archive_path, dest_dir, marker)
    if not annotations_dir.is_dir():
        raise ValueError(f"{archive_path} has no 'annotations/' folder; is {url} a COCO annotation archive?")
    return annotations_dir


def annotations_file(annotations_dir: str | os.PathLike, split: str = "val2017") -> Path:
    """Path of ``instances_<split>.json`` in ``annotations_dir``; FileNotFoundError if missing."""
    path = Path(annotations_dir) / f"instances_{split}.json"
    if not path.is_file():
        found = sorted(p.name for p in Path(annotations_dir).glob("instances_*.json"))
        raise FileNotFoundError(
            f"no COCO annotation file {path}; found {found or 'none'} there. "
            "download_coco_annotations() fetches the official ones."
        )
    return path


__all__ = ["COCO_ANNOTATIONS_URL", "UnsafeArchiveError", "download_coco_annotations", "annotations_file"]
