"""Rewrite README.md's generated tables: the shipped models (from the shipped files' metadata; run after
exporting a model) and the detect options each family honours (from the model classes).
tests/test_shipped_models.py and tests/test_families.py fail until the README agrees.

    .venv/bin/python tools/update_readme.py
"""
import re
from pathlib import Path

from yolact_edu.build import detect_options_markdown
from yolact_edu.lessons.pretrained import EVERY_SHIPPED, shipped_table

README = Path(__file__).resolve().parents[1] / "README.md"


def replace_between(text: str, marker: str, table: str) -> str:
    pattern = re.compile(rf"<!-- {marker} -->\n.*?<!-- /{marker} -->", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{README}: no <!-- {marker} --> ... <!-- /{marker} --> markers")
    return pattern.sub(lambda _: f"<!-- {marker} -->\n{table}\n<!-- /{marker} -->", text)


def main() -> None:
    text = replace_between(README.read_text(), "shipped-models", shipped_table(EVERY_SHIPPED))
    README.write_text(replace_between(text, "detect-options", detect_options_markdown()))
    print(f"updated {README}")


if __name__ == "__main__":
    main()
