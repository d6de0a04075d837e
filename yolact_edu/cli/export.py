"""``yolact-edu export --format onnx``: YOLACT's network as an ONNX file, checked with onnxruntime."""
from __future__ import annotations

from .common import command_inputs, formatter, non_negative_int

FORMATS = ("onnx",)


def add_parser(sub) -> None:
    export = sub.add_parser(
        "export", help="export a YOLACT to ONNX (network outputs; priors and config beside it)",
        formatter_class=formatter,
        description="Write the network (image [B,3,S,S] normalised -> loc, conf, coef, proto; dynamic batch) as "
                    "ONNX, the priors as OUT.priors.npy and the config and post-processing as OUT.json; then run "
                    "it with onnxruntime on one image and print how far its raw outputs and detections are from "
                    "PyTorch's. Needs: pip install \"yolact_edu[onnx]\". Run it with "
                    "yolact_edu.deploy.onnx.OnnxYolact.",
        epilog="examples:\n"
               "  yolact-edu export --format onnx --weights outputs/demo/yolact_tiny_shapes.pth --output tiny.onnx\n"
               "  yolact-edu export --format onnx --weights yolact_resnet50_54_800000.pth --output r50.onnx")
    export.add_argument("--format", choices=FORMATS, default="onnx", help="(default: %(default)s)")
    export.add_argument("--weights", help="checkpoint (.pth, yolact_edu or official); without it a randomly "
                                          "initialised model of --config")
    export.add_argument("--config", help="config name (default: from the weights, else yolact_tiny)")
    export.add_argument("--output", required=True,
                        help="the .onnx file to write (refused if it exists, unless --force)")
    export.add_argument("--seed", type=non_negative_int, default=0, help="seed of the random model (default: 0)")
    export.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    export.add_argument("--force", action="store_true", help="replace existing OUTPUT files")


def run(args) -> int:
    import torch

    from ..build import build_model
    from ..data.images import sample_image
    from ..deploy.onnx import OnnxYolact, export_onnx
    from ..ops.agreement import detection_agreement
    from ..training.checkpoint import load_model

    if args.weights:
        model = load_model(args.weights, config=args.config, device="cpu")
    else:
        torch.manual_seed(args.seed)
        model = build_model(args.config or "yolact_tiny").eval()
        print(f"note: no --weights given, exporting a randomly initialised {model.cfg.name} (seed {args.seed})")
    path = export_onnx(model, args.output, force=args.force, protect=command_inputs(args))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB), {path.with_suffix('.priors.npy').name}, "
          f"{path.with_suffix('.json').name}")
    if args.no_check:
        return 0
    image = sample_image()
    runtime = OnnxYolact(path)
    x = model.preprocess(image)
    with torch.no_grad():
        reference = model.eval()(x)
    exported = runtime.raw(x)
    worst = max(float((exported[name] - reference[name]).abs().max() / reference[name].abs().max().clamp(min=1e-12))
                for name in ("loc", "conf", "coef", "proto"))
    agreement = detection_agreement(model.predict(image), runtime.predict(image), top=100)
    print(f"onnxruntime vs PyTorch on the sample image: raw outputs within {worst:.1e} (relative to each "
          f"output's largest value); {agreement['matched']}/{agreement['compared']} detections matched, boxes "
          f"within {agreement['max_box_px']:g} px, mask IoU >= {agreement['min_mask_iou']:.3f}")
    return 0 if agreement["agrees"] and worst <= 1e-4 else 1


__all__ = ["add_parser", "run"]
