"""Tests for yolact_edu.files.download against a real HTTP server on 127.0.0.1.

The server serves bytes generated here and lets each test inject faults
(dropped connections, stalls, error statuses, Range ignored) and inspect the
requests it received, so resume and retry behaviour is observed, not assumed.
"""

from __future__ import annotations

import hashlib
import random
import sys
import time
from pathlib import Path

import pytest
from file_server import FileServer

from yolact_edu.files.download import DownloadError, download_file

DATA = random.Random(20240611).randbytes(300_000)
K = 100_000


@pytest.fixture
def server():
    with FileServer({"/weights.pth": DATA}, url_path="/weights.pth") as server:
        server.drop_after = K  # where dropped and stalled bodies stop
        yield server


def part_of(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def test_plain_download(server, tmp_path):
    dest = tmp_path / "nested" / "dir" / "weights.pth"
    result = download_file(server.url, dest, progress=False)
    assert result == dest
    assert dest.read_bytes() == DATA
    assert not part_of(dest).exists()
    assert server.ranges == [None]
    assert server.user_agents[0] is not None and "yolact_edu" in server.user_agents[0]


def test_dropped_connection_is_retried_and_resumed(server, tmp_path):
    server.drops = 1
    dest = tmp_path / "weights.pth"
    download_file(server.url, dest, backoff=0, progress=False)
    assert dest.read_bytes() == DATA
    assert server.ranges == [None, f"bytes={K}-"]
    assert not part_of(dest).exists()


def test_read_timeout_is_retried_and_resumed(server, tmp_path):
    server.stalls = 1
    dest = tmp_path / "weights.pth"
    download_file(server.url, dest, backoff=0, timeout=0.5, progress=False)
    assert dest.read_bytes() == DATA
    assert server.ranges == [None, f"bytes={K}-"]


def test_leftover_part_is_resumed(server, tmp_path):
    dest = tmp_path / "weights.pth"
    part_of(dest).write_bytes(DATA[:K])
    download_file(server.url, dest, progress=False)
    assert dest.read_bytes() == DATA
    assert server.ranges == [f"bytes={K}-"]
    assert not part_of(dest).exists()


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.ignore_range = True
    dest = tmp_path / "weights.pth"
    part_of(dest).write_bytes(DATA[:K])
    download_file(server.url, dest, progress=False)
    assert server.ranges == [f"bytes={K}-"]
    assert dest.read_bytes() == DATA  # not DATA[:K] + DATA


def test_416_with_complete_part_needs_no_more_bytes(server, tmp_path):
    dest = tmp_path / "weights.pth"
    part_of(dest).write_bytes(DATA)
    download_file(server.url, dest, progress=False)
    assert server.ranges == [f"bytes={len(DATA)}-"]
    assert dest.read_bytes() == DATA


def test_416_with_oversized_part_restarts_from_zero(server, tmp_path):
    dest = tmp_path / "weights.pth"
    part_of(dest).write_bytes(DATA + b"stale tail")
    download_file(server.url, dest, progress=False)
    assert server.ranges == [f"bytes={len(DATA) + 10}-", None]
    assert dest.read_bytes() == DATA


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_status_once_then_ok(server, tmp_path, status):
    server.statuses = [status]
    dest = tmp_path / "weights.pth"
    download_file(server.url, dest, backoff=0, progress=False)
    assert dest.read_bytes() == DATA
    assert len(server.ranges) == 2


def test_retries_zero_means_a_single_attempt(server, tmp_path):
    server.statuses = [503]
    dest = tmp_path / "weights.pth"
    with pytest.raises(DownloadError, match="503"):
        download_file(server.url, dest, retries=0, backoff=0, progress=False)
    assert len(server.ranges) == 1


def test_404_fails_at_once(server, tmp_path):
    server.statuses = [404] * 5
    dest = tmp_path / "weights.pth"
    with pytest.raises(DownloadError) as info:
        download_file(server.url, dest, backoff=0, progress=False)
    message = str(info.value)
    assert server.url in message and "404" in message and str(dest) in message
    assert len(server.ranges) == 1  # a client error is not retried
    assert not dest.exists()


def test_malformed_url(tmp_path):
    with pytest.raises(DownloadError, match="not-a-url"):
        download_file("not-a-url", tmp_path / "w.pth", backoff=0, progress=False)


def test_sha256_match_succeeds(server, tmp_path):
    dest = tmp_path / "weights.pth"
    download_file(
        server.url,
        dest,
        sha256=hashlib.sha256(DATA).hexdigest().upper(),
        expected_size=len(DATA),
        progress=False,
    )
    assert dest.read_bytes() == DATA


def test_sha256_mismatch(server, tmp_path):
    dest = tmp_path / "weights.pth"
    wrong = "0" * 64
    with pytest.raises(DownloadError) as info:
        download_file(server.url, dest, sha256=wrong, progress=False)
    message = str(info.value)
    assert wrong in message and hashlib.sha256(DATA).hexdigest() in message
    assert server.url in message
    assert not dest.exists() and not part_of(dest).exists()


def test_expected_size_mismatch(server, tmp_path):
    dest = tmp_path / "weights.pth"
    with pytest.raises(DownloadError) as info:
        download_file(server.url, dest, expected_size=len(DATA) + 1, progress=False)
    message = str(info.value)
    assert str(len(DATA) + 1) in message and str(len(DATA)) in message
    assert not dest.exists() and not part_of(dest).exists()


def test_verify_receives_the_complete_part(server, tmp_path):
    dest = tmp_path / "weights.pth"
    seen = []
    download_file(
        server.url,
        dest,
        verify=lambda p: seen.append((p, p.read_bytes(), dest.exists())),
        progress=False,
    )
    # Checked in place as the .part, before anything appears under the final name.
    assert seen == [(part_of(dest), DATA, False)]
    assert dest.read_bytes() == DATA


def test_verify_failure(server, tmp_path):
    def verify(path: Path) -> None:
        raise ValueError("not a valid checkpoint")

    dest = tmp_path / "weights.pth"
    with pytest.raises(DownloadError, match="not a valid checkpoint") as info:
        download_file(server.url, dest, verify=verify, progress=False)
    assert isinstance(info.value.__cause__, ValueError)
    assert not dest.exists() and not part_of(dest).exists()


def test_existing_dest_is_returned_without_a_request(server, tmp_path):
    dest = tmp_path / "weights.pth"
    dest.write_bytes(b"already here")
    assert download_file(server.url, dest, progress=False) == dest
    assert server.ranges == []
    assert dest.read_bytes() == b"already here"


def test_overwrite_replaces_existing_dest(server, tmp_path):
    dest = tmp_path / "weights.pth"
    dest.write_bytes(b"old")
    download_file(server.url, dest, overwrite=True, progress=False)
    assert dest.read_bytes() == DATA
    assert server.ranges == [None]


def test_exhausted_retries_keep_part_for_a_later_resume(server, tmp_path):
    server.drops = 10**9
    server.drop_after = 50_000
    dest = tmp_path / "weights.pth"
    with pytest.raises(DownloadError) as info:
        download_file(server.url, dest, retries=2, backoff=0, progress=False)
    assert server.url in str(info.value)
    assert len(server.ranges) == 3
    assert part_of(dest).stat().st_size == 150_000  # each attempt added its 50 kB
    assert not dest.exists()

    server.drops = 0
    download_file(server.url, dest, backoff=0, progress=False)
    assert server.ranges[-1] == "bytes=150000-"
    assert dest.read_bytes() == DATA
    assert not part_of(dest).exists()


def test_progress_without_tqdm_installed(server, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `import tqdm` fail
    dest = tmp_path / "weights.pth"
    download_file(server.url, dest, progress=True)
    assert dest.read_bytes() == DATA


def test_progress_bar_names_the_file(server, tmp_path, capsys):
    pytest.importorskip("tqdm")
    dest = tmp_path / "weights.pth"
    part_of(dest).write_bytes(DATA[:K])
    download_file(server.url, dest, progress=True, chunk_size=4096)
    assert "weights.pth" in capsys.readouterr().err
    assert dest.read_bytes() == DATA


# -- issue 24: nothing unverified is taken as downloaded; no server can hang a download -----------
def test_an_existing_dest_must_pass_the_checks_to_count_as_downloaded(server, tmp_path):
    dest = tmp_path / "weights.pth"
    dest.write_bytes(b"junk!")                      # 5 bytes under the right name

    def verify(path):
        if path.read_bytes() != DATA:
            raise ValueError("not a valid checkpoint")
    with pytest.raises(DownloadError, match=r"weights.pth is already there but is not a good copy .*not a valid "
                                            r"checkpoint.*it is kept.*--force") as info:
        download_file(server.url, dest, verify=verify, progress=False)
    assert str(dest) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download_file(server.url, dest, sha256=hashlib.sha256(DATA).hexdigest(), progress=False)
    assert server.ranges == [] and dest.read_bytes() == b"junk!"      # no request; the file is the user's
    assert download_file(server.url, dest, verify=verify, overwrite=True, progress=False) == dest
    assert dest.read_bytes() == DATA
    assert download_file(server.url, dest, verify=verify, progress=False) == dest      # a good copy counts
    assert server.ranges == [None]


def test_a_trickling_server_is_cut_and_retried_not_waited_for(server, tmp_path):
    server.trickle = 0.05                           # 20 bytes/s, a read never times out
    dest = tmp_path / "weights.pth"
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"too slow: \d+ bytes in \d+ s, under 1000 bytes/s.*gave up after 2 "
                                            r"attempts; partial data kept in"):
        download_file(server.url, dest, retries=1, backoff=0, progress=False, min_rate=1000, min_rate_grace=0.5)
    assert time.monotonic() - started < 10
    assert len(server.ranges) == 2 and server.ranges[1] is not None         # the retry resumed


def test_the_failure_names_a_part_file_only_when_there_is_one(server, tmp_path):
    server.statuses = [503, 503]
    dest = tmp_path / "weights.pth"
    with pytest.raises(DownloadError, match=r"gave up after 2 attempts; no data received\)$"):
        download_file(server.url, dest, retries=1, backoff=0, progress=False)
    assert not part_of(dest).exists()
