"""Keep a demo run's figures for the README (docs/demo_runs/NAME.json), then run tools/update_readme.py.

    .venv/bin/python tools/record_demo_run.py outputs/demo/metrics.json "make demo" amd_epyc_avx2
"""
import json
import sys
from pathlib import Path

from yolact_edu.cli.demo import recorded_run

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    metrics_path, command, name = sys.argv[1:]
    record = recorded_run(json.loads(Path(metrics_path).read_text()), command)
    target = ROOT / "docs" / "demo_runs" / f"{name}.json"
    if target.exists():
        raise SystemExit(f"{target} exists: choose another name, or remove it first")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
