"""``yolact-edu data``: make the synthetic shapes set, build a real COCO subset, draw annotations."""
from __future__ import annotations

from pathlib import Path

from .common import command_inputs, formatter, non_negative_int, output_folder, positive_int
from .predict import output_names


def add_parser(sub) -> None:
    data = sub.add_parser("data", help="make the synthetic set, build a real COCO subset, look at annotations",
                          formatter_class=formatter,
                          epilog="examples:\n  yolact-edu data shapes\n"
                                 "  yolact-edu data coco-subset --download-annotations data/coco "
                                 "--categories cat dog --max-images 200\n"
                                 "  yolact-edu data show data/shapes/instances_train.json data/shapes/train")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    shapes = dsub.add_parser("shapes", help="generate the synthetic COCO-format shapes set (seconds, no download)",
                             formatter_class=formatter,
                             epilog="examples:\n  yolact-edu data shapes\n"
                                    "  yolact-edu data shapes --root data/shapes_s1 --seed 1 --num-train 200\n"
                                    "  yolact-edu data shapes --variant crowded --num-train 6000 --num-val 200")
    shapes.add_argument("--variant", choices=("plain", "crowded"), default="plain",
                        help="plain: the bundled set; crowded: crowds of 5-15 objects of one class, objects "
                             "inside other objects' boxes, distractor strokes (default: %(default)s)")
    shapes.add_argument("--root", help="output folder (default: data/shapes, or data/shapes_crowded for "
                                       "--variant crowded)")
    shapes.add_argument("--num-train", type=positive_int, default=600, help="training images (default: %(default)s)")
    shapes.add_argument("--num-val", type=positive_int, default=100, help="validation images (default: %(default)s)")
    shapes.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default: %(default)s)")
    shapes.add_argument("--force", action="store_true", help="regenerate even if a complete set is there")

    subset = dsub.add_parser(
        "coco-subset", help="select categories/images of real COCO and fetch the images",
        formatter_class=formatter,
        description="Write a COCO subset: an annotation file with the chosen categories and at most "
                    "--max-images images (seeded), and those images, copied from a local COCO folder "
                    "or downloaded from each image's coco_url (concurrent, retried, resumable).",
        epilog="examples:\n"
               "  yolact-edu data coco-subset --annotations coco/annotations/instances_val2017.json "
               "--images-from coco/val2017 --categories person --max-images 50\n"
               "  yolact-edu data coco-subset --download-annotations data/coco --split val2017 "
               "--categories cat dog --max-images 200 --output data/coco_subset")
    source = subset.add_mutually_exclusive_group(required=True)
    source.add_argument("--annotations", help="a local instances_*.json")
    source.add_argument("--download-annotations", metavar="DIR",
                        help="download and safely extract the official 2017 annotations archive into DIR")
    subset.add_argument("--split", default="val2017", help="split, with --download-annotations (default: %(default)s)")
    subset.add_argument("--categories", nargs="+", help="category names or ids (default: all)")
    subset.add_argument("--max-images", type=positive_int, default=100, help="default: %(default)s")
    subset.add_argument("--seed", type=non_negative_int, default=0, help="default: %(default)s")
    subset.add_argument("--images-from", help="local folder with the COCO images (else download them)")
    subset.add_argument("--output", default="data/coco_subset", help="default: %(default)s")
    subset.add_argument("--workers", type=positive_int, default=8, help="parallel downloads (default: %(default)s)")
    subset.add_argument("--retries", type=non_negative_int, default=3, help="default: %(default)s")

    show = dsub.add_parser("show", help="draw the ground truth of some images (look before you train)",
                           formatter_class=formatter,
                           epilog="examples:\n  yolact-edu data show data/shapes/instances_val.json data/shapes/val "
                                  "--count 4 --output outputs/annotations")
    show.add_argument("annotations", help="instances JSON")
    show.add_argument("images", help="folder of the images")
    show.add_argument("--first", type=non_negative_int, default=0,
                      help="index of the first image (default: %(default)s)")
    show.add_argument("--count", type=positive_int, default=4, help="how many images (default: %(default)s)")
    show.add_argument("--output", default="outputs/annotations", help="default: %(default)s")
    show.add_argument("--force", action="store_true",
                      help="replace existing files that yolact-edu did not write (never the dataset's images)")
    subset.add_argument("--force", action="store_true",
                        help="replace an existing annotation file that yolact-edu did not write")


def run(args) -> int:
    if args.data_command == "shapes":
        from ..data.shapes import DEFAULT_ROOTS, make_shapes, shapes_exist
        root = args.root or DEFAULT_ROOTS[args.variant]
        existed = shapes_exist(root) and not args.force
        paths = make_shapes(root, num_train=args.num_train, num_val=args.num_val, seed=args.seed,
                            overwrite=args.force, progress=True, variant=args.variant)
        kind = "shapes set" if args.variant == "plain" else f"{args.variant} shapes set"
        print(f"{'kept the existing' if existed else 'wrote the'} {kind} in {paths['root']}: "
              f"{paths['train_annotations']}, {paths['val_annotations']}")
        return 0
    if args.data_command == "coco-subset":
        from ..data.coco_annotations import annotations_file, download_coco_annotations
        from ..data.coco_subset import build_coco_subset
        annotations = args.annotations
        if args.download_annotations:
            folder = download_coco_annotations(args.download_annotations, retries=args.retries)
            annotations = annotations_file(folder, args.split)
        path = build_coco_subset(annotations, args.output, categories=args.categories,
                                 max_images=args.max_images, seed=args.seed, images_from=args.images_from,
                                 workers=args.workers, retries=args.retries, split_name="subset",
                                 force=args.force, protect=command_inputs(args))
        print(f"wrote {path} (images in {Path(args.output) / 'images'})")
        return 0
    return show_annotations(args)


def show_annotations(args) -> int:
    from ..data import CocoDataset
    from ..files.output_folder import OutputConflict, is_inside
    from ..viz.draw import draw_annotations, encode_image

    if is_inside(args.output, args.images):
        raise OutputConflict(f"--output {args.output} lies in the dataset's image folder {args.images}: the "
                             "drawings would mix with (or replace) the images; choose another folder")
    dataset = CocoDataset(args.annotations, args.images)
    chosen = range(args.first, min(len(dataset), args.first + args.count))
    if not chosen:
        raise ValueError(f"--first {args.first} is past the last image ({len(dataset)} usable images in "
                         f"{args.annotations})")
    images = [dataset.image_dir / str(dataset.image_info(i)["file_name"]) for i in chosen]
    outputs = output_folder(args, args.output, protect=images)
    names = output_names(images)     # one name per image, as predict gives them
    outputs.claim(*names)
    for index, name in zip(chosen, names):
        print(f"wrote {outputs.write_bytes(name, encode_image(draw_annotations(dataset, index)))}")
    return 0


__all__ = ["add_parser", "run", "show_annotations"]
