"""Resumable, atomic file downloads using only the standard library.

Bytes are streamed into ``<dest>.part`` beside the destination. When a transfer
breaks, the partial file stays on disk and the next attempt (or a later call)
asks the server only for the missing tail with an HTTP ``Range`` request. The
finished file is checked (size, SHA-256, optional caller hook), fsynced and only
then renamed onto ``dest`` with ``os.replace``, so ``dest`` is never half-written.
A file already at ``dest`` is checked the same way before it is taken as downloaded, and a
transfer slower than ``min_rate`` is cut and retried, so a trickling server cannot hang it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

__all__ = ["DownloadError", "download_file", "file_sha256"]

USER_AGENT = "yolact_edu"


class DownloadError(RuntimeError):
    """A download failed for good; the message names the URL, the destination and the cause."""


class _Transient(Exception):
    """A failure worth retrying: whatever already reached the .part file is kept."""


def _error(url: str, dest: Path, what: str) -> DownloadError:
    return DownloadError(f"downloading {url} to {dest} failed: {what}")


def _parse_content_range(header: str | None) -> tuple[int | None, int | None]:
    """Return (first byte, total size) from ``bytes a-b/total`` or ``bytes */total``."""
    if not header or not header.startswith("bytes "):
        return None, None
    span, _, total = header[len("bytes ") :].partition("/")
    first = span.split("-", 1)[0].strip()
    return (
        int(first) if first.isdigit() else None,
        int(total) if total.strip().isdigit() else None,
    )


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(enabled: bool, total: int | None, initial: int, name: str):
    if enabled:
        try:
            from tqdm import tqdm  # optional dependency: without it we just stay quiet
        except ImportError:
            pass
        else:
            return tqdm(
                total=total,
                initial=initial,
                desc=name,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                leave=False,
            )
    return _NoBar()


def _attempt(
    url: str,
    dest: Path,
    part: Path,
    expected_size: int | None,
    timeout: float,
    chunk_size: int,
    progress: bool,
    min_rate: tuple[float, float] = (0.0, 0.0),
) -> None:
    """Make one request that extends ``part``; raise _Transient if it should be retried.
    min_rate: (bytes per second, seconds of grace): slower than that on average, the attempt stops."""
    offset = part.stat().st_size if part.exists() else 0
    started = time.monotonic()
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        request = urllib.request.Request(url, headers=headers)
    except ValueError as exc:  # e.g. no scheme: retrying cannot help
        raise _error(url, dest, f"invalid URL: {exc}") from exc
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416 and offset:
            # 416 means we asked to start at or past the end of the file.
            _, total = _parse_content_range(err.headers.get("Content-Range"))
            if offset == (expected_size if expected_size is not None else total):
                return  # an earlier run got every byte but stopped before the rename
            # The part is not a prefix of this file. Starting again from 0 sends no
            # Range header, so this recursion cannot come back here.
            part.unlink()
            return _attempt(
                url, dest, part, expected_size, timeout, chunk_size, progress, min_rate
            )
        if err.code == 429 or err.code >= 500:
            raise _Transient(f"HTTP {err.code} {err.reason}") from err
        raise _error(url, dest, f"HTTP {err.code} {err.reason}") from err
    except (OSError, http.client.HTTPException) as exc:
        raise _Transient(f"request failed: {exc}") from exc

    with response:
        length_header = response.headers.get("Content-Length", "")
        length = int(length_header) if length_header.isdigit() else None
        if response.status == 206:
            first, total = _parse_content_range(response.headers.get("Content-Range"))
            if first != offset:
                # Splicing a range we did not ask for would corrupt the file.
                part.unlink()
                raise _Transient(
                    f"server sent a range starting at {first}, not {offset}"
                )
            if total is None and length is not None:
                total = offset + length
            mode = "ab"
        else:
            # Any other success carries the whole file, even if we sent a Range.
            offset, total, mode = 0, length, "wb"

        # read1 hands over whatever has arrived; read(n) would block for n bytes and
        # lose the whole buffered chunk if the connection then timed out.
        read = getattr(response, "read1", response.read)
        received = offset
        bar = _progress_bar(progress, total, offset, dest.name)
        try:
            with open(part, mode) as out:
                while True:
                    try:
                        chunk = read(chunk_size)
                    except (OSError, http.client.HTTPException) as exc:
                        raise _Transient(
                            f"connection lost after {received} bytes: {exc}"
                        ) from exc
                    if not chunk:
                        break
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
                    elapsed = time.monotonic() - started
                    if min_rate[0] and elapsed > min_rate[1] and (received - offset) / elapsed < min_rate[0]:
                        raise _Transient(f"too slow: {received - offset} bytes in {elapsed:.0f} s, under "
                                         f"{min_rate[0]:.0f} bytes/s")
        finally:
            bar.close()
    # http.client signals a peer that hung up early only as end-of-stream, so the
    # byte count is the one reliable way to tell a finished body from a dropped one.
    if total is not None and received < total:
        raise _Transient(f"connection closed after {received} of {total} bytes")


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, as hex (read a megabyte at a time)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _content_problem(path: Path, expected_size: int | None, sha256: str | None,
                     verify: Callable[[Path], None] | None) -> tuple[str, BaseException | None] | None:
    """What is wrong with the file at ``path`` as a download, (why, the exception behind it), or None."""
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        return f"size mismatch: expected {expected_size} bytes, got {size}", None
    if sha256 is not None:
        actual = file_sha256(path)
        if actual != sha256.strip().lower():
            return f"sha256 mismatch: expected {sha256}, got {actual}", None
    if verify is not None:
        try:
            verify(path)
        except Exception as exc:  # noqa: BLE001 - any failure of the caller's check rejects the file
            return f"verification failed: {type(exc).__name__}: {exc}", exc
    return None


def _fsync(path: Path) -> None:
    # Without this a crash after the rename could leave a correctly named file
    # whose data never reached the disk.
    with open(path, "r+b") as fh:
        os.fsync(fh.fileno())


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    expected_size: int | None = None,
    sha256: str | None = None,
    verify: Callable[[Path], None] | None = None,
    retries: int = 3,
    timeout: float = 30.0,
    backoff: float = 1.0,
    chunk_size: int = 1 << 20,
    progress: bool = True,
    overwrite: bool = False,
    min_rate: float = 1024.0,
    min_rate_grace: float = 30.0,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest`` as a Path.

    An existing ``dest`` is taken as downloaded only if it passes the checks a download must pass
    (``expected_size``, ``sha256``, ``verify``); one that fails them is kept and refused with a
    DownloadError naming it, unless ``overwrite``, which downloads it again. An attempt whose
    average rate after ``min_rate_grace`` seconds is under ``min_rate`` bytes/s (0: no limit) is
    cut and retried like a dropped connection. Dropped
    connections, timeouts, HTTP 429 and 5xx are retried ``retries`` more times,
    waiting ``backoff * 2**n`` seconds before retry ``n`` (from 0), each retry
    resuming from the bytes already in ``<dest>.part``. If every attempt fails
    the .part file is kept so a later call resumes it. ``verify`` receives the
    completed .part path and should raise if the content is unusable.

    Raises DownloadError on any failure.
    """
    dest = Path(dest)
    if dest.exists() and not overwrite:
        problem = _content_problem(dest, expected_size, sha256, verify)
        if problem is None:
            return dest
        raise DownloadError(f"{dest} is already there but is not a good copy of {url} ({problem[0]}); it is "
                            "kept: move it away, or pass --force to download it again") from problem[1]
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")

    for attempt in range(retries + 1):
        try:
            _attempt(url, dest, part, expected_size, timeout, chunk_size, progress, (min_rate, min_rate_grace))
            break
        except _Transient as exc:
            if attempt == retries:
                kept = (f"partial data kept in {part} for resuming" if part.exists() and part.stat().st_size
                        else "no data received")
                raise _error(url, dest, f"{exc} (gave up after {retries + 1} attempts; {kept})") from exc
            time.sleep(backoff * 2**attempt)

    problem = _content_problem(part, expected_size, sha256, verify)
    if problem is not None:
        # Bad content must not be resumed by the next call, so the part goes too.
        part.unlink(missing_ok=True)
        raise _error(url, dest, problem[0]) from problem[1]

    _fsync(part)
    os.replace(part, dest)
    return dest
