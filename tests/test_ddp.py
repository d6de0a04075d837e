"""DDP through torchrun: two CPU processes with the gloo backend train together."""
import os
import subprocess
import sys
from pathlib import Path

import torch

from yolact_edu.data import make_shapes


def test_two_gloo_processes_train_one_model(tmp_path):
    shapes = make_shapes(tmp_path / "shapes", num_train=16, num_val=1, seed=5, min_size=128, max_size=160)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(Path(__file__).with_name("ddp_worker.py")), str(shapes["train_annotations"]),
               str(shapes["train_images"]), str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert all(r["world_size"] == 2 for r in ranks)
    for key, value in ranks[0]["state"].items():         # one model: identical weights in both processes
        assert torch.equal(value, ranks[1]["state"][key]), key
    seen = [set(r["seen"]) for r in ranks]
    assert seen[0] and seen[1] and not seen[0] & seen[1]   # each process trained on its own share
    assert len(seen[0] | seen[1]) == 16                    # 4 iterations x 2 processes x 2 images = one epoch
    checkpoints = list((out / "checkpoints").glob("*.pth"))
    assert [p.name for p in checkpoints] == ["yolact_tiny_0000004.pth"]     # written once, by rank 0
    log = (out / "log.csv").read_text().splitlines()
    assert len(log) == 3 and log[0].startswith("iteration")                 # header + 2 rows, not 4
