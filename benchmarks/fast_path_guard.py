"""The fast path's correctness guard over many images: how often the issue's rule holds.

    python benchmarks/fast_path_guard.py                   # bf16, shipped yolact_tiny, val images 0-29
    python benchmarks/fast_path_guard.py --autocast fp32 --images 100

For each image, eager fp32 ``predict`` and the ``optimize()``d copy's are matched detection to
detection over the top 20 (``yolact_edu.ops.agreement.detection_agreement``: same class, boxes within
1 px, mask IoU >= 0.95). Prints the images where the rule fails, with the lowest mask IoU, the
largest box difference and the score of the weakest detection compared, and the largest score change.
"""
from __future__ import annotations

import argparse

from yolact_edu.lessons.pretrained import shapes_dataset, shipped_model
from yolact_edu.ops.agreement import detection_agreement


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--autocast", default="bf16", choices=("auto", "fp32", "fp16", "bf16"))
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    model = shipped_model("yolact_tiny")
    fast = model.optimize(autocast=args.autocast)
    dataset = shapes_dataset("val")
    failures, largest_score_change = [], 0.0
    for index in range(min(args.images, len(dataset))):
        image = dataset.load_image(index)
        reference, found = model.predict(image), fast.predict(image)
        report = detection_agreement(reference, found, top=args.top)
        largest_score_change = max(largest_score_change, report["max_score_diff"])
        if not report["agrees"]:
            weakest = float(reference.scores[report["compared"] - 1])
            failures.append(f"image {index}: mask IoU {report['min_mask_iou']:.3f}, boxes {report['max_box_px']:g} px, "
                            f"unmatched {report['unmatched']}, weakest compared score {weakest:.3f}")
    print(f"{fast.fast_path.describe()}: the guard holds on {args.images - len(failures)} of {args.images} images "
          f"(top {args.top}); largest score change {largest_score_change:.4f}")
    print("\n".join(failures))


if __name__ == "__main__":
    main()
