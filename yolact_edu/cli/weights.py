"""``yolact-edu weights``: list and download the original implementation's checkpoints; export a
trained one, small and carrying its own figures."""
from __future__ import annotations

import sys
from pathlib import Path

from .common import add_device_option, checkpoint_val_set, device, formatter, non_negative_int, output_folder


def add_parser(sub) -> None:
    weights = sub.add_parser("weights", help="list or download the official checkpoints; export a trained one",
                             formatter_class=formatter,
                             epilog="examples:\n  yolact-edu weights list\n"
                                    "  yolact-edu weights download yolact_resnet50 --dir weights/\n"
                                    "  yolact-edu weights download all")
    wsub = weights.add_subparsers(dest="weights_command", required=True, metavar="ACTION")
    wsub.add_parser("list", help="released checkpoints, their URLs and whether they are here")
    download = wsub.add_parser("download", help="fetch checkpoints (resumable, verified by loading)",
                               formatter_class=formatter,
                               epilog="examples:\n  yolact-edu weights download yolact_base\n"
                                      "  yolact-edu weights download all --dir weights/")
    download.add_argument("names", nargs="+", help="config names, or 'all'")
    download.add_argument("--dir", help="target folder (default: $YOLACT_EDU_HOME/weights or "
                                        "~/.cache/yolact_edu/weights)")
    download.add_argument("--base-url", help="mirror serving the files as BASE_URL/FILE_NAME")
    download.add_argument("--force", action="store_true", help="download again even if present")
    download.add_argument("--retries", type=non_negative_int, default=3)
    export = wsub.add_parser(
        "export", help="strip a training checkpoint to a small float16 file that carries its own figures",
        formatter_class=formatter,
        description="Write config, weights and category ids in float16 (optimiser state dropped), scored on a "
                    "validation set as they will be loaded; the figures, the run folder's record (iterations, "
                    "images/s, training time) and --command go into the file's metadata, which is what the "
                    "notebooks quote.",
        epilog="example:\n  yolact-edu weights export outputs/run/checkpoints/yolact_tiny_0020000.pth "
               "yolact_tiny_shapes.pth \\\n      --command 'yolact-edu train ...'")
    export.add_argument("checkpoint", help="a yolact_edu training checkpoint")
    export.add_argument("out", help="the file to write (refused if it exists, unless --force)")
    export.add_argument("--full-precision", action="store_true", help="keep float32 weights")
    export.add_argument("--annotations", help="COCO instances JSON to score on (default: the shapes val split)")
    export.add_argument("--images", help="image folder (default: the shapes val images)")
    export.add_argument("--command", dest="training_command", help="the command that trained it, recorded as given")
    add_device_option(export)
    export.add_argument("--force", action="store_true", help="replace an existing OUT")


def run(args) -> int:
    from ..weights import OFFICIAL_FILES, download_official, official_url, weights_dir

    if args.weights_command == "export":
        return export(args)
    if args.weights_command == "list":
        here = weights_dir()
        for name, filename in OFFICIAL_FILES.items():
            status = "downloaded" if (here / filename).is_file() else "not downloaded"
            print(f"{name:22s} {filename:38s} {status}\n{'':22s} {official_url(name)}")
        print(f"folder: {here}  (yolact_im400 has no released checkpoint)")
        return 0
    names = list(OFFICIAL_FILES) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in OFFICIAL_FILES]
    if unknown:
        print(f"error: no released checkpoint for {', '.join(unknown)}; "
              f"choose from {', '.join(OFFICIAL_FILES)} or 'all'", file=sys.stderr)
        return 2
    for name in names:
        path = download_official(name, args.dir, base_url=args.base_url, overwrite=args.force,
                                 retries=args.retries)
        print(f"{name}: {path}")
    return 0


def export(args) -> int:
    from ..training.checkpoint import read_checkpoint
    from ..training.export import export_small

    out = Path(args.out)
    outputs = output_folder(args, out.parent)
    outputs.check([out.name])                         # before the checkpoint is scored, not after
    val, annotations = checkpoint_val_set(args, args.checkpoint)
    run_dir = Path(args.checkpoint).resolve().parent.parent
    outputs.claim(out.name)
    written = export_small(args.checkpoint, out, half=not args.full_precision, val_dataset=val,
                           run_dir=run_dir if (run_dir / "log.csv").is_file() else None,
                           command=args.training_command, device=device(args.device))
    figures = read_checkpoint(written)["metadata"]["val"]
    print(f"wrote {written} ({written.stat().st_size / 1e6:.1f} MB): box AP {figures['box_AP']:.3f}, "
          f"mask AP {figures['mask_AP']:.3f} on {figures['images']} images of {annotations}")
    return 0


__all__ = ["add_parser", "run", "export"]
