"""Atomic writes keep the old file whole when a write fails half-way."""
import os

import pytest

from yolact_edu.files.atomic_write import write_atomically


def test_writes_bytes_and_text(tmp_path):
    assert write_atomically(tmp_path / "a.bin", b"\x00\x01") == tmp_path / "a.bin"
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    write_atomically(tmp_path / "a.txt", "héllo", fsync=False)
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo"


def test_a_failed_rename_keeps_the_old_content_and_leaves_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "instances.json"
    target.write_text("old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["instances.json"]
