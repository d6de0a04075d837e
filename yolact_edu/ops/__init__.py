"""The paper's stateless steps, each a function of tensors (no parameters, no state).

- :mod:`.preprocess`  image -> normalised input tensor [B,3,S,S]
- :mod:`.anchors`     the prior boxes of every FPN level (§3.3)
- :mod:`.boxes`       box forms, IoU, SSD encoding and the crop of §3.4
- :mod:`.nms`         Fast NMS and its relatives (§3.4)
- :mod:`.assemble`    masks = sigmoid(P C^T), cropped and upsampled (eq. 1)
- :mod:`.mask_iou`    mask overlap, named by the shapes it compares
- :mod:`.agreement`   whether two runs found the same detections (the fast path's guard)
"""
