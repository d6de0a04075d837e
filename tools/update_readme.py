"""Rewrite README.md's shipped-models table from the shipped files' metadata (run after exporting a
model; tests/test_shipped_models.py fails until the README agrees with the files).

    .venv/bin/python tools/update_readme.py
"""
import re
from pathlib import Path

from yolact_edu.lessons.pretrained import EVERY_SHIPPED, shipped_table

README = Path(__file__).resolve().parents[1] / "README.md"
MARKERS = re.compile(r"<!-- shipped-models -->\n.*?<!-- /shipped-models -->", re.S)


def main() -> None:
    text = README.read_text()
    if not MARKERS.search(text):
        raise SystemExit(f"{README}: no <!-- shipped-models --> ... <!-- /shipped-models --> markers")
    table = shipped_table(EVERY_SHIPPED)
    README.write_text(MARKERS.sub(lambda _: f"<!-- shipped-models -->\n{table}\n<!-- /shipped-models -->",
                                  text))
    print(f"updated {README}")


if __name__ == "__main__":
    main()
