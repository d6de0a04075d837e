"""Where the package's own files are: its bundled assets, and the source checkout it runs from.

Found from the installed package (``importlib.resources``), not from the file that asks, so
moving a module to another folder cannot silently send the notebooks' data somewhere else."""
from __future__ import annotations

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


__all__ = ["package_dir", "assets_dir", "checkout_dir"]
