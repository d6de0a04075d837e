"""``yolact-edu export --format onnx``: any family's network as an ONNX file, checked with onnxruntime."""
from __future__ import annotations

from .common import command_inputs, formatter, non_negative_int, output_folder

FORMATS = ("onnx",)


def add_parser(sub) -> None:
    export = sub.add_parser(
        "export", help="export a model of any family to ONNX (network outputs; what post-processing needs beside it)",
        formatter_class=formatter,
        description="Write the network (normalised image [B,3,S,S] -> the model's raw outputs; dynamic batch, one "
                    "image per run for Mask R-CNN, which is exported whole) as ONNX, and beside it OUT.json (config, "
                    "post-processing, SHA-256 of every file), YOLACT's priors as OUT.priors.npy and the "
                    "per-detection heads (CenterMask's mask head, YOLACT++'s mask-IoU net) as OUT.<head>.onnx; then "
                    "run it with onnxruntime on the sample image and print how far its raw outputs and detections "
                    "are from PyTorch's. An earlier export at OUTPUT is replaced (its files this export has not are "
                    "removed); a file yolact-edu did not write only with --force; an input never. Needs: pip install "
                    "\"yolact_edu[onnx]\". Run it with yolact_edu.deploy.onnx.OnnxModel.",
        epilog="examples:\n"
               "  yolact-edu export --format onnx --weights outputs/demo/yolact_tiny_shapes.pth --output tiny.onnx\n"
               "  yolact-edu export --format onnx --weights yolact_resnet50_54_800000.pth --output r50.onnx\n"
               "  yolact-edu export --format onnx --config centermask_tiny --output centermask.onnx   # random weights")
    export.add_argument("--format", choices=FORMATS, default="onnx", help="(default: %(default)s)")
    export.add_argument("--weights", help="checkpoint (.pth, yolact_edu of any family, or official YOLACT); without "
                                          "it a randomly initialised model of --config")
    export.add_argument("--config", help="model name, any family (default: from the weights, else yolact_tiny)")
    export.add_argument("--output", required=True,
                        help="the .onnx file to write (refused if it exists and yolact-edu did not write it, "
                             "unless --force)")
    export.add_argument("--seed", type=non_negative_int, default=0, help="seed of the random model (default: 0)")
    export.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    export.add_argument("--force", action="store_true", help="replace existing OUTPUT files yolact-edu did not write")


def run(args) -> int:
    from pathlib import Path

    import torch

    from ..build import build_model
    from ..data.images import sample_image
    from ..deploy import onnx
    from ..training.checkpoint import load_model

    output = Path(args.output)
    if output.suffix != ".onnx":
        raise ValueError(f"--output must end in .onnx, got {args.output}")
    # The graph and its JSON checked before the model is loaded; export_onnx checks the family's other files.
    output_folder(args, output.parent).check([output.name, onnx.description_path(output).name])
    if args.weights:
        model = load_model(args.weights, config=args.config, device="cpu")
    else:
        torch.manual_seed(args.seed)
        model = build_model(args.config or "yolact_tiny").eval()
        print(f"note: no --weights given, exporting a randomly initialised {model.cfg.name} (seed {args.seed})")
    path = onnx.export_onnx(model, output, force=args.force, protect=command_inputs(args))
    runtime = onnx.OnnxModel(path)
    meta_path = onnx.description_path(path)
    companions = ", ".join(p.name for p in [meta_path, *onnx.companion_paths(path, onnx.read_description(meta_path))])
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {companions}")
    if args.no_check:
        return 0
    report = onnx.compare_with_pytorch(model, runtime, [sample_image()])
    found = report["detections"][0]
    print(f"onnxruntime vs PyTorch on the sample image: raw outputs within {report['raw']:.1e} (relative to each "
          f"output's largest value); {found['counts'][1]} detections against {found['counts'][0]}, "
          f"{found['matched']}/{found['compared']} matched, boxes within {found['max_box_px']:g} px, "
          f"mask IoU >= {found['min_mask_iou']:.3f}")
    return 0 if report["agrees"] else 1


__all__ = ["add_parser", "run"]
