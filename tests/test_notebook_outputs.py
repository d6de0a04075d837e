"""No committed notebook output carries one machine's folder names.

Every output a learner sees in a notebook as cloned (printed text, plain-text, Markdown and HTML
results, error tracebacks, the saved widget state) is read, and any absolute path of the machine
that ran it (/root, /home/..., /work/..., /tmp/..., /Users/..., C:\\..., this user's home folder,
this checkout's folder) fails the test with the notebook, the cell and the text around it. Paths
are printed relative to the notebook or as ``~/...`` (:func:`yolact_edu.files.locations.shown_path`).

The detector itself is tested on small synthetic notebooks first, so the test over the committed
notebooks cannot pass because it reads nothing.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
TEXT_TYPES = ("text/plain", "text/markdown", "text/html", "text/latex", "application/json")
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

# An absolute path starts a token: not after a letter, digit, '.', '/', ':' or '-' (so a URL's
# "https://host/work/..." or a relative "data/tmp/x" is not one).
_START = r"(?<![\w./:\\-])"
_PATTERNS = [_START + r"/(?:root|home|work|tmp|Users)(?=[/\\\s'\"<)\],:;]|$)", _START + r"[A-Za-z]:\\"]


def _machine_folders() -> list[str]:
    """This machine's own absolute folders that must not appear either (home, checkout)."""
    folders = {str(Path.home().resolve()), str(REPO.resolve())}
    return sorted(f for f in folders if len(f) > 1)


def machine_paths(text: str, folders: list[str] | None = None) -> list[str]:
    """The absolute machine paths in ``text``: each hit as the text around it (40 characters)."""
    folders = _machine_folders() if folders is None else folders
    starts = sorted({match.start() for pattern in _PATTERNS + [re.escape(folder) for folder in folders]
                     for match in re.finditer(pattern, text)})        # one hit per path, whichever patterns match
    return [text[max(0, start - 20):start + 30].replace("\n", " ") for start in starts]


def output_texts(notebook) -> list[tuple[str, str]]:
    """(where, text) for every text a learner sees without running the notebook: each code cell's
    outputs ("cell 7, stream", "cell 3, text/html", ...) and the saved widget state ("widget state")."""
    texts = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            kind = output.get("output_type")
            if kind == "stream":
                texts.append((f"cell {index}, stream", output.get("text", "")))
            elif kind == "error":
                texts.append((f"cell {index}, error", "\n".join([output.get("evalue", "")] +
                                                                list(output.get("traceback", [])))))
            else:
                for mime, value in output.get("data", {}).items():
                    if mime in TEXT_TYPES or mime.startswith("text/"):
                        texts.append((f"cell {index}, {mime}", value if isinstance(value, str)
                                      else json.dumps(value)))
    state = notebook.metadata.get("widgets", {}).get(WIDGET_STATE)
    if state:
        texts.append(("widget state", json.dumps(state)))
    return texts


def machine_paths_in(notebook, folders: list[str] | None = None) -> list[str]:
    """"cell N, kind: ...text..." for each absolute machine path in ``notebook``'s outputs."""
    return [f"{where}: {hit}" for where, text in output_texts(notebook) for hit in machine_paths(text, folders)]


# -- the detector, on notebooks made here --------------------------------------------------------
def _notebook(*outputs, widget_state=None):
    cell = new_code_cell("print('x')", outputs=list(outputs))
    notebook = new_notebook(cells=[new_markdown_cell("# /root/not/an/output"), cell])
    if widget_state is not None:
        notebook.metadata["widgets"] = {WIDGET_STATE: {"state": widget_state, "version_major": 2,
                                                       "version_minor": 0}}
    return notebook


@pytest.mark.parametrize("text", ["/work/wt14/data/shapes/instances_train.json: 600 images",
                                  "weights in /root/.cache/yolact_edu", "see /home/ada/notebooks",
                                  "written to /tmp/run/log.csv", "C:\\Users\\ada\\data", "/Users/ada/x",
                                  "'/tmp'"])
def test_each_kind_of_machine_path_is_found_in_every_kind_of_output(text):
    outputs = {"stream": new_output("stream", name="stdout", text=text + "\n"),
               "text/plain": new_output("execute_result", data={"text/plain": text}, execution_count=1),
               "text/markdown": new_output("display_data", data={"text/markdown": f"**{text}**"}),
               "text/html": new_output("display_data", data={"text/html": f"<td>{text}</td>"}),
               "error": new_output("error", ename="OSError", evalue=text, traceback=[])}
    for kind, output in outputs.items():
        found = machine_paths_in(_notebook(output), folders=[])
        assert len(found) == 1 and found[0].startswith("cell 1, "), (kind, found)
        assert text.strip("'").split()[0][:5] in found[0]
    found = machine_paths_in(_notebook(widget_state={"m1": {"state": {"value": text}}}), folders=[])
    assert len(found) == 1 and found[0].startswith("widget state"), found


def test_this_machines_own_folders_are_found_wherever_they_are():
    folder = "/srv/builds/checkout-7"                  # not one of the usual prefixes
    output = new_output("stream", name="stdout", text=f"checkpoint {folder}/outputs/x.pth\n")
    assert machine_paths_in(_notebook(output), folders=[]) == []
    assert len(machine_paths_in(_notebook(output), folders=[folder])) == 1


@pytest.mark.parametrize("text", ["../data/shapes/instances_train.json: 600 images",
                                  "~/.cache/yolact_edu/weights/yolact_base.pth",
                                  "<https://github.com/work/tmp/repo>", "data/tmp/x.json", "1/home",
                                  "checkpoint ../outputs/notebooks/04/main/checkpoints/yolact_tiny_0001200.pth"])
def test_relative_paths_urls_and_home_shorthand_pass(text):
    output = new_output("stream", name="stdout", text=text)
    assert machine_paths_in(_notebook(output), folders=[]) == []


def test_markdown_and_images_are_not_outputs():
    png = new_output("display_data", data={"image/png": "L3Jvb3QvZmlsZQ==", "text/plain": "<Figure>"})
    assert output_texts(_notebook(png)) == [("cell 1, text/plain", "<Figure>")]


# -- the committed notebooks ----------------------------------------------------------------------
def test_there_are_notebooks_with_outputs_to_read():
    assert len(NOTEBOOKS) >= 5
    assert all(output_texts(nbformat.read(path, as_version=4)) for path in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_machine_path_in_a_committed_output(path):
    found = machine_paths_in(nbformat.read(path, as_version=4))
    assert not found, f"{path.name} shows absolute machine paths:\n" + "\n".join(found)
