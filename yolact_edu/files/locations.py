"""Where the package's own files are: its bundled assets, and the source checkout it runs from.

Found from the installed package (``importlib.resources``), not from the file that asks, so
moving a module to another folder cannot silently send the notebooks' data somewhere else."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

PACKAGE = "yolact_edu"


def package_dir() -> Path:
    """The ``yolact_edu`` package folder (the one imported)."""
    return Path(str(resources.files(PACKAGE)))


def assets_dir() -> Path:
    """The bundled files: ``sample.jpg`` and the shipped trained weights."""
    return package_dir() / "assets"


def checkout_dir() -> Path | None:
    """The source checkout the package runs from (editable install or ``PYTHONPATH``): the folder
    above the package that holds ``pyproject.toml`` and ``data/``; None for an installed wheel."""
    root = package_dir().resolve().parent
    return root if (root / "pyproject.toml").is_file() and (root / "data").is_dir() else None


def shown_path(path: str | os.PathLike) -> str:
    """``path`` as a message or a notebook output should show it: relative to the working folder
    when it lies below it, or when both lie in the source checkout (``../data/shapes/...`` from
    ``notebooks/``); else under the home folder written ``~``; else as given. Printed text then
    never carries one machine's folder names into a committed notebook or a copied log, while a
    file elsewhere (a temporary folder, another disk) keeps its full, unambiguous name."""
    path = Path(path).expanduser()
    absolute = (path if path.is_absolute() else Path.cwd() / path).resolve()
    here = Path.cwd().resolve()
    if absolute.is_relative_to(here):
        return str(absolute.relative_to(here))
    checkout = checkout_dir()
    if checkout is not None and here.is_relative_to(checkout.resolve()) and absolute.is_relative_to(checkout.resolve()):
        return os.path.relpath(absolute, here)
    home = Path.home().resolve()
    if absolute.is_relative_to(home):
        return str(Path("~") / absolute.relative_to(home))
    return str(path)


__all__ = ["package_dir", "assets_dir", "checkout_dir", "shown_path"]
