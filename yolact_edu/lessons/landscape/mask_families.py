"""How real-time instance segmenters assemble masks: YOLACT, BlendMask, CenterMask, CondInst and
SOLO/SOLOv2 reduced to their assembly rule, runnable on small synthetic tensors (notebook 05,
"Mask assembly families").

Each ``*_masks`` function takes what the method's network would predict for one image (shared
maps + per-instance quantities) and applies the paper's rule; none of them is a trained network.
Shapes use n instances and an H x W mask-feature map; boxes are (x1, y1, x2, y2) in pixels of
that map, locations (x, y) pixels.

* YOLACT     masks = crop_box(sigmoid(coefs_i . prototypes))               shared: k prototypes
* BlendMask  masks = sigmoid(sum_k softmax_k(attention_i) * RoIAlign(bases))  per RoI, low-res attention
* CenterMask masks = mask_head(RoIAlign(features) * spatial_attention)      per RoI (like Mask R-CNN)
* CondInst   masks = dynamic_mlp_i(concat(rel_coords_i, mask_features))     filters generated per instance
* SOLO       masks = channel[cell_i] of S*S mask channels; SOLOv2: kernel_i (from the grid cell) * features
* Matrix NMS (SOLOv2): scores decay with the mask IoU to higher-scored masks of the same class.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.ops import roi_align

from ...ops.assemble import assemble_masks
from ...relatives.blendmask import blend
from ...relatives.centermask import spatial_attention
from ...relatives.condinst import condinst_num_params, dynamic_mask_logits, relative_coordinates, split_dynamic_params
from ...relatives.solov2 import matrix_nms, solo_center_cells
from ...viz.palette import model_color

__all__ = ["yolact_masks", "blendmask_masks", "spatial_attention", "centermask_masks",
           "condinst_num_params", "relative_coordinates", "split_dynamic_params", "condinst_masks",
           "condinst_handset_params", "solo_grid_cell", "solo_center_cells",
           "solov2_masks", "coordinate_features", "solov2_handset_kernel", "matrix_nms",
           "FAMILIES", "per_instance_macs", "plot_per_instance_macs"]


# -- YOLACT: global prototypes x per-instance coefficients, then the box crop ------------------
def yolact_masks(protos: torch.Tensor, coefs: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """protos [k,H,W] (>= 0), coefs [n,k] in [-1,1], boxes [n,4] px -> masks [n,H,W] in [0,1].

    The library's own :func:`yolact_edu.ops.assemble.assemble_masks` (paper eq. 1 + crop)."""
    _, height, width = protos.shape
    scale = boxes.new_tensor([width, height, width, height])
    return assemble_masks(protos.permute(1, 2, 0), coefs, boxes / scale, crop_masks=True)


# -- BlendMask: bases cropped by RoIAlign, blended by low-resolution per-instance attention -----
def blendmask_masks(bases: torch.Tensor, attentions: torch.Tensor, boxes: torch.Tensor,
                    resolution: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    """bases [K,H,W] (any sign), attentions [n,K,M,M] logits (M << resolution), boxes [n,4] px.

    Returns (roi_masks [n,R,R] in [0,1] with R = ``resolution``, masks [n,H,W] in [0,1] pasted
    into the image). Each RoI's K base crops are weighted per pixel by the softmax over K of the
    attention upsampled from M x M to R x R (BlendMask eq. 2-4)."""
    _, height, width = bases.shape
    crops = roi_align(bases[None], [boxes], resolution, spatial_scale=1.0, sampling_ratio=2,
                      aligned=True)                                                    # [n,K,R,R]
    roi_masks = torch.sigmoid(blend(crops, attentions))     # the trained blendmask_tiny's own blender
    return roi_masks, _paste(roi_masks, boxes, height, width)


def _paste(roi_masks: torch.Tensor, boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    # torchvision's Mask R-CNN paste (zero outside the box); boxes must be exclusive-end pixels.
    if roi_masks.shape[0] == 0:
        return roi_masks.new_zeros((0, height, width))
    return paste_masks_in_image(roi_masks[:, None], boxes, (height, width), padding=1)[:, 0]


# -- CenterMask: a Mask R-CNN-style per-RoI head with a spatial attention map (SAG-Mask) --------
def centermask_masks(features: torch.Tensor, boxes: torch.Tensor, sam_weight: torch.Tensor,
                     sam_bias: torch.Tensor, mask_weight: torch.Tensor, mask_bias: torch.Tensor,
                     pooled: int = 14, resolution: int = 28) -> dict[str, torch.Tensor]:
    """features [C,H,W], boxes [n,4] px; SAM weights as :func:`spatial_attention`; mask_weight
    [C] and mask_bias [] form the 1x1 mask predictor.

    Returns "roi_features" [n,C,P,P] (RoIAlign, P = ``pooled``), "attention" [n,1,P,P],
    "roi_masks" [n,R,R] and "masks" [n,H,W], both in [0,1]. The real head runs four 3x3
    convs before the attention and a 2x deconv after it; here bilinear upsampling stands in for
    the deconv and the convs are left out -- the per-RoI structure is what matters."""
    _, height, width = features.shape
    roi_features = roi_align(features[None], [boxes], pooled, spatial_scale=1.0, sampling_ratio=2,
                             aligned=True)
    attention = spatial_attention(roi_features, sam_weight, sam_bias)
    refined = F.interpolate(roi_features * attention, (resolution, resolution), mode="bilinear",
                            align_corners=False)
    roi_masks = torch.sigmoid(torch.einsum("c,nchw->nhw", mask_weight, refined) + mask_bias)
    return {"roi_features": roi_features, "attention": attention, "roi_masks": roi_masks,
            "masks": _paste(roi_masks, boxes, height, width)}


# -- CondInst: per-instance dynamic filters on shared mask features + relative coordinates -----
def condinst_masks(mask_features: torch.Tensor, locations: torch.Tensor, params: torch.Tensor,
                   hidden: int = 8, num_layers: int = 3, coord_scale: float = 1.0) -> torch.Tensor:
    """mask_features [C,H,W] (shared), locations [n,2] (x, y) px (where each instance was
    detected), params [n, :func:`condinst_num_params`] (its generated filters) -> masks [n,H,W]
    in [0,1]. No box and no crop: locality comes from the relative coordinates."""
    _, height, width = mask_features.shape
    coords = relative_coordinates(locations, height, width, coord_scale)
    features = mask_features[None].expand(len(locations), -1, -1, -1)
    return torch.sigmoid(dynamic_mask_logits(features, coords, params, hidden, num_layers))


def condinst_handset_params(in_channels: int, radius, shape: str = "diamond", foreground_channel: int | None = None,
                            sharpness: float = 20.0, hidden: int = 8, num_layers: int = 3) -> torch.Tensor:
    """A hand-made filter [P] (P = :func:`condinst_num_params`) for :func:`condinst_masks`.

    shape "diamond": the mask is |dx| + |dy| < ``radius`` around the instance's location;
    shape "box": |dx| < rx and |dy| < ry for ``radius`` = (rx, ry); both in relative-coordinate
    units. With ``foreground_channel`` the mask is also limited to where that feature channel
    is 1 (features in {0,1}). CondInst's controller predicts these numbers; writing them by hand
    shows that a 3-layer MLP over relative coordinates is enough to localise an instance."""
    if hidden < 5 or num_layers != 3:
        raise ValueError("the hand-made filter needs hidden >= 5 and num_layers == 3")
    sizes = [in_channels + 2, hidden, hidden, 1]
    w1, w2, w3 = (torch.zeros(o, i) for i, o in zip(sizes[:-1], sizes[1:]))
    b1, b2, b3 = torch.zeros(hidden), torch.zeros(hidden), torch.zeros(1)
    w1[0, 0], w1[1, 0], w1[2, 1], w1[3, 1] = 1, -1, 1, -1      # relu(+-dx ...), relu(+-dy ...)
    w2[0, :4] = 1                                                # summed by layer 2
    if shape == "diamond":                                       # g = |dx| + |dy|
        w3[0, 0], b3[0] = -sharpness, sharpness * float(radius)
        reach = float(radius)
    elif shape == "box":                                         # g = how far outside the box
        rx, ry = (float(r) for r in radius)
        b1[:4] = torch.tensor([-rx, -rx, -ry, -ry])
        margin = 0.02                                            # > 0: pixels on the edge stay in
        w3[0, 0], b3[0] = -sharpness / margin, sharpness
        reach = 1.0
    else:
        raise ValueError(f"shape must be 'diamond' or 'box', got {shape!r}")
    if foreground_channel is not None:
        w1[4, 2 + foreground_channel] = 1
        w2[1, 4] = 1
        # Off the foreground the logit drops by more than the coordinate part can ever add.
        veto = sharpness * (reach + 1)
        w3[0, 1], b3[0] = veto, b3[0] - veto
    return torch.cat([w.flatten() for w in (w1, w2, w3)] + [b1, b2, b3])


# -- SOLO / SOLOv2: the grid cell of an object's centre owns its mask --------------------------
def solo_grid_cell(centers: torch.Tensor, height: int, width: int, grid: int) -> torch.Tensor:
    """centers [n,2] (x, y) px -> [n] int64 cell index row * grid + col of an S x S grid."""
    col = (centers[:, 0] / width * grid).floor().clamp(0, grid - 1).long()
    row = (centers[:, 1] / height * grid).floor().clamp(0, grid - 1).long()
    return row * grid + col


def solov2_masks(mask_features: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """SOLOv2: unified mask_features [E,H,W] convolved with each instance's 1x1 dynamic kernel
    [n,E] (predicted at its grid cell) -> masks [n,H,W] in [0,1]."""
    return torch.sigmoid(torch.einsum("ne,ehw->nhw", kernels, mask_features))


def coordinate_features(foreground: torch.Tensor) -> torch.Tensor:
    """Toy position-aware mask features [5,H,W] from a {0,1} foreground map [H,W]:
    (1, f, f*x, f*y, f*(x^2 + y^2)) with x, y in [-1, 1] -- the kind of CoordConv-built
    features a 1x1 dynamic kernel needs to pick out one object by position."""
    height, width = foreground.shape
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
    f = foreground.float()
    return torch.stack([torch.ones_like(f), f, f * xs, f * ys, f * (xs ** 2 + ys ** 2)])


def solov2_handset_kernel(center: tuple[float, float], radius: float, sharpness: float = 40.0,
                          background: float = 10.0) -> torch.Tensor:
    """A 1x1 kernel [5] over :func:`coordinate_features` whose mask is the foreground inside the
    disc of ``radius`` around ``center`` (x, y), all in the [-1, 1] coordinates:
    logit = s f (r^2 - |p - c|^2) - b (1 - f)."""
    cx, cy = center
    s, b = sharpness, background
    return torch.tensor([-b, s * (radius ** 2 - cx ** 2 - cy ** 2) + b, 2 * s * cx, 2 * s * cy, -s])


# -- side by side --------------------------------------------------------------------------------
FAMILIES: tuple[dict, ...] = (
    {"family": "YOLACT (2019)", "shared": "k prototypes for the whole image",
     "per instance": "k coefficients (a vector)", "locality from": "crop to the predicted box",
     "box in assembly": "yes",
     "mask resolution": "prototype map (138x138 at 550)", "per-instance cost": "k·Hp·Wp MACs (one matmul)"},
    {"family": "BlendMask (2020)", "shared": "K bases (K=4)",
     "per instance": "K attention maps at low res (14x14)", "locality from": "RoIAlign of the bases",
     "box in assembly": "yes",
     "mask resolution": "R x R per RoI (56x56)", "per-instance cost": "K·R² blend + RoIAlign"},
    {"family": "CenterMask (2020)", "shared": "FPN features",
     "per instance": "a whole mask head on the RoI, with spatial attention",
     "locality from": "RoIAlign (two-stage, like Mask R-CNN)",
     "box in assembly": "yes", "mask resolution": "28x28 per RoI",
     "per-instance cost": "4 convs 3x3x256 at 14² + deconv"},
    {"family": "CondInst (2020)", "shared": "mask features (8 channels, 1/8 res)",
     "per instance": "169 generated filter weights", "locality from": "relative coordinates (no box)",
     "box in assembly": "no",
     "mask resolution": "1/8 of the input, upsampled to 1/4", "per-instance cost": "~152 MACs per pixel"},
    {"family": "SOLOv2 (2020)", "shared": "unified mask features (E=256, 1/4 res)",
     "per instance": "a 1x1 kernel (E numbers) from its grid cell",
     "locality from": "grid cell of the centre + position-aware features",
     "box in assembly": "no",
     "mask resolution": "1/4 of the input", "per-instance cost": "E·H/4·W/4 MACs; Matrix NMS"},
)
"""What each family computes once per image and once per instance (qualitative; the costs are
our own arithmetic at the papers' usual sizes, see :func:`per_instance_macs`)."""


def per_instance_macs(family: str, *, num_protos: int = 32, proto_side: int = 138, blend_bases: int = 4,
                      blend_resolution: int = 56, head_channels: int = 256, roi_side: int = 14,
                      condinst_channels: int = 8, condinst_hidden: int = 8, input_hw: tuple[int, int] = (800, 1088),
                      solo_channels: int = 256) -> int:
    """Multiply-accumulates one more instance costs in the mask step (not the detector), at the
    papers' usual sizes: YOLACT 550 px with 32 prototypes at 138 x 138; BlendMask K=4 at 56 x 56
    (RoIAlign's bilinear reads not counted); CenterMask four 3x3 convs at 14 x 14, a 2x2 deconv to
    28 x 28 and an 80-class 1x1 predictor; CondInst's 3-layer dynamic head at 1/8 of an 800 x 1088
    input; SOLOv2's 1x1 dynamic kernel at 1/4 of it."""
    key = family.split()[0].lower()
    if key == "yolact":
        return num_protos * proto_side ** 2
    if key == "blendmask":
        return blend_bases * blend_resolution ** 2
    if key == "centermask":
        convs = 4 * 9 * head_channels ** 2 * roi_side ** 2
        deconv = 4 * head_channels ** 2 * roi_side ** 2
        return convs + deconv + head_channels * 80 * (2 * roi_side) ** 2
    if key == "condinst":
        pixels = (input_hw[0] // 8) * (input_hw[1] // 8)
        weights = condinst_num_params(condinst_channels, condinst_hidden) - (2 * condinst_hidden + 1)
        return weights * pixels
    if key == "solov2":
        return solo_channels * (input_hw[0] // 4) * (input_hw[1] // 4)
    raise KeyError(f"unknown family {family!r}; one of yolact, blendmask, centermask, condinst, solov2")


def plot_per_instance_macs(families=FAMILIES, figsize=(8, 2.6)):
    """:func:`per_instance_macs` of each family as horizontal bars (log scale, the first family on
    top), each bar in the family's colour (:func:`~yolact_edu.viz.palette.model_color`: the
    paper-scale models, as the counts are at the papers' sizes). Returns the Figure."""
    import matplotlib.pyplot as plt

    names = [row["family"] for row in families][::-1]
    fig, ax = plt.subplots(figsize=figsize)
    ax.barh(names, [per_instance_macs(name) for name in names], color=[model_color(name) for name in names])
    ax.set_xscale("log")
    ax.set_xlabel("multiply-accumulates per extra instance (log scale; our count, typical sizes)")
    fig.tight_layout()
    return fig
