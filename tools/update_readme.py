"""Rewrite README.md's generated tables: the shipped models (from the shipped files' metadata; run after
exporting a model), the detect options each family honours (from the model classes) and the recorded
demo runs (docs/demo_runs/*.json). tests/test_shipped_models.py, tests/test_families.py and
tests/test_budget.py fail until the README agrees.

    .venv/bin/python tools/update_readme.py
"""
import re
from pathlib import Path

from yolact_edu.build import detect_options_markdown
from yolact_edu.cli.demo import demo_runs_table
from yolact_edu.lessons.pretrained import EVERY_SHIPPED, shipped_table

ROOT = Path(__file__).resolve().parents[1]
README, DEMO_RUNS = ROOT / "README.md", ROOT / "docs" / "demo_runs"


def replace_between(text: str, marker: str, table: str) -> str:
    pattern = re.compile(rf"<!-- {marker} -->\n.*?<!-- /{marker} -->", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{README}: no <!-- {marker} --> ... <!-- /{marker} --> markers")
    return pattern.sub(lambda _: f"<!-- {marker} -->\n{table}\n<!-- /{marker} -->", text)


def main() -> None:
    text = replace_between(README.read_text(), "shipped-models", shipped_table(EVERY_SHIPPED))
    text = replace_between(text, "detect-options", detect_options_markdown())
    README.write_text(replace_between(text, "demo-runs", demo_runs_table(DEMO_RUNS)))
    print(f"updated {README}")


if __name__ == "__main__":
    main()
