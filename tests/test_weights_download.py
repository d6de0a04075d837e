"""Fetching official checkpoints (weights.download_official, official_url and the
``yolact-edu weights download`` command) from a local HTTP server.

Nothing here touches the network: a ThreadingHTTPServer on 127.0.0.1 serves a
checkpoint with the real yolact_resnet50 keys and shapes (random values, about
125 MB) under its released file name, and records every request.
"""

from __future__ import annotations

import io
import random
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from file_server import FileServer
from official_keys import make_state_dict

import yolact_edu.files.download
from yolact_edu.cli.main import main
from yolact_edu.files.download import DownloadError
from yolact_edu.weights import (
    OFFICIAL_FILES,
    download_official,
    load_official,
    official_url,
    weights_dir,
)

NAME = "yolact_resnet50"
FILE = "yolact_resnet50_54_800000.pth"
ENV = "YOLACT_EDU_WEIGHTS_URL"


@pytest.fixture(scope="module")
def checkpoint():
    """(state dict, serialized bytes) of a yolact_resnet50-shaped checkpoint."""
    sd = make_state_dict(NAME, seed=11)
    buf = io.BytesIO()
    torch.save(sd, buf)
    return sd, buf.getvalue()


@pytest.fixture
def server():
    with FileServer(url_path="/mirror") as server:
        yield server


def part_of(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def assert_loads_as(path: Path, sd: dict) -> None:
    model = load_official(path)
    assert model.cfg.name == NAME
    got = model.state_dict()
    assert set(got) == set(sd)
    for key, value in sd.items():
        assert torch.equal(got[key], value), key


# ---------------------------------------------------------------------------------------------
# official_url

def test_official_url_is_the_hugging_face_mirror(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert official_url("yolact_base") == (
        "https://huggingface.co/dbolya/yolact-base/resolve/main/yolact_base_54_800000.pth?download=true")
    assert official_url("yolact_plus_resnet50") == (
        "https://huggingface.co/dbolya/yolact-plus-resnet50/resolve/main/"
        "yolact_plus_resnet50_54_800000.pth?download=true")
    for name, filename in OFFICIAL_FILES.items():
        url = official_url(name)
        assert url.startswith("https://huggingface.co/dbolya/") and f"/resolve/main/{filename}?" in url


def test_official_url_with_a_mirror(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert official_url("yolact_base", "http://mirror.example/w") == "http://mirror.example/w/yolact_base_54_800000.pth"
    assert official_url("yolact_base", "http://mirror.example/w/") == "http://mirror.example/w/yolact_base_54_800000.pth"
    monkeypatch.setenv(ENV, "http://env.example/weights/")
    assert official_url("yolact_base") == "http://env.example/weights/yolact_base_54_800000.pth"
    # An explicit base_url wins over the environment.
    assert official_url("yolact_base", "http://arg.example") == "http://arg.example/yolact_base_54_800000.pth"


def test_no_released_checkpoint_for_im400(monkeypatch):
    monkeypatch.setenv(ENV, "http://env.example")
    with pytest.raises(KeyError, match="yolact_im400"):
        official_url("yolact_im400")
    with pytest.raises(KeyError):
        official_url("yolact_tiny")
    assert "yolact_im400" not in OFFICIAL_FILES


def test_weights_dir_follows_yolact_edu_home(monkeypatch, tmp_path):
    monkeypatch.setenv("YOLACT_EDU_HOME", str(tmp_path))
    assert weights_dir() == tmp_path / "weights"


# ---------------------------------------------------------------------------------------------
# download_official

def test_download_verifies_and_keeps_the_released_name(server, checkpoint, tmp_path):
    sd, data = checkpoint
    server.files[f"/mirror/{FILE}"] = data
    target = tmp_path / "weights"
    path = download_official(NAME, target, base_url=server.url, progress=False)
    assert path == target / FILE
    assert path.read_bytes() == data
    assert not part_of(path).exists()
    assert server.paths == [f"/mirror/{FILE}"] and server.ranges == [None]
    assert_loads_as(path, sd)

    # Present already: returned without a request.
    assert download_official(NAME, target, base_url=server.url, progress=False) == path
    assert len(server.requests) == 1


def test_corrupt_file_is_rejected_and_removed(server, tmp_path):
    data = random.Random(3).randbytes(1_000_000)
    server.files[f"/mirror/{FILE}"] = data
    with pytest.raises(DownloadError) as info:
        download_official(NAME, tmp_path, base_url=server.url, progress=False)
    message = str(info.value)
    assert "verification failed" in message and FILE in message
    assert "CheckpointError" in message
    assert not (tmp_path / FILE).exists()
    assert not part_of(tmp_path / FILE).exists()
    assert len(server.requests) == 1  # bad content is not retried


def test_wrong_checkpoint_under_the_right_name_is_rejected(server, tmp_path, monkeypatch):
    # A valid PyTorch file that is not this config's checkpoint; the mirror comes from the env.
    buf = io.BytesIO()
    torch.save({"fc.weight": torch.zeros(10, 2048)}, buf)
    server.files[f"/mirror/{FILE}"] = buf.getvalue()
    monkeypatch.setenv(ENV, server.url)
    with pytest.raises(DownloadError) as info:
        download_official(NAME, tmp_path, progress=False)
    message = str(info.value)
    assert "verification failed" in message and "fc.weight" in message
    assert server.paths == [f"/mirror/{FILE}"] and server.ranges == [None]
    assert not (tmp_path / FILE).exists() and not part_of(tmp_path / FILE).exists()


def test_interrupted_transfer_is_resumed(server, checkpoint, tmp_path, monkeypatch):
    sd, data = checkpoint
    server.files[f"/mirror/{FILE}"] = data
    server.drops = 1
    server.drop_after = 10_000_000
    sleeps = []
    monkeypatch.setattr(yolact_edu.files.download, "time",
                        SimpleNamespace(sleep=sleeps.append, monotonic=time.monotonic))
    path = download_official(NAME, tmp_path, base_url=server.url, progress=False)
    assert server.paths == [f"/mirror/{FILE}"] * 2 and server.ranges == [None, "bytes=10000000-"]
    assert len(sleeps) == 1  # one back-off before the retry
    assert path.read_bytes() == data
    assert not part_of(path).exists()
    assert_loads_as(path, sd)


def test_unknown_name_makes_no_request(server, tmp_path):
    with pytest.raises(KeyError):
        download_official("yolact_im400", tmp_path, base_url=server.url, progress=False)
    assert server.requests == []
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# yolact-edu weights download

def test_cli_download(server, checkpoint, tmp_path, capsys):
    sd, data = checkpoint
    server.files[f"/mirror/{FILE}"] = data
    d = tmp_path / "w"
    assert main(["weights", "download", NAME, "--dir", str(d), "--base-url", server.url]) == 0
    out = capsys.readouterr().out
    assert str(d / FILE) in out
    assert (d / FILE).read_bytes() == data
    assert not part_of(d / FILE).exists()
    assert len(server.requests) == 1


@pytest.mark.parametrize("name", ["yolact_im400", "yolact_huge"])
def test_cli_unknown_name(server, tmp_path, capsys, name):
    d = tmp_path / "w"
    assert main(["weights", "download", NAME, name, "--dir", str(d), "--base-url", server.url]) == 2
    err = capsys.readouterr().err
    assert name in err
    assert server.requests == []  # checked before anything is fetched, even the valid name
    assert not d.exists() or list(d.iterdir()) == []


def test_cli_reports_a_failed_download(server, tmp_path, capsys):
    server.files[f"/mirror/{FILE}"] = b"<html>not a checkpoint</html>"
    rc = main(["weights", "download", NAME, "--dir", str(tmp_path), "--base-url", server.url,
                   "--retries", "0"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "verification failed" in err
    assert not (tmp_path / FILE).exists()


def test_cli_junk_under_the_release_name_is_not_taken_as_downloaded(server, checkpoint, tmp_path, capsys):
    sd, data = checkpoint
    server.files[f"/mirror/{FILE}"] = data
    (tmp_path / FILE).write_bytes(b"junk!")
    assert main(["weights", "download", NAME, "--dir", str(tmp_path), "--base-url", server.url]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and str(tmp_path / FILE) in lines[0] and "already there" in lines[0], lines
    assert "--force" in lines[0] and "force=True" not in lines[0]
    assert server.requests == [] and (tmp_path / FILE).read_bytes() == b"junk!"
    assert main(["weights", "download", NAME, "--dir", str(tmp_path), "--base-url", server.url, "--force"]) == 0
    assert_loads_as(tmp_path / FILE, sd)
    assert main(["weights", "download", NAME, "--dir", str(tmp_path), "--base-url", server.url]) == 0
    assert len(server.requests) == 1                # the good copy counts as downloaded: no second request
