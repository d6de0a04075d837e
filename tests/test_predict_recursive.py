"""`yolact-edu predict` on a folder of subfolders: --recursive keeps the relative paths; without
it one note (or, when only subfolders hold images, the error) says what was left out."""
import json

import cv2
import numpy as np
import pytest

from yolact_edu.cli.main import main
from yolact_edu.cli.predict import collect_images, relative_output_names


def photo(path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((40, 48, 3), value, np.uint8))


@pytest.fixture
def album(tmp_path):
    """album/top.jpg, album/trip/a.jpg, album/trip/a.png, album/trip/day2/a.jpg, album/.cache/x.jpg,
    album/empty/ (no images)."""
    root = tmp_path / "album"
    for i, name in enumerate(["top.jpg", "trip/a.jpg", "trip/a.png", "trip/day2/a.jpg", ".cache/x.jpg"]):
        photo(root / name, 40 * i)
    (root / "empty").mkdir()
    return root


def test_recursive_outputs_keep_the_relative_paths(album, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["predict", str(album), "--recursive", "--output", str(out), "--device", "cpu"]) == 0
    capsys.readouterr()
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    # a.jpg and a.png in one folder get distinct names; the hidden folder is not read
    assert written == ["top.png", "trip/a_jpg.png", "trip/a_png.png", "trip/day2/a.png"]
    records = json.loads((out / "detections.json").read_text())
    assert {r["output"] for r in records} <= set(written)


def test_without_recursive_one_note_says_what_the_subfolders_hold(album, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["predict", str(album), "--output", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    notes = [line for line in printed.splitlines() if line.startswith("note: ") and "subfolder" in line]
    assert notes == [f"note: {album} has 2 subfolders with 3 images, not read; pass --recursive to include them"]
    assert sorted(p.name for p in out.rglob("*.png")) == ["top.png"]


def test_a_folder_with_images_only_in_subfolders_says_to_pass_recursive(album, tmp_path, capsys):
    (album / "top.jpg").unlink()
    assert main(["predict", str(album), "--output", str(tmp_path / "out"), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 subfolders with 3 images" in err and "--recursive" in err


def test_recursive_refuses_an_output_inside_the_folder_it_reads(album, capsys):
    assert main(["predict", str(album), "--recursive", "--output", str(album / "drawn"), "--device", "cpu"]) == 1
    assert "lies in the input folder" in capsys.readouterr().err
    assert not (album / "drawn").exists()


def test_output_names_per_subfolder(album):
    paths, folders, subfolders = collect_images([str(album)], recursive=True)
    assert folders == [album] and [s.as_posix() for s in subfolders] == [".", "trip", "trip", "trip/day2"]
    assert relative_output_names(paths, subfolders) == ["top.png", "trip/a_jpg.png", "trip/a_png.png",
                                                        "trip/day2/a.png"]
