"""Build a small, real COCO subset: a few categories, a few hundred images, one JSON.

Retraining YOLACT on all of COCO takes days; the retraining notebook instead picks
some categories and a seeded sample of images that contain them. Two steps:

    >>> from yolact_edu.data.coco_annotations import annotations_file, download_coco_annotations
    >>> from yolact_edu.data.coco_subset import build_coco_subset
    >>> ann_dir = download_coco_annotations("data/coco")            # ~250 MB once, then cached
    >>> subset = build_coco_subset(annotations_file(ann_dir, "val2017"), "data/coco_pets",
    ...                            categories=["cat", "dog"], max_images=200, seed=0)
    >>> subset                                                      # data/coco_pets/instances_subset.json
                                                                    # images in data/coco_pets/images/

Both steps are safe to interrupt and re-run. Downloads go through
:func:`yolact_edu.files.download.download_file` (resumable, atomic, retried); the annotation
archive is checked member by member before anything is extracted (:mod:`.coco_annotations`); image file names
from the JSON are checked before anything is fetched, because a crafted annotation
file must not be able to write outside the output folder. The subset JSON is written
last, so its presence means every image it lists is on disk.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path, PureWindowsPath

import cv2
from pycocotools.coco import COCO
from tqdm import tqdm

from ..files.atomic_write import temporary_path
from ..files.download import download_file
from ..files.output_folder import OutputFolder
from .coco import coco_from_dict
from .images import truncation_problem

__all__ = ["CocoSubsetError", "build_coco_subset", "subset_summary"]

class CocoSubsetError(RuntimeError):
    """Some images of a subset could not be fetched; the ones that could are kept on disk."""


# --------------------------------------------------------------------------- subset


def _load_coco(path: Path) -> COCO:
    """Load and index an instances JSON with pycocotools, naming the file in every error."""
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file {path} does not exist")
    try:
        with open(path) as fh:
            dataset = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    keys = ("images", "annotations", "categories")
    missing = [key for key in keys if not isinstance(dataset, dict) or key not in dataset]
    if missing:
        raise ValueError(f"{path} is not a COCO instances file: missing {', '.join(missing)}")
    return coco_from_dict(dataset)


def _resolve_categories(coco: COCO, categories: Iterable[str | int] | None) -> list[int]:
    """Category ids, in the file's order, for names or ids; ValueError listing unknown ones."""
    all_ids = [cat["id"] for cat in coco.dataset["categories"]]
    if categories is None:
        return all_ids
    if isinstance(categories, str | int):
        categories = [categories]
    by_name = {cat["name"]: cat["id"] for cat in coco.dataset["categories"]}
    wanted, unknown = set(), []
    for item in categories:
        if isinstance(item, str) and item in by_name:
            wanted.add(by_name[item])
        elif isinstance(item, int) and item in coco.cats:
            wanted.add(item)
        elif isinstance(item, str) and item.strip().isdigit() and int(item) in coco.cats:
            wanted.add(int(item))  # ids typed on a command line arrive as text
        else:
            unknown.append(item)
    if unknown:
        raise ValueError(f"unknown COCO categories {unknown}; valid names include {list(by_name)[:8]}")
    if not wanted:
        raise ValueError("categories is empty; pass None to keep all categories")
    return [cat_id for cat_id in all_ids if cat_id in wanted]


def _check_file_name(image: dict) -> str:
    """Return the image's file_name if it names a file directly inside a folder; ValueError otherwise."""
    name = image.get("file_name")
    if (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or "/" in name
        or "\\" in name
        or "\0" in name
        or PureWindowsPath(name).drive
    ):
        raise ValueError(
            f"refusing image id {image.get('id')} with file_name {name!r}: "
            "it must be a plain file name (no folders, '..' or absolute paths)"
        )
    return name


def _link_or_copy(source: Path, dest: Path) -> None:
    """Put ``source`` at ``dest`` atomically: a hard link where possible (no extra space), else a copy."""
    if not source.is_file():
        raise FileNotFoundError(f"{source} does not exist")
    tmp = temporary_path(dest)
    try:
        try:
            os.link(source, tmp)
        except OSError:  # another file system, or links not supported
            shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _image_problem(path: Path) -> str | None:
    """Why the file at ``path`` is not a complete image, or None. A proxy or CDN can answer 200 with
    an HTML error page (OpenCV's signature check catches that without decoding the picture), and a
    server that sends no Content-Length can end a body early (the end marker catches that)."""
    if not cv2.haveImageReader(str(path)):
        return "not an image OpenCV can read"
    return truncation_problem(path)


def _check_image(path: Path) -> None:
    problem = _image_problem(path)
    if problem is not None:
        raise ValueError(f"the downloaded file is {problem}")


def subset_summary(dataset: dict) -> str:
    """One line per category: how many annotations and images of it a COCO dict holds."""
    names = {cat["id"]: cat["name"] for cat in dataset["categories"]}
    anns = Counter(ann["category_id"] for ann in dataset["annotations"])
    images = Counter(cat for cat, _ in {(a["category_id"], a["image_id"]) for a in dataset["annotations"]})
    lines = [f"{len(dataset['images'])} images, {len(dataset['annotations'])} annotations"]
    lines += [
        f"  {names[cat_id]:>16} (id {cat_id}): {anns[cat_id]} annotations in {images[cat_id]} images"
        for cat_id in names
    ]
    return "\n".join(lines)


def build_coco_subset(
    annotations: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    categories: Sequence[str | int] | None = None,
    max_images: int | None = 100,
    seed: int = 0,
    images_from: str | os.PathLike | None = None,
    workers: int = 8,
    retries: int = 3,
    progress: bool = True,
    split_name: str = "subset",
    force: bool = False,
    protect: Iterable[str | os.PathLike] = (),
) -> Path:
    """Write a COCO subset to ``output_dir`` and return the path of its instances JSON.

    annotations: an ``instances_*.json`` (see :func:`~.coco_annotations.annotations_file`).
    categories: names (``"cat"``) or ids to keep; None keeps all. Ids stay the
        original COCO ids (non-contiguous: 1..90), as the dataset loader expects.
    max_images: how many images to sample (None: all) among those with at least
        one non-crowd annotation of the kept categories. The sample is
        ``random.Random(seed).sample(sorted ids, max_images)``: the same seed gives
        the same images on any machine.
    images_from: a local COCO image folder (e.g. ``coco/val2017``) to hard-link
        or copy from; otherwise each image's ``coco_url`` is downloaded with
        ``workers`` threads, each retried ``retries`` times.

    Output: ``output_dir/images/<file_name>`` and, written last and atomically,
    ``output_dir/instances_<split_name>.json`` holding info, licenses, the
    sampled images, their annotations of the kept categories (crowd ones too)
    and those categories. Images already present are skipped, so an interrupted
    or partly failed run is resumed by calling again. If some images cannot be
    fetched, the rest are still written and CocoSubsetError names the failures;
    no JSON is written then. Raises ValueError for unknown categories and for
    file names that would leave the images folder, before fetching anything. An existing
    annotation file that yolact_edu did not write is never replaced unless ``force``
    (:class:`~yolact_edu.files.output_folder.OutputConflict`), and ``annotations``, ``images_from``
    and the paths in ``protect`` never; images already there are reused, not overwritten.
    """
    annotations, output_dir = Path(annotations), Path(output_dir)
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be at least 1 (or None for all), got {max_images}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    coco = _load_coco(annotations)
    cat_ids = _resolve_categories(coco, categories)
    kept_cats = set(cat_ids)

    eligible = sorted(
        {
            ann["image_id"]
            for ann in coco.dataset["annotations"]
            if ann["category_id"] in kept_cats and not ann.get("iscrowd", 0) and ann["image_id"] in coco.imgs
        }
    )
    if max_images is not None and max_images < len(eligible):
        chosen = sorted(random.Random(seed).sample(eligible, max_images))
    else:
        chosen = eligible
    images = [coco.imgs[image_id] for image_id in chosen]

    # Every name is checked before the first request, so a bad file cannot leave a half-built subset.
    names = [_check_file_name(image) for image in images]
    duplicates = [name for name, count in Counter(names).items() if count > 1]
    if duplicates:
        raise ValueError(f"{annotations}: several images share the file names {duplicates[:5]}")
    if images_from is None:
        no_url = [image["id"] for image in images if not image.get("coco_url")]
        if no_url:
            raise ValueError(f"images {no_url[:5]} have no coco_url; pass images_from=<local COCO image folder>")

    inputs = [annotations, *([images_from] if images_from is not None else []), *protect]
    outputs = OutputFolder(output_dir, force=force, protect=inputs)
    json_name = f"instances_{split_name}.json"
    out_json = outputs.path(json_name)       # refused here, before any fetching, if it is the user's
    image_dir = output_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    # The JSON promises that all its images exist; an old one of ours must not outlive a failed rerun.
    out_json.unlink(missing_ok=True)

    def fetch(image: dict) -> None:
        dest = image_dir / image["file_name"]
        if images_from is not None:
            source = Path(images_from) / image["file_name"]
            problem = _image_problem(source) if source.is_file() else None
            if problem is not None:
                raise ValueError(f"{source} is {problem}")
            _link_or_copy(source, dest)
        else:
            download_file(image["coco_url"], dest, retries=retries, progress=False, verify=_check_image,
                          overwrite=force)

    # An image already there counts only if it is complete; a bad one is kept and named, unless force
    # fetches it again.
    failures: dict[int, str] = {}
    todo = []
    for image in images:
        dest = image_dir / image["file_name"]
        if not dest.is_file():
            todo.append(image)
        elif (problem := _image_problem(dest)) is None:
            continue
        elif force:
            todo.append(image)
        else:
            failures[image["id"]] = (f"{dest} is already there but is {problem}; it is kept: remove it, or pass "
                                     "--force to fetch it again")
    with tqdm(
        total=len(images), initial=len(images) - len(todo), unit="img", desc="COCO images", disable=not progress
    ) as bar:
        executor = ThreadPoolExecutor(max_workers=workers)
        try:
            futures = {executor.submit(fetch, image): image for image in todo}
            for future in as_completed(futures):
                image = futures[future]
                error = future.exception()
                if error is not None:
                    failures[image["id"]] = f"{image['file_name']}: {type(error).__name__}: {error}"
                bar.update(1)
        finally:
            # On Ctrl-C, drop the queued images instead of waiting for all of them.
            executor.shutdown(wait=True, cancel_futures=True)
    if failures:
        listed = "\n".join(f"  image {image_id}: {why}" for image_id, why in sorted(failures.items())[:20])
        more = f"\n  ... and {len(failures) - 20} more" if len(failures) > 20 else ""
        raise CocoSubsetError(
            f"{len(failures)} of {len(images)} images could not be fetched into {image_dir} "
            f"(the other {len(images) - len(failures)} are kept; run again to retry only the missing ones):\n"
            f"{listed}{more}"
        )

    subset = {key: coco.dataset[key] for key in ("info", "licenses") if key in coco.dataset}
    subset["images"] = images
    chosen_set = set(chosen)
    subset["annotations"] = [
        ann for ann in coco.dataset["annotations"] if ann["image_id"] in chosen_set and ann["category_id"] in kept_cats
    ]
    subset["categories"] = [cat for cat in coco.dataset["categories"] if cat["id"] in kept_cats]
    outputs.write_bytes(json_name, json.dumps(subset), fsync=True)
    if progress:
        print(f"COCO subset {out_json}: {subset_summary(subset)}")
    return out_json
