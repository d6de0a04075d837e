"""Instance segmentation two ways: Mask R-CNN's detect-then-segment against YOLACT's single
shot (notebook ``01_two_ways_to_segment``).

- :mod:`.tasks`        instance = detection + semantic segmentation, drawn from ground truth
- :mod:`.maskrcnn`     torchvision's Mask R-CNN (never downloaded), run stage by stage
- :mod:`.single_shot`  YOLACT stage by stage: prototypes, coefficients, crop, masks
- :mod:`.resolution`   the best mask a 28x28 RoI grid and a prototype grid can draw
- :mod:`.cost`         time against the number of instances; plain timing helpers
"""
from .cost import (
    INSTANCE_COUNTS,
    assembly_macs,
    format_table,
    inference_time,
    mask_head_macs,
    maskrcnn_cost,
    plot_cost_versus_instances,
    time_call,
    yolact_cost,
)
from .maskrcnn import (
    COCO_WEIGHTS,
    MaskRCNNStages,
    clock,
    coco_weights_path,
    image_tensor,
    maskrcnn_model,
    maskrcnn_stages,
    run_maskrcnn,
)
from .resolution import (
    ROI_SIZE,
    best_masks,
    boundary_band,
    boundary_iou,
    error_picture,
    mask_box,
    mask_iou,
    paste_roi_mask,
    plot_boundary_zoom,
    plot_resolution_study,
    prototype_mask,
    resolution_study,
    roi_mask,
    shape_mask,
    size_sweep,
    summarize_by_size,
)
from .single_shot import YolactStages, final_masks, yolact_stages
from .tasks import draw_semantic, semantic_map, task_views

__all__ = ["INSTANCE_COUNTS", "time_call", "maskrcnn_cost", "yolact_cost", "mask_head_macs", "assembly_macs",
           "inference_time", "plot_cost_versus_instances", "format_table", "COCO_WEIGHTS", "coco_weights_path",
           "clock", "maskrcnn_model", "image_tensor", "run_maskrcnn", "MaskRCNNStages", "maskrcnn_stages",
           "ROI_SIZE", "roi_mask", "paste_roi_mask", "prototype_mask", "best_masks", "mask_iou", "boundary_band",
           "boundary_iou", "mask_box", "shape_mask", "resolution_study", "size_sweep", "summarize_by_size",
           "error_picture",
           "plot_resolution_study", "plot_boundary_zoom", "YolactStages", "yolact_stages", "final_masks",
           "semantic_map", "draw_semantic", "task_views"]
