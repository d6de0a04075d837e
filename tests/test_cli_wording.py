"""The command line speaks its own options (--resume auto, --force, --batch-size), never the
library's Python keywords; `bench compare` on other classes names the model and --weights."""
import json
import re
from pathlib import Path

import pytest

from yolact_edu.cli.common import CLI_WORDING, cli_wording
from yolact_edu.cli.main import main
from yolact_edu.data import make_shapes

LIBRARY = Path(__file__).resolve().parents[1] / "yolact_edu"
PYTHON_WORDS = re.compile(r"\b(resume|force|tensorboard|overwrite|batch_size)=|lower batch_size\b")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num_train=4, num_val=2, seed=3,
                       min_size=128, max_size=160)


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


def test_every_phrase_reworded_still_occurs_in_the_library():
    """A table entry whose phrase the library no longer says would hide that a new wording slipped in."""
    source = "\n".join(p.read_text() for p in LIBRARY.rglob("*.py") if "cli" not in p.parts)
    for python, cli in CLI_WORDING:
        if "(" not in python:           # the "both named" forms are covered by their first half
            assert python in source, python
        assert not PYTHON_WORDS.search(cli_wording(python)), cli


def test_an_earlier_run_in_the_folder_says_resume_auto(shapes, tmp_path, capsys):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "yolact_tiny_0000010.pth").write_bytes(b"")
    def command(batch, output):
        return ["train", "--train-annotations", str(shapes["train_annotations"]), "--train-images",
                str(shapes["train_images"]), "--max-size", "128", "--batch-size", batch, "--max-iter", "1",
                "--output", str(output), "--device", "cpu"]
    assert main(command("2", out)) == 1
    err = error_line(capsys)
    assert "--resume auto" in err and not PYTHON_WORDS.search(err), err
    assert main(command("50", tmp_path / "other")) == 1                    # more than the 4 images
    err = error_line(capsys)
    assert "lower --batch-size" in err and not PYTHON_WORDS.search(err), err


def test_bench_compare_on_other_classes_names_the_model_and_weights(shapes, tmp_path, capsys):
    data = json.loads(Path(shapes["val_annotations"]).read_text())
    for category in data["categories"]:
        category["name"] = f"part_{category['id']}"                    # a labelling tool's own classes
    annotations = tmp_path / "parts.json"
    annotations.write_text(json.dumps(data))
    output = tmp_path / "compare.json"
    assert main(["bench", "compare", "--models", "yolact_tiny,condinst_tiny", "--annotations", str(annotations),
                 "--images", str(shapes["val_images"]), "--device", "cpu", "--output", str(output)]) == 1
    err = error_line(capsys)
    assert "yolact_tiny, condinst_tiny" in err and str(annotations) in err
    assert "--weights yolact_tiny=CHECKPOINT --weights condinst_tiny=CHECKPOINT" in err
    assert not output.exists()


def test_a_library_warning_reaches_the_terminal_in_cli_words(monkeypatch):
    import warnings

    import yolact_edu.data
    from yolact_edu.cli.common import shapes_paths

    def stale_set(root, **_options):
        warnings.warn(f"{root} already holds a shapes set made with other settings; reusing it unchanged "
                      "(pass overwrite=True to regenerate)", stacklevel=2)
        return {"root": root}

    monkeypatch.setattr(yolact_edu.data, "make_shapes", stale_set)
    with pytest.warns(UserWarning, match=r"regenerate it with: yolact-edu data shapes --force\)$") as caught:
        assert shapes_paths("somewhere") == {"root": "somewhere"}
    assert len(caught) == 1 and "overwrite=True" not in str(caught[0].message)
