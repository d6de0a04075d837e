"""Notebook companions: the figures, tables and small experiments each notebook shows, built on
the library (they use it; the library never imports them).

:data:`NOTEBOOKS` is the index: which lesson modules each notebook imports (the tests check it
against the notebooks). Notebooks import the library's own names from where they live.
"""
NOTEBOOKS: dict[str, tuple[str, ...]] = {
    "01_two_ways_to_segment": ("pretrained", "real_photos", "two_ways.comparison", "two_ways.cost",
                               "two_ways.maskrcnn", "two_ways.resolution", "two_ways.single_shot",
                               "two_ways.tasks", "exercises", "predict_reveal", "tables", "two_ways.parent_tasks",
                               "two_ways.roi_pooling", "two_ways.scoring"),
    "02_prototypes_and_coefficients": ("pretrained", "prototypes", "real_photos", "prototype_sweep", "exercises",
                                       "predict_reveal", "write_assembly", "prototype_roles", "failure_modes"),
    "03_anchors_matching_fast_nms": ("pretrained", "priors", "matching", "nms_comparison", "nms_timing",
                                     "predict_reveal", "write_box_coding", "write_fast_nms", "tables", "exercises"),
    "04_train_on_a_coco_subset": ("pretrained", "experiments", "prototype_sweep", "exercises", "predict_reveal"),
    "05_real_time_landscape": ("pretrained", "landscape.published", "landscape.measured", "landscape.yolact_plus",
                               "landscape.mask_families", "landscape.family_demos", "landscape.learned",
                               "two_ways.comparison", "tables", "exercises", "predict_reveal"),
}

__all__ = ["NOTEBOOKS"]
