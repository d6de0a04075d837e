"""Nothing the user owns is overwritten or deleted without --force (issue 11, part 1).

Each case builds real files, runs the command as a user would type it (in-process), and then
checks every file that existed before: none may have changed or gone, unless the case says
--force was given for exactly that file. Written files get the umask's permissions, and
temporary files of a killed run do not live forever.
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolact_edu.cli.main import main
from yolact_edu.data import make_shapes
from yolact_edu.files.atomic_write import create_temporary, write_atomically
from yolact_edu.files.output_folder import LEDGER, OutputConflict, OutputFolder


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (the ledger aside)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != LEDGER}


def picture(path: Path, value: int = 120, size=(48, 64)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((*size, 3), value, np.uint8)
    cv2.rectangle(image, (5, 5), (30, 30), (255, 0, 0), -1)
    assert cv2.imwrite(str(path), image)
    return path


def clip(path: Path, frames: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num_train=4, num_val=3, seed=5,
                       min_size=96, max_size=128)


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# -- the table: (case id, setup(tmp) -> argv, expected exit status, expected message) -------------
def predict_output_is_the_input_folder(tmp, _shapes):
    picture(tmp / "photos" / "a.png")
    picture(tmp / "photos" / "b.jpg")
    return ["predict", str(tmp / "photos"), "--output", str(tmp / "photos")]


def predict_output_folder_holds_a_users_file(tmp, _shapes):
    picture(tmp / "in" / "a.jpg")
    (tmp / "out").mkdir()
    (tmp / "out" / "a.png").write_bytes(b"my own picture")
    return ["predict", str(tmp / "in" / "a.jpg"), "--output", str(tmp / "out")]


def predict_an_input_in_the_output_folder(tmp, _shapes):
    picture(tmp / "out" / "a.png")
    return ["predict", str(tmp / "out" / "a.png"), "--output", str(tmp / "out")]


def predict_results_file_is_the_users(tmp, _shapes):
    picture(tmp / "in" / "a.jpg")
    (tmp / "out").mkdir()
    (tmp / "out" / "detections.json").write_text('{"mine": true}')
    return ["predict", str(tmp / "in" / "a.jpg"), "--output", str(tmp / "out")]


def video_output_is_the_source(tmp, _shapes):
    clip(tmp / "clip.mp4")
    return ["video", str(tmp / "clip.mp4"), "--output", str(tmp / "clip.mp4")]


def video_output_is_the_source_spelled_otherwise(tmp, _shapes):
    clip(tmp / "clip.mp4")
    (tmp / "sub").mkdir()
    return ["video", str(tmp / "clip.mp4"), "--output", str(tmp / "sub" / ".." / "clip.mp4")]


def video_output_is_a_hard_link_of_the_source(tmp, _shapes):
    clip(tmp / "clip.mp4")
    os.link(tmp / "clip.mp4", tmp / "same.mp4")
    return ["video", str(tmp / "clip.mp4"), "--output", str(tmp / "same.mp4")]


def video_output_is_a_users_file(tmp, _shapes):
    clip(tmp / "clip.mp4")
    clip(tmp / "holiday.mp4", frames=5)
    return ["video", str(tmp / "clip.mp4"), "--output", str(tmp / "holiday.mp4")]


def shapes_root_holds_someone_elses_dataset(tmp, _shapes):
    root = tmp / "theirs"
    (root / "train").mkdir(parents=True)
    (root / "instances_train.json").write_text('{"images": [], "annotations": [], "categories": []}')
    picture(root / "train" / "train_000000.jpg")
    picture(root / "train" / "holiday.jpg")
    return ["data", "shapes", "--root", str(root), "--num-train", "2", "--num-val", "1", "--force"]


def data_show_into_the_image_folder(tmp, shapes):
    folder = tmp / "set"
    shutil.copytree(shapes["root"], folder)
    return ["data", "show", str(folder / "instances_val.json"), str(folder / "val"), "--output", str(folder / "val")]


def data_show_over_a_users_drawing(tmp, shapes):
    (tmp / "drawn").mkdir()
    (tmp / "drawn" / "val_000000.png").write_bytes(b"my drawing")
    return ["data", "show", str(shapes["val_annotations"]), str(shapes["val_images"]), "--output",
            str(tmp / "drawn")]


def eval_output_is_a_users_file(tmp, shapes):
    (tmp / "results.json").write_text('{"my": "results"}')
    weights = Path(__file__).resolve().parents[1] / "yolact_edu" / "assets" / "yolact_tiny_shapes.pth"
    return ["eval", "--weights", str(weights), "--annotations", str(shapes["val_annotations"]),
            "--images", str(shapes["val_images"]), "--output", str(tmp / "results.json")]


def demo_output_holds_a_users_metrics(tmp, shapes):
    (tmp / "demo").mkdir()
    (tmp / "demo" / "metrics.json").write_text('{"thesis": 1}')
    return ["demo", "--quick", "--output", str(tmp / "demo"), "--data", str(shapes["root"]), "--device", "cpu"]


def train_output_holds_a_users_log(tmp, shapes):
    (tmp / "run").mkdir()
    (tmp / "run" / "log.csv").write_text("my,own,log\n")
    return ["train", "--train-annotations", str(shapes["train_annotations"]), "--train-images",
            str(shapes["train_images"]), "--max-size", "64", "--max-iter", "1", "--output", str(tmp / "run"),
            "--device", "cpu"]


def coco_subset_over_a_users_annotation_file(tmp, shapes):
    (tmp / "subset").mkdir()
    (tmp / "subset" / "instances_subset.json").write_text('{"mine": true}')
    return ["data", "coco-subset", "--annotations", str(shapes["val_annotations"]), "--images-from",
            str(shapes["val_images"]), "--output", str(tmp / "subset"), "--max-images", "2"]


REFUSED = [
    (predict_output_is_the_input_folder, "is also an input folder"),
    (predict_output_folder_holds_a_users_file, "a.png exists and was not written by yolact_edu; pass --force"),
    (predict_an_input_in_the_output_folder, "is the input"),
    (predict_results_file_is_the_users, "detections.json exists and was not written by yolact_edu"),
    (video_output_is_the_source, "is the input"),
    (video_output_is_the_source_spelled_otherwise, "is the input"),
    (video_output_is_a_hard_link_of_the_source, "is the input"),
    (video_output_is_a_users_file, "holiday.mp4 exists and was not written by yolact_edu"),
    (shapes_root_holds_someone_elses_dataset, "holds files the shapes generator did not write"),
    (data_show_into_the_image_folder, "lies in the dataset's image folder"),
    (data_show_over_a_users_drawing, "val_000000.png exists and was not written by yolact_edu"),
    (eval_output_is_a_users_file, "results.json exists and was not written by yolact_edu"),
    (demo_output_holds_a_users_metrics, "metrics.json exists and was not written by yolact_edu"),
    (train_output_holds_a_users_log, "log.csv exists and was not written by yolact_edu; it is kept"),
    (coco_subset_over_a_users_annotation_file, "instances_subset.json exists and was not written by yolact_edu"),
]


@pytest.mark.filterwarnings("ignore:.*already holds a shapes set")     # the demo reuses the small set
@pytest.mark.parametrize(("setup", "message"), REFUSED, ids=[case.__name__ for case, _ in REFUSED])
def test_refused_and_nothing_of_the_users_changes(setup, message, tmp_path, shapes, capsys):
    argv = setup(tmp_path, shapes)
    before = snapshot(tmp_path)
    assert main(argv) == 1
    assert message in one_error_line(capsys.readouterr().err)
    after = snapshot(tmp_path)
    assert {name: after.get(name) for name in before} == before, "a file of the user's changed or went"
    assert set(after) == set(before), "nothing is written when the command is refused"


def test_force_replaces_a_users_file_but_never_an_input(tmp_path, capsys):
    picture(tmp_path / "in" / "a.jpg")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.png").write_bytes(b"my own picture")
    assert main(["predict", str(tmp_path / "in" / "a.jpg"), "--output", str(tmp_path / "out"), "--force"]) == 0
    assert cv2.imread(str(tmp_path / "out" / "a.png")).shape == (48, 64, 3)
    # ... and a second run replaces its own output without --force (the ledger lists it)
    assert main(["predict", str(tmp_path / "in" / "a.jpg"), "--output", str(tmp_path / "out")]) == 0

    picture(tmp_path / "out2" / "b.png")
    source = (tmp_path / "out2" / "b.png").read_bytes()
    assert main(["predict", str(tmp_path / "out2" / "b.png"), "--output", str(tmp_path / "out2"), "--force"]) == 1
    assert "is the input" in capsys.readouterr().err
    assert (tmp_path / "out2" / "b.png").read_bytes() == source

    clip(tmp_path / "clip.mp4")
    before = (tmp_path / "clip.mp4").read_bytes()
    assert main(["video", str(tmp_path / "clip.mp4"), "--output", str(tmp_path / "clip.mp4"), "--force"]) == 1
    assert (tmp_path / "clip.mp4").read_bytes() == before


def test_every_input_gets_its_own_output(tmp_path, capsys):
    picture(tmp_path / "a.jpg", 50)
    picture(tmp_path / "a.png", 90)
    picture(tmp_path / "x" / "c.jpg", 130)
    picture(tmp_path / "y" / "c.jpg", 170)
    inputs = [tmp_path / "a.jpg", tmp_path / "a.png", tmp_path / "x" / "c.jpg", tmp_path / "y" / "c.jpg"]
    before = snapshot(tmp_path)
    out = tmp_path / "out"
    assert main(["predict", *map(str, inputs), "--output", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["a_jpg.png", "a_png.png", "x_c_jpg.png", "y_c_jpg.png"]
    records = json.loads((out / "detections.json").read_text())
    assert {(r["file_name"], r["output"]) for r in records} <= {
        (str(tmp_path / "a.jpg"), "a_jpg.png"), (str(tmp_path / "a.png"), "a_png.png"),
        (str(tmp_path / "x" / "c.jpg"), "x_c_jpg.png"), (str(tmp_path / "y" / "c.jpg"), "y_c_jpg.png")}
    # each output is drawn on its own input (the four inputs differ in grey level)
    for name, grey in (("a_jpg.png", 50), ("a_png.png", 90), ("x_c_jpg.png", 130), ("y_c_jpg.png", 170)):
        drawn = cv2.imread(str(out / name))
        assert abs(int(np.median(drawn)) - grey) <= 3
    after = snapshot(tmp_path)
    assert {k: after[k] for k in before} == before


def test_data_show_gives_every_image_its_own_drawing(tmp_path, shapes, capsys):
    """Two images of one set whose names differ only in their suffix or folder."""
    data = json.loads(Path(shapes["val_annotations"]).read_text())
    names = ["x.jpg", "x.png", "a/y.jpg"]
    for image, name in zip(data["images"], names):
        (tmp_path / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(shapes["val_images"]) / image["file_name"], tmp_path / "images" / name)
        image["file_name"] = name
    data["images"] = data["images"][:3]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in {i["id"] for i in data["images"]}]
    (tmp_path / "instances.json").write_text(json.dumps(data))
    out = tmp_path / "drawn"
    assert main(["data", "show", str(tmp_path / "instances.json"), str(tmp_path / "images"), "--count", "3",
                 "--output", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["x_jpg.png", "x_png.png", "y.png"]


def test_shapes_are_rebuilt_only_where_the_generator_left_its_marker(tmp_path):
    root = tmp_path / "set"
    make_shapes(root, num_train=2, num_val=1, seed=1, min_size=64, max_size=64)
    (root / "notes.txt").write_text("mine")
    make_shapes(root, num_train=1, num_val=1, seed=2, min_size=64, max_size=64, overwrite=True)
    assert sorted(p.name for p in (root / "train").iterdir()) == ["train_000000.jpg"]   # stale one removed
    assert (root / "notes.txt").read_text() == "mine"                                     # not ours: kept
    (root / ".yolact_edu_shapes.json").unlink()       # as an older version's set, or anyone's folder
    (root / "val" / "val_000000.jpg").unlink()        # incomplete: would need rebuilding
    before = snapshot(root)
    with pytest.raises(FileExistsError, match="holds files the shapes generator did not write"):
        make_shapes(root, num_train=1, num_val=1, seed=2, min_size=64, max_size=64, overwrite=True)
    assert snapshot(root) == before


def test_output_folder_ledger_rules(tmp_path):
    folder = OutputFolder(tmp_path / "out")
    folder.write_text("a.txt", "ours")
    (tmp_path / "out" / "mine.txt").write_text("users")
    assert folder.owns("a.txt") and not folder.owns("mine.txt")
    assert not folder.remove("mine.txt") and (tmp_path / "out" / "mine.txt").exists()
    with pytest.raises(OutputConflict, match="mine.txt exists"):
        folder.write_text("mine.txt", "x")
    with pytest.raises(ValueError, match="plain path"):
        folder.path("../escape.txt")
    (tmp_path / "blocker").write_text("a file")
    with pytest.raises(OutputConflict, match="is a file, not a folder"):
        OutputFolder(tmp_path / "blocker").check(["x.png"])
    assert OutputFolder(tmp_path / "out").clear() == [tmp_path / "out" / "a.txt"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [LEDGER, "mine.txt"]


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_written_files_get_the_umasks_permissions(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = write_atomically(tmp_path / "model.pth", b"weights")
        partial = create_temporary(tmp_path / "clip.mp4")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert partial.stat().st_mode & 0o777 == 0o666 & ~umask and partial.name.endswith(".part.mp4")


KILLED_WRITER = r"""
import os, signal, sys
from yolact_edu.files.atomic_write import create_temporary
for target in sys.argv[1:]:
    with open(create_temporary(target), "wb") as fh:
        fh.write(b"half a file")
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_temp_files_of_a_killed_run_are_removed_by_the_next(tmp_path):
    targets = [tmp_path / "checkpoints" / "yolact_tiny_0000100.pth", tmp_path / "video" / "clip.mp4"]
    for target in targets:
        target.parent.mkdir()
    (tmp_path / "checkpoints" / ".notes.part").write_text("not ours: no pid in the name")
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, *map(str, targets)])
    assert killed.returncode == -signal.SIGKILL
    orphans = [p for t in targets for p in t.parent.glob(f".{t.name}.*")]
    assert len(orphans) == 2
    write_atomically(targets[0].parent / "yolact_tiny_0000200.pth", b"next checkpoint")
    create_temporary(targets[1]).unlink()           # the next video's partial file
    assert not any(p.exists() for p in orphans)
    assert (tmp_path / "checkpoints" / ".notes.part").exists()
