"""The package's layout keeps its promises: the top level reads as the architecture, no private
name crosses a module boundary, notebooks import each name from where it lives, the lesson index
matches the notebooks, and the checkout's data folder is found wherever a module moves.
(The layers themselves and the absence of import cycles are `lint-imports`' job, in `make lint`.)"""
import ast
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import yolact_edu
from yolact_edu.files import locations
from yolact_edu.lessons import NOTEBOOKS, pretrained

PACKAGE = Path(yolact_edu.__file__).resolve().parent
REPO = PACKAGE.parent
TOP_LEVEL = {"__init__.py", "config.py", "detections.py", "loss.py", "weights.py", "postprocess.py", "build.py",
             "loading.py", "model", "ops", "data", "training", "relatives", "widgets", "lessons", "cli",
             "files", "viz", "bench", "deploy", "assets"}


def library_modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def imports_of(path: Path, package: str):
    """(imported module, names) of every ``from X import names`` in a file, relative ones resolved."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield module, [alias.name for alias in node.names]


def test_the_top_level_reads_as_the_architecture():
    found = {p.name for p in PACKAGE.iterdir() if p.name != "__pycache__" and not p.name.startswith(".")}
    assert found == TOP_LEVEL
    for folder in TOP_LEVEL - {"assets"}:
        if (PACKAGE / folder).is_dir():      # every package says what it holds
            assert ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text())), folder


def test_no_private_name_is_imported_from_another_module():
    crossing = []
    for name, path in library_modules().items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for module, names in imports_of(path, package):
            if not module.startswith("yolact_edu"):
                continue
            # `_utils` modules are the one sanctioned home of package-internal helpers
            crossing += [f"{name}: from {module} import {n}" for n in names
                         if n.startswith("_") and not n.startswith("__") and not module.endswith("._utils")]
    assert crossing == []


def notebook_imports(notebook: Path):
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] == "code":
            lines = "".join(cell["source"]).splitlines()
            tree = ast.parse("\n".join(line for line in lines if not line.lstrip().startswith(("%", "!"))))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("yolact_edu"):
                    yield node.module, [alias.name for alias in node.names]


def imported_object(module_name: str, name: str):
    """What ``from module_name import name`` binds (a submodule is imported if need be)."""
    module = importlib.import_module(module_name)
    if not hasattr(module, name) and hasattr(module, "__path__"):
        importlib.import_module(f"{module_name}.{name}")
    return getattr(module, name)


NOTEBOOK_FILES = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_notebooks_import_each_name_from_where_it_lives():
    misplaced = []
    for notebook in NOTEBOOK_FILES:
        for module_name, names in notebook_imports(notebook):
            module = importlib.import_module(module_name)
            for name in names:
                obj = imported_object(module_name, name)
                if hasattr(obj, "__file__"):                         # a module: it lives in itself
                    home = obj.__name__
                elif callable(obj) and hasattr(obj, "__module__"):   # functions and classes
                    home = obj.__module__
                else:                                                # constants: assigned in the file
                    source = ast.parse(Path(module.__file__).read_text())
                    assigned = {t.id for n in source.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                                for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
                                if isinstance(t, ast.Name)}
                    home = module_name if name in assigned else "elsewhere"
                # a package's __init__ may present its own submodules' names (yolact_edu.data, .widgets)
                if home != module_name and not (home.startswith(module_name + ".") and hasattr(module, "__path__")):
                    misplaced.append(f"{notebook.name}: {name} from {module_name} (lives in {home})")
    assert misplaced == []


def test_the_lesson_index_matches_the_notebooks():
    assert sorted(NOTEBOOKS) == [n.stem for n in NOTEBOOK_FILES]
    for notebook in NOTEBOOK_FILES:
        used = set()
        for module_name, names in notebook_imports(notebook):
            for name in names:     # `from yolact_edu.lessons.landscape import published as ls` names a module
                imported = imported_object(module_name, name)
                full = imported.__name__ if hasattr(imported, "__file__") else module_name
                if full.startswith("yolact_edu.lessons."):
                    used.add(full.removeprefix("yolact_edu.lessons."))
        assert used == set(NOTEBOOKS[notebook.stem]), notebook.name
    every_lesson = {name.removeprefix("yolact_edu.lessons.") for name, path in library_modules().items()
                    if name.startswith("yolact_edu.lessons.") and path.name != "__init__.py"}
    assert every_lesson == set().union(*NOTEBOOKS.values())        # no lesson module without a notebook


def test_the_library_below_the_lessons_never_imports_them_or_the_app():
    above = ("yolact_edu.cli", "yolact_edu.widgets", "yolact_edu.lessons")
    offenders = []
    for name, path in library_modules().items():
        if name.startswith(above):
            continue
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        offenders += [f"{name} imports {module}" for module, _ in imports_of(path, package) if module.startswith(above)]
    assert offenders == []


def test_the_checkout_and_its_data_are_found_from_the_package_not_the_calling_file(monkeypatch):
    monkeypatch.delenv("YOLACT_EDU_DATA", raising=False)
    assert locations.package_dir().resolve() == PACKAGE
    assert locations.checkout_dir() == REPO
    assert pretrained.data_root() == REPO / "data"          # the notebooks' data stays in <checkout>/data
    assert (locations.assets_dir() / "sample.jpg").is_file()
    assert pretrained.TINY_SHAPES_WEIGHTS.is_file()
    monkeypatch.setenv("YOLACT_EDU_DATA", "/somewhere/else")
    assert pretrained.data_root() == Path("/somewhere/else")


def test_a_shown_path_names_no_machine_folder_yet_keeps_foreign_files_whole(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO / "notebooks")                       # where a notebook runs
    assert locations.shown_path(REPO / "data" / "shapes" / "x.json") == "../data/shapes/x.json"
    assert locations.shown_path(REPO / "notebooks" / "a.png") == "a.png"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert locations.shown_path(tmp_path / "home" / ".cache" / "w.pth") == "~/.cache/w.pth"
    elsewhere = tmp_path / "elsewhere" / "instances.json"           # outside the checkout and home: whole
    assert locations.shown_path(elsewhere) == str(elsewhere)
    monkeypatch.chdir(tmp_path)
    assert locations.shown_path(elsewhere) == "elsewhere/instances.json"


def test_an_installed_copy_uses_the_cache_not_a_folder_beside_it(tmp_path):
    # The package copied elsewhere, as a wheel would put it: no pyproject.toml above it.
    site = tmp_path / "site-packages"
    site.mkdir()
    subprocess.run(["cp", "-r", str(PACKAGE), str(site)], check=True)
    (site / "data").mkdir()          # a stray data/ beside it is not a checkout without pyproject.toml
    code = ("from yolact_edu.lessons.pretrained import data_root; from yolact_edu.files.locations import "
            "checkout_dir, package_dir; print(package_dir()); print(checkout_dir()); print(data_root())")
    env = {k: v for k, v in os.environ.items() if k not in ("YOLACT_EDU_DATA", "PYTHONPATH")}
    env["HOME"] = str(tmp_path / "home")
    out = subprocess.run([sys.executable, "-c", code], cwd=site, env=env, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert Path(out[0]).resolve() == (site / "yolact_edu").resolve()
    assert out[1] == "None"
    assert Path(out[2]) == tmp_path / "home" / ".cache" / "yolact_edu" / "data"


@pytest.mark.parametrize("argv", [["-m", "yolact_edu.cli", "configs"], ["-m", "yolact_edu.cli", "--help"]])
def test_the_command_runs_as_a_module(argv):
    result = subprocess.run([sys.executable, *argv], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "yolact_tiny" in result.stdout or "COMMAND" in result.stdout
