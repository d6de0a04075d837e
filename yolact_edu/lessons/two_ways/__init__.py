"""Instance segmentation two ways: Mask R-CNN's detect-then-segment against YOLACT's single
shot (notebook ``01_two_ways_to_segment``).

- :mod:`.tasks`        instance = detection + semantic segmentation, drawn from ground truth
- :mod:`.parent_tasks` the naive segmenter glued from a detector and a semantic map, and where it fails
- :mod:`.maskrcnn`     torchvision's Mask R-CNN (never downloaded), run stage by stage
- :mod:`.roi_pooling`  RoIPool's rounded bins against RoIAlign's bilinear samples, and what rounding costs
- :mod:`.single_shot`  YOLACT stage by stage: prototypes, coefficients, crop, masks
- :mod:`.resolution`   the best mask a 28x28 RoI grid and a prototype grid can draw
- :mod:`.cost`         time against the number of instances; plain timing helpers
- :mod:`.scoring`      COCO mask AP and Boundary IoU of several variants on the same images
"""
