"""What YOLACT++ adds, made visible: where a deformable 3x3 kernel samples, which backbone blocks
are deformable, and how mask re-scoring (score x mask IoU) reorders detections (notebook 05,
"YOLACT++").

The deformable convolution itself is :class:`yolact_edu.model.backbone.ModulatedDeformConv`
(``torchvision.ops.deform_conv2d``); its offset channels are laid out as in the original DCNv2
kernel: channel 2t = dy, 2t + 1 = dx of kernel tap t = i * 3 + j. The re-scoring network is
:class:`yolact_edu.model.maskiou.MaskIoUNet`.

    >>> points = kernel_sampling_points(offset, row=5, col=7)    # [9,2] (y, x) input pixels
    >>> table = rescoring_table(class_scores, mask_ious)          # ranks before / after
"""
from __future__ import annotations

import torch
from torchvision.ops import deform_conv2d

from ...data.coco import collate
from ...model.backbone import RESNET_DEPTHS, dcn_blocks
from ...model.maskiou import MaskIoUNet
from ...ops.mask_iou import pairwise_mask_iou
from ...training.evaluation import coco_evaluate, detections_to_coco

__all__ = ["kernel_sampling_points", "offsets_for_points", "deform_conv_samples", "object_sampling_points",
           "plot_deformable_sampling", "dcn_layout", "plot_dcn_layout", "plot_score_vs_iou",
           "PUBLISHED_ABLATIONS", "rescore", "rescoring_table", "best_ground_truth_iou",
           "oracle_rescoring_ap", "maskiou_shape_flow", "rescoring_sentence"]


# -- deformable convolution: where the 3x3 kernel looks ----------------------------------------
def _regular_grid(row: int, col: int, stride: int, padding: int, dilation: int,
                  kernel_size: int) -> torch.Tensor:
    taps = torch.arange(kernel_size, dtype=torch.float32) * dilation
    ii, jj = torch.meshgrid(taps, taps, indexing="ij")
    return torch.stack([row * stride - padding + ii.flatten(), col * stride - padding + jj.flatten()], 1)


def kernel_sampling_points(offset: torch.Tensor, row: int, col: int, stride: int = 1, padding: int = 1,
                           dilation: int = 1, kernel_size: int = 3) -> torch.Tensor:
    """Where the kernel at output pixel (row, col) samples its input: [K*K, 2] (y, x) in input
    pixel coordinates (pixel centres at integers), tap t = i * K + j.

    offset: [2*K*K, Ho, Wo] or [1, 2*K*K, Ho, Wo] (channel 2t = dy, 2t+1 = dx). Zero offsets give
    the regular (dilated) grid p0 + p_k; the deformable kernel samples p0 + p_k + delta_p_k, by
    bilinear interpolation, so the points need not be whole pixels."""
    if offset.dim() == 4:
        offset = offset[0]
    taps = kernel_size * kernel_size
    if offset.shape[0] != 2 * taps:
        raise ValueError(f"offset needs {2 * taps} channels for a {kernel_size}x{kernel_size} kernel, "
                         f"got {offset.shape[0]}")
    delta = offset[:, row, col].reshape(taps, 2).float()                   # (dy, dx) per tap
    return _regular_grid(row, col, stride, padding, dilation, kernel_size) + delta


def offsets_for_points(points: torch.Tensor, row: int, col: int, output_size: tuple[int, int],
                       stride: int = 1, padding: int = 1, dilation: int = 1) -> torch.Tensor:
    """Inverse of :func:`kernel_sampling_points` for one output pixel: the offset tensor
    [1, 2*K*K, Ho, Wo] (zero elsewhere) that makes the kernel at (row, col) sample ``points``
    [K*K, 2] (y, x). This is what ``conv_offset_mask`` learns to predict, written by hand."""
    taps = points.shape[0]
    kernel_size = int(round(taps ** 0.5))
    offset = torch.zeros(1, 2 * taps, *output_size)
    delta = points.float() - _regular_grid(row, col, stride, padding, dilation, kernel_size)
    offset[0, :, row, col] = delta.flatten()
    return offset


def deform_conv_samples(image: torch.Tensor, offset: torch.Tensor, row: int, col: int, stride: int = 1,
                        padding: int = 1, dilation: int = 1) -> torch.Tensor:
    """The 9 input values the real ``torchvision.ops.deform_conv2d`` reads for output pixel
    (row, col): image [H,W], offset as :func:`kernel_sampling_points` -> [9]. One one-hot
    3x3 weight per tap isolates each sample (bilinear; zero outside the image)."""
    weight = torch.eye(9).reshape(9, 1, 3, 3)
    if offset.dim() == 3:
        offset = offset[None]
    out = deform_conv2d(image[None, None].float(), offset.float(), weight, stride=stride, padding=padding,
                        dilation=dilation)
    return out[0, :, row, col]


def object_sampling_points(mask: torch.Tensor, row: int, col: int, fraction: float = 0.75) -> torch.Tensor:
    """Nine points [9,2] (y, x) spread over one object, in tap order: the centre tap stays at
    (row, col); tap (i, j) walks from there in direction (i - 1, j - 1) to ``fraction`` of the way
    to the object's edge. The kind of sampling a trained deformable kernel learns -- here chosen
    by hand from the mask [H,W] {0,1}."""
    height, width = mask.shape
    points = []
    for i in range(3):
        for j in range(3):
            dy, dx = i - 1, j - 1
            if dy == 0 and dx == 0:
                points.append([float(row), float(col)])
                continue
            step = 0
            while True:
                y, x = row + (step + 1) * dy, col + (step + 1) * dx
                if not (0 <= y < height and 0 <= x < width) or mask[y, x] <= 0:
                    break
                step += 1
            points.append([row + fraction * step * dy, col + fraction * step * dx])
    return torch.tensor(points)


def plot_deformable_sampling(image: torch.Tensor, mask: torch.Tensor, row: int, col: int, scale: int = 3):
    """Where a 3x3 kernel at (row, col) of a one-channel map ``image`` [H,W] reads: the regular
    grid, offsets that stretch it ``scale`` times (what a dilated conv does), and free-form
    offsets spread over the object ``mask`` [H,W] {0,1}. Each title counts the taps on the object,
    measured by running the real ``deform_conv2d`` on the mask. Returns the Figure."""
    import matplotlib.pyplot as plt

    size = tuple(image.shape)
    regular = kernel_sampling_points(torch.zeros(18, *size), row, col)
    centre = regular[4]
    cases = {"regular 3x3 (zero offsets)": regular,
             f"offsets = {scale - 1} x grid (like dilation {scale})": centre + scale * (regular - centre),
             "free-form offsets (set by hand)": object_sampling_points(mask, row, col)}
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    for (title, points), ax, color in zip(cases.items(), axes, ("tab:blue", "tab:orange", "tab:red")):
        ax.imshow(image.numpy(), cmap="gray")
        ax.plot(points[:, 1].numpy(), points[:, 0].numpy(), "o", color=color, ms=6, mec="white")
        ax.plot(*centre.flip(0).tolist(), "+", color="yellow", ms=12, mew=2)
        offsets = offsets_for_points(points, row, col, size)
        for start, delta in zip(regular, offsets[0, :, row, col].reshape(9, 2)):
            if delta.abs().sum() > 0:
                ax.annotate("", xy=(start[1] + delta[1], start[0] + delta[0]), xytext=(start[1], start[0]),
                            arrowprops={"arrowstyle": "->", "color": color, "lw": 0.8})
        on_object = float(deform_conv_samples(mask.float(), offsets, row, col).sum())
        reach = float((points - centre).norm(dim=1).max())
        ax.set_title(f"{title}\n{on_object:.1f} of 9 taps on the object, reach {reach:.1f} px", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def dcn_layout(cfg) -> list[list[bool]]:
    """Per ResNet stage (C2..C5), which residual blocks' 3x3 conv is deformable in ``cfg``
    (the original's rule, :func:`yolact_edu.model.backbone.dcn_blocks`)."""
    if cfg.backbone not in RESNET_DEPTHS:
        raise ValueError(f"{cfg.name}: DCN is defined for ResNet backbones, not {cfg.backbone!r}")
    _, depths = RESNET_DEPTHS[cfg.backbone]
    return [dcn_blocks(blocks, layers, cfg.dcn_interval) for blocks, layers in zip(depths, cfg.dcn_layers)]


def plot_dcn_layout(configs, ax=None):
    """One row of squares per config and stage block: filled = the block's 3x3 conv is
    deformable. configs: YolactConfigs with ResNet backbones. Returns the Axes."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    layouts = [(cfg.name, dcn_layout(cfg)) for cfg in configs]
    if ax is None:
        _, ax = plt.subplots(figsize=(12, 0.7 * len(layouts) + 0.9))
        ax.figure.subplots_adjust(left=0.17)
    for y, (_, stages) in enumerate(layouts):
        x = 0.0
        for stage, blocks in enumerate(stages):
            for use_dcn in blocks:
                ax.add_patch(Rectangle((x, -y - 0.4), 0.8, 0.8, color="tab:red" if use_dcn else "lightgray"))
                x += 1
            ax.text(x - len(blocks) / 2 - 0.5, -y + 0.55, f"C{stage + 2}", ha="center", fontsize=7)
            x += 1
        ax.text(x + 0.3, -y, f"{sum(map(sum, stages))} DCN blocks", va="center", fontsize=8)
    ax.set_yticks([-y for y in range(len(layouts))], [name for name, _ in layouts])
    ax.set_xlim(-0.5, 44)
    ax.set_ylim(-len(layouts) + 0.3, 1.0)
    ax.set_xticks([])
    ax.set_title("Residual blocks per stage; red = 3x3 conv replaced by a deformable one (DCNv2)", fontsize=10)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    return ax


PUBLISHED_ABLATIONS: tuple[dict, ...] = (
    {"change": "YOLACT -> YOLACT++, R50-FPN (Titan Xp, test-dev)", "mask AP": "28.2 -> 34.1",
     "speed": "45.0 -> 33.5 FPS", "source": "S1, S2"},
    {"change": "YOLACT -> YOLACT++, R101-FPN (Titan Xp, test-dev)", "mask AP": "29.8 -> 34.6",
     "speed": "33.5 -> 27.3 FPS", "source": "S1, S2"},
    {"change": "DCN in every block (vs none)", "mask AP": "+1.8", "speed": "+8 ms", "source": "S21 (unverified)"},
    {"change": "DCN every 3rd block (11 convs) vs every block", "mask AP": "about -0.2",
     "speed": "5.2 ms cheaper", "source": "S21 (unverified)"},
    {"change": "fast mask re-scoring", "mask AP": "not in our sources", "speed": "+1.2 ms (34.4 -> 33 FPS)",
     "source": "S21 (unverified)"},
    {"change": "Mask Scoring R-CNN-style re-scoring head instead", "mask AP": "-", "speed": "about +28 ms",
     "source": "S21 (unverified)"},
)
"""YOLACT++'s published gains and costs as perf_anchors.md / yolact_reference.md give them; the
S21 rows come from secondary notes on the YOLACT++ paper, not checked against the paper."""


# -- fast mask re-scoring ------------------------------------------------------------------------
def rescore(scores: torch.Tensor, mask_ious: torch.Tensor) -> torch.Tensor:
    """YOLACT++'s mask score: class score [N] in [0,1] x predicted mask IoU [N] (>= 0)."""
    return scores * mask_ious


def rescoring_table(scores, mask_ious, names=None, iou_threshold: float = 0.75) -> list[dict]:
    """Rows (in class-score order) showing how ``score x mask IoU`` reranks detections: name,
    class score, mask IoU, mask score, rank by each (1 = first), and whether the mask counts as a
    true positive at ``iou_threshold`` (COCO's AP75). Ties keep the class-score order."""
    scores, mask_ious = torch.as_tensor(scores, dtype=torch.float32), torch.as_tensor(mask_ious, dtype=torch.float32)
    mask_scores = rescore(scores, mask_ious)
    by_class = torch.argsort(scores, descending=True, stable=True)
    by_mask = by_class[torch.argsort(mask_scores[by_class], descending=True, stable=True)]
    rank_class = torch.empty_like(by_class)
    rank_class[by_class] = torch.arange(1, len(scores) + 1)
    rank_mask = torch.empty_like(by_mask)
    rank_mask[by_mask] = torch.arange(1, len(scores) + 1)
    names = names or [f"det {i}" for i in range(len(scores))]
    return [{"detection": names[i], "class score": f"{scores[i]:.2f}", "mask IoU": f"{mask_ious[i]:.2f}",
             "mask score": f"{mask_scores[i]:.3f}", "rank by class score": int(rank_class[i]),
             "rank by mask score": int(rank_mask[i]),
             f"TP at IoU {iou_threshold}": "yes" if mask_ious[i] >= iou_threshold else "no"}
            for i in by_class.tolist()]


def best_ground_truth_iou(masks: torch.Tensor, labels: torch.Tensor, gt_masks: torch.Tensor,
                          gt_labels: torch.Tensor) -> torch.Tensor:
    """For each detected mask [N,H,W], its highest IoU with a ground-truth mask [M,H,W] of the
    same class -> [N] in [0,1]: the target the MaskIoU net is trained to predict."""
    if len(masks) == 0 or len(gt_masks) == 0:
        return torch.zeros(len(masks))
    ious = pairwise_mask_iou(masks, gt_masks) * (labels[:, None] == gt_labels[None, :]).float()
    return ious.amax(dim=1)


@torch.no_grad()
def oracle_rescoring_ap(model, dataset, max_images: int | None = None, batch_size: int = 4) -> dict:
    """Mask AP of ``model`` on ``dataset`` ranked (a) by class score, as YOLACT does, and (b) by
    class score x the *true* mask IoU -- what a perfect MaskIoU net would give. An upper bound on
    what re-scoring can add; box AP is unaffected. Returns {"class score": segm metrics,
    "oracle re-scored": segm metrics, "num_images": int, "score_iou": [N,2] (class score, true
    mask IoU) of every detection}; AP values in [0, 1]."""
    count = len(dataset) if max_images is None else min(max_images, len(dataset))
    plain, oracle, image_ids, pairs = [], [], [], []
    model.eval()
    for start in range(0, count, batch_size):
        images, targets = collate([dataset[i] for i in range(start, min(start + batch_size, count))])
        raw = model(images.to(next(model.parameters()).device))
        detections = model.detect(raw, [t["orig_size"] for t in targets], score_threshold=0.0)   # mAP: all
        for index, target, found in zip(range(start, start + len(targets)), targets, detections):
            gt = dataset.load_target(index)
            found = found.to("cpu")
            plain += detections_to_coco(found, target["image_id"], dataset.category_ids)["segm"]
            true_iou = best_ground_truth_iou(found.masks, found.labels, gt["masks"], gt["labels"])
            pairs.append(torch.stack([found.scores, true_iou], 1))
            found.mask_scores = rescore(found.scores, true_iou)
            oracle += detections_to_coco(found, target["image_id"], dataset.category_ids)["segm"]
            image_ids.append(target["image_id"])
    return {"class score": coco_evaluate(dataset.coco, {"segm": plain}, ("segm",), image_ids=image_ids,
                                         verbose=False)["segm"],
            "oracle re-scored": coco_evaluate(dataset.coco, {"segm": oracle}, ("segm",), image_ids=image_ids,
                                              verbose=False)["segm"],
            "num_images": len(image_ids), "score_iou": torch.cat(pairs) if pairs else torch.zeros(0, 2)}


def rescoring_sentence(oracle: dict, high_score: float = 0.5, good_iou: float = 0.75) -> str:
    """What :func:`oracle_rescoring_ap`'s result shows, generated from its numbers: how many
    detections scored at least ``high_score`` have a mask below ``good_iou`` with their object (a
    false positive at that IoU, ranked high), and how mask AP, AP50 and AP75 move when ranked by
    score x true IoU."""
    pairs = oracle["score_iou"]
    high = pairs[:, 0] >= high_score
    poor = int((high & (pairs[:, 1] < good_iou)).sum())
    first = (f"Of the {int(high.sum())} detections with a class score of at least {high_score:g}, {poor} "
             f"({poor / max(1, int(high.sum())):.0%}) have a mask below IoU {good_iou:g} with their object "
             f"(the lower right of the plot): at AP{round(100 * good_iou)} they are false positives, ranked "
             "by their score.")
    moves = {key: oracle["oracle re-scored"][key] - oracle["class score"][key] for key in ("AP", "AP50", "AP75")}
    shown = ", ".join(f"{key} {change:+.3f}" for key, change in moves.items())
    if all(change > 0.0005 for change in moves.values()):
        second = f"Ranking by score x IoU raises mask AP at every threshold shown ({shown})."
    elif all(change < -0.0005 for change in moves.values()):
        second = f"Ranking by score x IoU lowers mask AP at every threshold shown ({shown})."
    else:
        second = f"Ranking by score x IoU moves mask AP unevenly across the thresholds ({shown})."
    return f"{first} {second}"


def maskiou_shape_flow(proto_side: int = 138, num_classes: int = 80) -> list[tuple[str, tuple[int, ...]]]:
    """Run a (randomly initialised) :class:`MaskIoUNet` on one [1,1,S,S] mask, layer by layer:
    [(layer name, output shape)], ending with the global max pool -> [1, num_classes]."""
    net = MaskIoUNet(num_classes).eval()
    x = torch.rand(1, 1, proto_side, proto_side)
    flow = [("input: one cropped soft mask", tuple(x.shape))]
    with torch.no_grad():
        for name, layer in net.maskiou_net.named_children():
            x = layer(x)
            if isinstance(layer, torch.nn.Conv2d):
                flow.append((f"conv {name}: {layer.kernel_size[0]}x{layer.kernel_size[1]}, stride "
                             f"{layer.stride[0]}, {layer.in_channels}->{layer.out_channels}", tuple(x.shape)))
        flow.append(("global max pool: predicted IoU per class", tuple(x.amax(dim=(2, 3)).shape)))
    return flow


def plot_score_vs_iou(score_iou: torch.Tensor, ax=None):
    """Scatter of detections' class score (x) against their true mask IoU (y), score_iou [N,2],
    with dashed lines of equal mask score = score x IoU: what YOLACT++ ranks by. Returns the Axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.scatter(score_iou[:, 0].numpy(), score_iou[:, 1].numpy(), s=10, alpha=0.5)
    xs = torch.linspace(0.05, 1, 100)
    for level in (0.1, 0.3, 0.5, 0.7):
        ax.plot(xs.numpy(), (level / xs).clamp(max=1.05).numpy(), "--", lw=0.8, color="gray")
        ax.annotate(f"score x IoU = {level}", (1.0, level), xytext=(-3, 3), textcoords="offset points",
                    ha="right", fontsize=7, color="gray")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("class score")
    ax.set_ylabel("true mask IoU with the best same-class object")
    return ax
