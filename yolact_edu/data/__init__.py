"""Data: COCO-format datasets, the original's training augmentation, the bundled synthetic
shapes set and a builder for real COCO subsets.

    >>> from yolact_edu.data import make_shapes, CocoDataset
    >>> paths = make_shapes("data/shapes")                       # seconds, no download
    >>> train = CocoDataset(paths["train_annotations"], paths["train_images"], max_size=320,
    ...                     augment=True)
"""
from .augment import Sample, SSDAugmentation
from .coco import CocoDataset, DatasetError, DatasetReport, collate
from .coco_annotations import annotations_file, download_coco_annotations
from .coco_subset import build_coco_subset
from .images import read_image, sample_image
from .shape_scenes import SHAPE_CLASSES
from .shapes import make_shapes, shapes_exist

__all__ = ["CocoDataset", "DatasetError", "DatasetReport", "collate", "read_image", "sample_image",
           "Sample", "SSDAugmentation", "make_shapes", "shapes_exist", "SHAPE_CLASSES",
           "build_coco_subset", "download_coco_annotations", "annotations_file"]
