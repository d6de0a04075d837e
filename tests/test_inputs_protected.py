"""No command replaces a file it reads, not even with --force (issue 24, part 1).

Every command of the CLI's own table is listed here, either with a case that points its output at
one of its inputs or with the reason it reads nothing of the user's; a new command without one
fails ``test_every_command_is_covered``. Each case runs the command as a user would type it (with
--force where the command has it) and checks that it stops with one line naming the input and
that the input is byte for byte what it was.
"""
import argparse
import hashlib
import shutil
from pathlib import Path

import pytest
from test_user_files import clip, picture  # the same small photo and video

from yolact_edu.cli.common import command_inputs
from yolact_edu.cli.main import build_parser, main
from yolact_edu.data import make_shapes
from yolact_edu.files.output_folder import OutputConflict, OutputFolder
from yolact_edu.lessons.pretrained import SHIPPED_WEIGHTS

READS_NOTHING = {
    "configs": "prints the config table, writes nothing",
    "weights list": "prints the official files, writes nothing",
    "weights download": "its inputs are checkpoint names and a URL, no local file",
    "data shapes": "generates the set from a seed, reads no file",
}


def leaf_commands(parser: argparse.ArgumentParser, prefix=()) -> list[str]:
    """Every runnable command of the parser, e.g. "predict", "bench speed"."""
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        return [" ".join(prefix)]
    return [name for sub in subparsers for key, child in sub.choices.items()
            for name in leaf_commands(child, (*prefix, key))]


def copied(source, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num_train=3, num_val=2, seed=5,
                       min_size=96, max_size=128)


WEIGHTS = SHIPPED_WEIGHTS["yolact_tiny"]


def case_predict(tmp, shapes):
    weights = copied(WEIGHTS, tmp / "out" / "detections.json")     # a checkpoint where predict writes
    return ["predict", str(picture(tmp / "photo.jpg")), "--weights", str(weights),
            "--output", str(tmp / "out"), "--force"], weights


def case_weights_export(tmp, shapes):
    annotations = copied(shapes["val_annotations"], tmp / "val.json")
    return ["weights", "export", str(copied(WEIGHTS, tmp / "w.pth")), str(annotations),
            "--annotations", str(annotations), "--images", str(shapes["val_images"]), "--force"], annotations


def case_data_coco_subset(tmp, shapes):
    annotations = copied(shapes["val_annotations"], tmp / "subset" / "instances_subset.json")
    return ["data", "coco-subset", "--annotations", str(annotations), "--images-from", str(shapes["val_images"]),
            "--output", str(tmp / "subset"), "--max-images", "1", "--force"], annotations


def case_data_show(tmp, shapes):
    first = sorted(Path(shapes["val_images"]).iterdir())[0]
    annotations = copied(shapes["val_annotations"], tmp / "drawn" / f"{first.stem}.png")   # its drawing's name
    return ["data", "show", str(annotations), str(shapes["val_images"]),
            "--output", str(tmp / "drawn"), "--count", "1", "--force"], annotations


def case_demo(tmp, shapes):
    data = tmp / "shapes"
    shutil.copytree(shapes["root"], data)
    kept = data / "metrics.json"            # a file in the data folder, where the demo is told to write
    kept.write_text('{"the user": "notes"}')
    return ["demo", "--quick", "--data", str(data), "--output", str(data), "--force"], kept


def case_train(tmp, shapes):
    annotations = copied(shapes["train_annotations"], tmp / "run" / "summary.json")
    return ["train", "--train-annotations", str(annotations), "--train-images", str(shapes["train_images"]),
            "--output", str(tmp / "run"), "--max-iter", "1"], annotations


def case_eval(tmp, shapes):
    annotations = copied(shapes["val_annotations"], tmp / "val.json")
    return ["eval", "--weights", str(copied(WEIGHTS, tmp / "w.pth")), "--annotations", str(annotations),
            "--images", str(shapes["val_images"]), "--output", str(annotations), "--force"], annotations


def case_video(tmp, shapes):
    weights = copied(WEIGHTS, tmp / "weights.mp4")
    return ["video", str(clip(tmp / "clip.mp4")), "--weights", str(weights), "--output", str(weights),
            "--force"], weights


def case_bench_compare(tmp, shapes):
    images = tmp / "val"
    shutil.copytree(shapes["val_images"], images)
    victim = sorted(images.iterdir())[0]           # one of the images it scores
    return ["bench", "compare", "--models", "yolact_tiny", "--annotations", str(shapes["val_annotations"]),
            "--images", str(images), "--output", str(victim), "--force"], victim


def case_bench_speed(tmp, shapes):
    photo = picture(tmp / "photo.jpg")
    return ["bench", "speed", "--configs", "yolact_tiny", "--image", str(photo), "--output", str(photo),
            "--force"], photo


def case_bench_prototypes(tmp, shapes):
    first, second = copied(WEIGHTS, tmp / "a.pth"), copied(WEIGHTS, tmp / "b.pth")
    return ["bench", "prototypes", str(first), str(second), "--output", str(second), "--force"], second


def case_export(tmp, shapes):
    weights = copied(WEIGHTS, tmp / "w.onnx")
    return ["export", "--weights", str(weights), "--output", str(weights), "--force"], weights


def case_export_sidecar(tmp, shapes):
    weights = copied(WEIGHTS, tmp / "w.json")       # the name of the JSON the export writes beside w.onnx
    return ["export", "--weights", str(weights), "--output", str(tmp / "w.onnx"), "--force"], weights


CASES = {"predict": case_predict, "weights export": case_weights_export, "data coco-subset": case_data_coco_subset,
         "data show": case_data_show, "demo": case_demo, "train": case_train, "eval": case_eval,
         "video": case_video, "bench compare": case_bench_compare, "bench speed": case_bench_speed,
         "bench prototypes": case_bench_prototypes, "export": case_export, "export (sidecar)": case_export_sidecar}


def test_every_command_is_covered():
    commands = set(leaf_commands(build_parser()))
    covered = {name.split(" (")[0] for name in CASES} | set(READS_NOTHING)
    assert commands == covered, f"give these a case in CASES or a reason in READS_NOTHING: {commands - covered}"


@pytest.mark.filterwarnings("ignore:.*already holds a shapes set")     # the demo reuses the copied set
@pytest.mark.parametrize("name", sorted(CASES))
def test_no_command_replaces_its_input_even_with_force(name, shapes, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv, victim = CASES[name](tmp_path, shapes)
    before = hashlib.sha256(victim.read_bytes()).hexdigest()
    assert main(argv) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "%|" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert str(victim) in lines[0] and "input" in lines[0], lines[0]
    assert hashlib.sha256(victim.read_bytes()).hexdigest() == before


def test_command_inputs_are_the_paths_of_the_command_line_outside_its_outputs(tmp_path):
    photo, weights = picture(tmp_path / "photo.jpg"), copied(WEIGHTS, tmp_path / "w.pth")
    args = build_parser().parse_args(["predict", str(photo), str(tmp_path / "missing.jpg"), "--weights", str(weights),
                                      "--output", str(tmp_path)])
    assert sorted(command_inputs(args)) == sorted([photo, weights])      # the output folder is not an input
    pairs = build_parser().parse_args(["bench", "compare", "--weights", f"yolact_tiny={weights}"])
    assert command_inputs(pairs) == [weights]


def test_a_protected_folder_protects_the_files_in_it_but_not_new_ones(tmp_path):
    images = tmp_path / "images"
    picture(images / "a.jpg")
    outputs = OutputFolder(images, force=True, protect=[images])
    with pytest.raises(OutputConflict, match="lies in the input folder"):
        outputs.check(["a.jpg"])
    outputs.write_text("new.json", "{}")              # a new file beside the inputs is allowed
    assert outputs.write_text("new.json", "[]").read_text() == "[]"     # and its own file stays replaceable
