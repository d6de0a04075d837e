"""pyproject.toml and environment.yml list the same dependencies; the README's commands exist."""
import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def normalise(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        # "yolact_edu[notebooks]" inside "dev" names packages already listed under "notebooks"
        wanted |= {r for r in extra if not r.startswith(project["name"] + "[")}
    lines = (ROOT / "environment.yml").read_text().splitlines()
    listed = {line.strip()[2:] for line in lines if line.startswith("      - ")}
    listed.discard("-e .")
    assert {normalise(r) for r in listed} == {normalise(r) for r in wanted}
    assert any("python>=3.10" in line for line in lines)


def test_readme_quick_start_commands_are_real():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test", "lab"):
        assert f"make {target}" in readme
        assert re.search(rf"^{target}:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
