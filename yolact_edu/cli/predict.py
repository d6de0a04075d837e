"""The ``yolact-edu predict`` subcommand: images (files or folders) -> annotated PNGs + detections.json.

    yolact-edu predict                                   # bundled sample, untrained yolact_tiny
    yolact-edu predict photos/ --weights yolact_base_54_800000.pth --output out/

A folder contributes the images at its top; with ``--recursive`` also those in its subfolders
(hidden ones aside), each written under the same relative path in the output folder. Images are
read one at a time, so a folder of 12-megapixel photos is never held in memory at
once. An image that cannot be read is reported and skipped, the others are finished, and the
command then exits with status 1 and a summary. Every input gets its own output name, no
output lands on an input, and a file in the output folder that yolact-edu did not write is
replaced only with ``--force`` (see :mod:`yolact_edu.files.output_folder`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path, PurePosixPath

from ..files.output_folder import OutputConflict, file_identity, is_inside, same_file
from .common import (
    add_inference_options,
    describe_error,
    formatter,
    inference_model,
    output_folder,
    refuse_bf16_option,
)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
RESULTS = "detections.json"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``predict`` to ``subparsers`` (from ``ArgumentParser.add_subparsers``); returns it."""
    predict = subparsers.add_parser(
        "predict", help="segment images and write annotated PNGs + a detections JSON",
        formatter_class=formatter,
        description="Run a model on images (files or folders) and draw the detections. An image that "
                    "cannot be read is skipped (the command then exits with status 1 and says which).",
        epilog="examples:\n"
               "  yolact-edu predict                                  # bundled sample, untrained model\n"
               "  yolact-edu predict street.jpg --weights weights/yolact_base_54_800000.pth\n"
               "  yolact-edu predict photos/ --weights yolact_resnet50_54_800000.pth "
               "--score-threshold 0.3 --output out/\n"
               "  yolact-edu predict photos/ --recursive --output out/   # photos/a/1.jpg -> out/a/1.png")
    predict.add_argument("inputs", nargs="*", help="image files or folders (default: the bundled sample)")
    predict.add_argument("--recursive", action="store_true",
                         help="also read the images in the folders' subfolders (hidden ones aside); each output "
                              "keeps its relative path (default: a folder's top level only)")
    predict.add_argument("--output", default="outputs/predict", help="output folder (default: %(default)s)")
    add_inference_options(predict)
    return predict


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def subfolder_images(folder: Path) -> dict[PurePosixPath, list[Path]]:
    """{subfolder relative to ``folder``: its images} for every subfolder at any depth that holds
    images; hidden folders (``.git``, ``.ipynb_checkpoints``) and links to folders are not entered."""
    found: dict[PurePosixPath, list[Path]] = {}
    for parent, folders, _files in os.walk(folder):
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        if Path(parent) != folder:
            images = _images_in(Path(parent))
            if images:
                found[PurePosixPath(Path(parent).relative_to(folder).as_posix())] = images
    return found


def collect_images(inputs: list[str], recursive: bool = False) -> tuple[list[Path], list[Path], list[PurePosixPath]]:
    """(image files, folders given, each image's subfolder) from the command line's files and
    folders. A folder contributes its files with an image suffix, and with ``recursive`` those of
    its subfolders (:func:`subfolder_images`); the subfolder is the image's folder relative to the
    folder given ("." for a file given or a folder's top level). A file given twice counts once.

    Without ``recursive``, subfolders that hold images are reported in one note (or, where a folder
    has images only there, in the error) that says to pass --recursive."""
    paths: list[tuple[Path, PurePosixPath]] = []
    folders: list[Path] = []
    left_out: dict[Path, dict] = {}        # folder -> its subfolders with images, not read
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            top = [(p, PurePosixPath(".")) for p in _images_in(path)]
            below = subfolder_images(path)
            if recursive:
                top += [(p, sub) for sub, images in below.items() for p in images]
            elif below:
                left_out[path] = below
            if not top:
                raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {path}"
                                        + (f", but {_subfolders_phrase({path: below})}; pass --recursive to "
                                           "read them" if below and not recursive else ""))
            folders.append(path)
            paths += top
        elif path.is_file():
            paths.append((path, PurePosixPath(".")))
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    if left_out:
        print(f"note: {_subfolders_phrase(left_out)}, not read; pass --recursive to include them")
    unique: dict[tuple, tuple[Path, PurePosixPath]] = {}
    for path, sub in paths:
        unique.setdefault(file_identity(path), (path, sub))
    return [p for p, _ in unique.values()], folders, [sub for _, sub in unique.values()]


def _subfolders_phrase(left_out: dict[Path, dict]) -> str:
    """"photos has 2 subfolders with 7 images" (for several folders: "photos, scans have ...")."""
    subfolders = sum(len(below) for below in left_out.values())
    images = sum(len(found) for below in left_out.values() for found in below.values())
    names = ", ".join(str(folder) for folder in left_out)
    return (f"{names} {'has' if len(left_out) == 1 else 'have'} {subfolders} subfolder{'s' * (subfolders != 1)} "
            f"with {images} image{'s' * (images != 1)}")


def output_names(paths: list[Path]) -> list[str]:
    """One distinct PNG name per input: its stem where that is unique, else the stem with the
    input's suffix (``a.jpg``, ``a.png`` -> ``a_jpg.png``, ``a_png.png``), then with its folder's
    name (``x/a.jpg``, ``y/a.jpg`` -> ``x_a_jpg.png``, ``y_a_jpg.png``), then with its position."""
    def name(index: int, level: int) -> str:
        path = paths[index]
        parts = [path.stem]
        if level >= 1:
            parts.append(path.suffix.lstrip(".").lower() or "image")
        if level >= 2:
            parts.insert(0, path.resolve().parent.name or "root")
        if level >= 3:
            parts.append(str(index))
        return "_".join(parts) + ".png"

    levels = [0] * len(paths)
    while True:
        names = [name(i, level) for i, level in enumerate(levels)]
        counts = Counter(names)
        clashing = [i for i, n in enumerate(names) if counts[n] > 1]
        if not clashing:
            return names
        for i in clashing:
            levels[i] = min(levels[i] + 1, 3)


def relative_output_names(paths: list[Path], subfolders: list[PurePosixPath]) -> list[str]:
    """:func:`output_names` within each subfolder, under that subfolder: ``a/1.jpg`` -> ``a/1.png``."""
    names: list[str] = [""] * len(paths)
    for sub in dict.fromkeys(subfolders):
        indices = [i for i, s in enumerate(subfolders) if s == sub]
        for i, name in zip(indices, output_names([paths[i] for i in indices])):
            names[i] = (sub / name).as_posix()
    # a top-level output "x.png" and a subfolder named "x.png" cannot both exist
    folders = {parent.as_posix() for sub in subfolders for parent in (sub, *sub.parents)} - {"."}
    clash = sorted(set(names) & folders)
    if clash:
        raise ValueError(f"the output {clash[0]} would also be the name of an input subfolder; rename one of them")
    return names


def detection_records(detections, source: str, output: str) -> list[dict]:
    """``detections.json`` entries of one image: COCO-style ``[x, y, w, h]`` boxes and RLE masks."""
    import numpy as np
    from pycocotools import mask as mask_utils

    records = []
    for i in range(len(detections)):
        x1, y1, x2, y2 = detections.boxes[i].tolist()
        rle = mask_utils.encode(np.asfortranarray(detections.masks[i].numpy().astype(np.uint8)))
        records.append({"file_name": source, "output": output, "label": int(detections.labels[i]),
                        "category": detections.class_labels[i], "score": float(detections.scores[i]),
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}})
    return records


def run(args) -> int:
    """Execute the parsed ``predict`` command; returns the exit status."""
    from ..data.images import read_image, sample_image
    from ..viz.draw import draw_detections, encode_image

    refuse_bf16_option(args, args.autocast == "bf16")
    paths, folders, subfolders = collect_images(args.inputs, args.recursive) if args.inputs else ([], [], [])
    for folder in folders:
        if same_file(folder, args.output):
            raise OutputConflict(f"--output {args.output} is also an input folder: the drawn images would "
                                 "land among the photos and be read as inputs next time; choose another folder")
        if args.recursive and is_inside(args.output, folder):
            raise OutputConflict(f"--output {args.output} lies in the input folder {folder}, which --recursive "
                                 "reads: the drawn images would be read as inputs next time; choose another folder")
    outputs = output_folder(args, args.output, protect=paths)
    names = relative_output_names(paths, subfolders) if paths else ["sample.png"]
    # Checked and recorded in the ledger at once, before the model is even built (one ledger write,
    # however many images).
    outputs.claim(*names, RESULTS)
    model, threshold, detect_kwargs = inference_model(args)
    sources = [str(p) for p in paths] or ["sample.jpg"]
    records, failures = [], []
    for index, (source, name) in enumerate(zip(sources, names)):
        try:
            image = read_image(paths[index]) if paths else sample_image()
        except (OSError, ValueError) as exc:
            failures.append(f"{source}: {describe_error(exc)}")
            print(f"skipped {source}: {describe_error(exc)}", file=sys.stderr)
            continue
        start = time.perf_counter()
        # score threshold and top-k inside detect: only the kept detections' masks are upsampled
        detections = model.predict(image, autocast=args.autocast, score_threshold=threshold,
                                   top_k=args.top_k, **detect_kwargs).cpu()
        elapsed = time.perf_counter() - start
        png = outputs.write_bytes(name, encode_image(draw_detections(image, detections)))
        print(f"{source}: {len(detections)} detections in {elapsed * 1000:.0f} ms -> {png}")
        records += detection_records(detections, source, name)
        del image, detections
    print(f"wrote {outputs.write_text(RESULTS, json.dumps(records, indent=1))}")
    if failures:
        print(f"error: {len(failures)} of {len(sources)} images could not be read (the other "
              f"{len(sources) - len(failures)} are done): " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


__all__ = ["add_parser", "run", "collect_images", "subfolder_images", "output_names", "relative_output_names",
           "detection_records", "IMAGE_SUFFIXES"]
