"""Peak memory of inference on a 12-megapixel photo (4000x3000), each case in a fresh process.

    python benchmarks/memory.py                          # yolact_base, CPU
    python benchmarks/memory.py --config yolact_resnet50 --size 4000 3000
    python benchmarks/memory.py --config condinst_tiny --cases "library predict" "cli predict, 1 photo"

A shipped family (``yolact_tiny``, ``maskrcnn_tiny``, ``condinst_tiny``, ``solov2_tiny``,
``blendmask_tiny``, ``centermask_tiny``) runs with its trained weights, every other config with
random weights.

Cases (thresholds at 0 so that every case keeps its full number of detections, as on a busy
photo; random YOLACT weights get a sharpened class head):

* ``library predict``: ``model.predict(photo, conf_threshold=0)``, the default 100 detections,
  each mask a bool [3000,4000] as the Detections contract says;
* ``cli predict, 1 photo`` and ``cli predict, 3 photos``: ``yolact-edu predict`` on JPEG files
  (draws the top 15); the second shows whether inputs are streamed or all decoded first.

Each case runs in its own process and reports that process's peak resident set size
(``VmHWM`` of /proc/self/status on Linux), next to the peak just before the photo is processed (Python, torch and the
model's weights), so the increase is what inference itself costs. Run it on an idle machine; to
compare with another version of the package, run it with that version first on PYTHONPATH.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CASES = ("library predict", "cli predict, 1 photo", "cli predict, 3 photos")

CHILD = r"""
import json, resource, sys
import numpy as np, torch, cv2
import yolact_edu as ye
case, config, folder = sys.argv[1], sys.argv[2], sys.argv[3]
photos = sorted(str(p) for p in __import__("pathlib").Path(folder).glob("photo*.jpg"))
def peak_mb():
    # VmHWM, not ru_maxrss: after fork+exec, ru_maxrss starts at the parent's peak (Linux)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
torch.manual_seed(0)
shipped = {}
try:
    from yolact_edu.lessons.pretrained import SHIPPED_WEIGHTS as shipped
except ImportError:
    pass
yolact = config.startswith("yolact")
if case == "library predict":
    if config in shipped:
        from yolact_edu.lessons.pretrained import shipped_model
        model = shipped_model(config)
    else:
        model = ye.build_model(config).eval() if hasattr(ye, "build_model") else ye.Yolact(config).eval()
        if yolact:
            with torch.no_grad():
                model.prediction_layers[0].conf_layer.weight.mul_(20)
    photo = cv2.cvtColor(cv2.imread(photos[0]), cv2.COLOR_BGR2RGB)
    before = peak_mb()
    detections = model.predict(photo, **({"conf_threshold": 0.0} if yolact else {"score_threshold": 0.0}))
    count = len(detections)
else:
    import importlib
    from yolact_edu.cli import main      # the entry point, in every version of the package
    n = int(case.split(",")[1].split()[0])
    # note the peak once the model is built (wherever this version of the package keeps that step)
    modules = []
    for name in ("yolact_edu.cli.common", "yolact_edu.cli.predict",            # this layout
                 "yolact_edu.cli_common", "yolact_edu.cli_predict", "yolact_edu.cli"):  # before issue 12
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            pass
    built = next(m.inference_model for m in modules if hasattr(m, "inference_model"))
    marks = {}
    def measured(args):
        result = built(args)
        marks["before"] = peak_mb()
        return result
    for module in modules:
        if hasattr(module, "inference_model"):
            module.inference_model = measured
    model_options = ["--weights", str(shipped[config])] if config in shipped else ["--config", config]
    status = main(["predict", *photos[:n], *model_options, "--output", folder + "/out" + str(n),
                   "--device", "cpu", "--score-threshold", "0"])
    assert status == 0, status
    before, count = marks["before"], len(json.load(open(folder + "/out" + str(n) + "/detections.json")))
print(json.dumps({"case": case, "before_mb": before, "peak_mb": peak_mb(), "detections": count,
                  "package": ye.__file__}))
"""


def make_photos(folder: Path, width: int, height: int, count: int = 3) -> None:
    """JPEG 'photos': smooth colour fields with texture (noise alone would compress badly)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    for i in range(count):
        small = rng.integers(0, 256, (height // 100, width // 100, 3), dtype=np.uint8)
        image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        image = np.clip(image.astype(np.int16) + rng.integers(-20, 21, image.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"photo{i}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="yolact_base")
    parser.add_argument("--size", nargs=2, type=int, default=[4000, 3000], metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    args = parser.parse_args()

    import torch

    import yolact_edu
    from yolact_edu.bench.timing import machine_name

    print(f"# {machine_name('cpu')} | torch {torch.__version__} | {args.config} | "
          f"{args.size[0]}x{args.size[1]} photo | peak RSS of a fresh process per case | "
          f"package {Path(yolact_edu.__file__).parent}")
    print("| case | detections | peak before inference MB | peak MB | inference adds MB |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        make_photos(Path(folder), *args.size)
        for case in args.cases:
            # cwd: the temporary folder, so the package comes from the environment (or PYTHONPATH)
            out = subprocess.run([sys.executable, "-c", CHILD, case, args.config, folder],
                                 capture_output=True, text=True, cwd=folder)
            if out.returncode:
                print(f"| {case} | failed: {out.stderr.strip().splitlines()[-1]} | | | |")
                continue
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {case} | {row['detections']} | {row['before_mb']:.0f} | {row['peak_mb']:.0f} | "
                  f"{row['peak_mb'] - row['before_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
