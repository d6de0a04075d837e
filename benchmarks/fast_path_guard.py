"""The fast path's correctness guard over many images: how often each rule holds, on this CPU.

    python benchmarks/fast_path_guard.py                   # bf16, shipped yolact_tiny, val images 0-29
    python benchmarks/fast_path_guard.py --autocast fp32 --images 100
    YOLACT_EDU_EMULATED_BF16=1 python benchmarks/fast_path_guard.py --images 100   # a CPU without bf16

For each image, eager fp32 ``predict`` and the ``optimize()``d copy's are matched detection to
detection (``yolact_edu.ops.agreement.detection_agreement``: same class, boxes within 1 px, mask
IoU >= 0.95) under two rules: the strict one, over the top 20, and the one
``tests/test_fast_path.py`` asserts, over the detections scoring at least ``--min-score``. Prints the
images where each fails, the lowest mask IoU of the confident detections and the largest score change.
"""
from __future__ import annotations

import argparse

from yolact_edu.bench.cpu import this_cpu
from yolact_edu.lessons.pretrained import shapes_dataset, shipped_model
from yolact_edu.ops.agreement import detection_agreement


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--autocast", default="bf16", choices=("auto", "fp32", "fp16", "bf16"))
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--min-score", type=float, default=0.3, help="the confident rule's threshold")
    args = parser.parse_args()
    model = shipped_model("yolact_tiny")
    fast = model.optimize(autocast=args.autocast)
    dataset = shapes_dataset("val")
    count = min(args.images, len(dataset))
    strict_failures, confident_failures = [], []
    largest_score_change, lowest_confident_iou = 0.0, 1.0
    for index in range(count):
        image = dataset.load_image(index)
        reference, found = model.predict(image), fast.predict(image)
        report = detection_agreement(reference, found, top=args.top)
        largest_score_change = max(largest_score_change, report["max_score_diff"])
        if not report["agrees"]:
            weakest = float(reference.scores[report["compared"] - 1])
            strict_failures.append(f"image {index}: mask IoU {report['min_mask_iou']:.3f}, boxes "
                                   f"{report['max_box_px']:g} px, unmatched {report['unmatched']}, "
                                   f"weakest compared score {weakest:.3f}")
        confident = detection_agreement(reference[reference.scores >= args.min_score], found, top=args.top)
        lowest_confident_iou = min(lowest_confident_iou, confident["min_mask_iou"])
        if not (confident["agrees"] and confident["max_score_diff"] < 0.05):
            confident_failures.append(f"image {index}: mask IoU {confident['min_mask_iou']:.3f}, boxes "
                                      f"{confident['max_box_px']:g} px, unmatched {confident['unmatched']}, "
                                      f"score change {confident['max_score_diff']:.3f}")
    print(f"CPU: {this_cpu().describe()}")
    print(f"{fast.fast_path.describe()}, {count} val images; largest score change {largest_score_change:.4f}")
    print(f"strict rule (top {args.top}): holds on {count - len(strict_failures)} of {count} images")
    print("\n".join(strict_failures))
    print(f"confident rule (scores >= {args.min_score}): holds on {count - len(confident_failures)} of {count} "
          f"images; lowest mask IoU {lowest_confident_iou:.3f}")
    print("\n".join(confident_failures))


if __name__ == "__main__":
    main()
