"""YolactLoss: matching, OHEM, the five loss terms and their normalisation.

Raw outputs are built by hand (no network) so every case is small and exact. The
numerical agreement with the original MultiBoxLoss on full-size inputs is checked
outside the test suite (the original cannot be imported here); see the loss report.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import yolact_edu as ye
from yolact_edu.loss import NEUTRAL, YolactLoss, hard_negative_mining, match_priors
from yolact_edu.model.maskiou import MaskIoUNet
from yolact_edu.ops.anchors import fpn_sizes, make_priors
from yolact_edu.ops.boxes import encode

NUM_CLASSES = 3
# Small input: P3 is 16x16 (1,023 priors) and the prototypes 32x32; YOLACT++'s mask-IoU
# net needs prototypes of at least ~63 px, hence 256 px there (4,092 priors, 64x64).
# Anchor sides stay at 3 strides, as at 550 px, so objects get several positive priors.
CFG = ye.get_config("yolact_tiny").replace(max_size=128, num_classes=NUM_CLASSES,
                                           pred_scales=((24,), (48,), (96,), (192,), (384,)))
CFG_PLUS = CFG.replace(max_size=256, use_maskiou=True)


def make_raw(cfg, batch_size=1, seed=0, requires_grad=False):
    gen = torch.Generator().manual_seed(seed)
    sizes = fpn_sizes(cfg)
    num_priors, k = cfg.num_anchors * sum(h * w for h, w in sizes), cfg.num_protos
    (h3, w3), proto_size = sizes[0], 2 * sizes[0][0]
    raw = {"loc": torch.randn(batch_size, num_priors, 4, generator=gen) * 0.5,
           "conf": torch.randn(batch_size, num_priors, cfg.num_classes + 1, generator=gen) * 2,
           "coef": torch.tanh(torch.randn(batch_size, num_priors, k, generator=gen)),
           "proto": torch.relu(torch.randn(batch_size, proto_size, proto_size, k, generator=gen)),
           "segm": torch.randn(batch_size, cfg.num_classes, h3, w3, generator=gen)}
    if requires_grad:
        raw = {key: value.requires_grad_() for key, value in raw.items()}
    raw["priors"] = make_priors(sizes, cfg)
    return raw


def box_mask(box, size):
    """A {0,1} mask [size,size] that fills the relative xyxy box."""
    mask = torch.zeros(size, size)
    x1, y1, x2, y2 = (round(v * size) for v in box)
    mask[y1:y2, x1:x2] = 1
    return mask


def make_target(boxes, labels, size, iscrowd=None):
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    target = {"boxes": boxes, "labels": torch.tensor(labels, dtype=torch.long).reshape(-1),
              "masks": torch.stack([box_mask(b.tolist(), size) for b in boxes]) if len(boxes)
              else torch.zeros(0, size, size)}
    if iscrowd is not None:
        target["iscrowd"] = torch.tensor(iscrowd, dtype=torch.bool)
    return target


def num_positives(cfg, raw, target):
    crowd = target.get("iscrowd", torch.zeros(len(target["boxes"]), dtype=torch.bool))
    labels = match_priors(target["boxes"][~crowd], target["labels"][~crowd], raw["priors"],
                          target["boxes"][crowd]).labels
    return int((labels > 0).sum())


# -- empty ground truth and the smallest non-empty case (mmdetection-style) ---------------------
@pytest.mark.parametrize("target", [make_target([], [], 128),
                                    make_target([[0.1, 0.1, 0.9, 0.9]], [1], 128, iscrowd=[True])],
                         ids=["no objects", "only a crowd"])
def test_image_without_objects_trains_only_negatives(target):
    raw = make_raw(CFG)
    losses = YolactLoss(CFG)(raw, [target])
    assert set(losses) == {"box", "conf", "mask", "segm"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    assert losses["box"] == 0 and losses["mask"] == 0
    assert losses["segm"] > 0   # every pixel is background for every class
    # No positives: N_pos is clamped to 1 and the 3 hardest negatives (background loss
    # -log softmax[0], neutrals excluded) are the whole class loss.
    labels = match_priors(target["boxes"][:0], target["labels"][:0], raw["priors"],
                          target["boxes"][target.get("iscrowd", torch.zeros(0, dtype=torch.bool))]).labels
    background_loss = -F.log_softmax(raw["conf"][0], -1)[:, 0]
    background_loss[labels < 0] = -1
    assert torch.allclose(losses["conf"], background_loss.topk(3).values.sum())
    assert losses["conf"] > 0


def test_batch_without_positives_maskiou_is_zero_and_finite():
    raw = make_raw(CFG_PLUS, batch_size=2, requires_grad=True)
    maskiou_net = MaskIoUNet(NUM_CLASSES)
    losses = YolactLoss(CFG_PLUS)(raw, [make_target([], [], 256)] * 2, maskiou_net=maskiou_net)
    assert losses["maskiou"] == 0 and losses["box"] == 0 and losses["mask"] == 0
    assert losses["conf"] > 0 and all(torch.isfinite(v) for v in losses.values())
    # every input and head parameter still gets a (zero) gradient, as multi-GPU training needs
    sum(losses.values()).backward()
    assert all(raw[key].grad is not None for key in ("loc", "conf", "coef", "proto", "segm"))
    assert all(p.grad is not None for p in maskiou_net.parameters())


def test_one_object_gives_every_loss_and_every_gradient():
    raw = make_raw(CFG_PLUS, requires_grad=True)
    torch.manual_seed(0)
    maskiou_net = MaskIoUNet(NUM_CLASSES)
    last_conv = maskiou_net.maskiou_net[-2]
    nn.init.constant_(last_conv.bias, 1.0)   # a fresh head may start with its final ReLU dead
    losses = YolactLoss(CFG_PLUS)(raw, [make_target([[0.2, 0.3, 0.7, 0.8]], [2], 256)], maskiou_net=maskiou_net)
    assert list(losses) == ["box", "conf", "mask", "segm", "maskiou"]
    assert all(torch.isfinite(v) and v > 0 for v in losses.values()), losses
    sum(losses.values()).backward()
    for key in ("loc", "conf", "coef", "proto", "segm"):
        assert raw[key].grad is not None and raw[key].grad.abs().sum() > 0, key
    # the mask-IoU head learns only at the object's class ...
    assert last_conv.weight.grad[2].abs().sum() > 0 and last_conv.weight.grad[:2].abs().sum() == 0
    # ... and through every layer below it
    assert all(conv.weight.grad.abs().sum() > 0 for conv in maskiou_net.maskiou_net if isinstance(conv, nn.Conv2d))


def test_maskiou_needs_the_maskiou_net():
    with pytest.raises(ValueError, match="maskiou_net"):
        YolactLoss(CFG_PLUS)(make_raw(CFG_PLUS), [make_target([], [], 256)])


# -- matching -----------------------------------------------------------------------------------
def as_priors(boxes):
    """Point-form boxes -> (cx, cy, w, h) priors."""
    b = torch.tensor(boxes)
    return torch.cat([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], 1)


def test_matching_thresholds_forced_assignment_and_crowds():
    gt_boxes = torch.tensor([[0.0, 0.0, 0.5, 0.3],        # A: an ordinary object
                             [0.9, 0.9, 0.92, 0.92]])     # B: too small for any prior (best IoU 0.018)
    priors = as_priors([[0.0, 0.0, 0.5, 0.5],             # IoU with A 0.6     -> positive A
                        [0.0, 0.0, 0.225, 0.3],           # IoU with A 0.45    -> neutral
                        [0.4, 0.0, 0.8, 0.3],             # IoU with A 0.125   -> background
                        [0.85, 0.85, 1.0, 1.0],           # B's best prior     -> forced positive B
                        [0.6, 0.0, 1.0, 0.2],             # no overlap         -> background
                        [0.55, 0.55, 0.85, 0.85],         # all inside the crowd (its IoU only 0.36) -> neutral
                        [0.3, 0.3, 0.7, 0.7]])            # a quarter inside the crowd -> background
    crowd = torch.tensor([[0.5, 0.5, 1.0, 1.0]])
    matched = match_priors(gt_boxes, torch.tensor([4, 7]), priors, crowd)
    assert matched.labels.tolist() == [5, NEUTRAL, 0, 8, 0, NEUTRAL, 0]
    assert matched.gt_index[[0, 3]].tolist() == [0, 1]
    assert torch.allclose(matched.loc[[0, 3]], encode(gt_boxes, priors[[0, 3]]))
    # without the crowd region the fifth prior is plain background
    assert match_priors(gt_boxes, torch.tensor([4, 7]), priors).labels[5] == 0


def test_less_greedy_matching_gives_each_object_its_own_prior():
    # Both objects' best prior is prior 0; the better overlap (C, IoU 1) keeps it and D
    # takes its own best remaining prior even though that overlap (0.2) is below 0.4.
    priors = as_priors([[0.0, 0.0, 0.4, 0.4], [0.3, 0.0, 0.7, 0.4], [0.6, 0.6, 1.0, 1.0]])
    gt_boxes = torch.tensor([[0.0, 0.0, 0.4, 0.4], [0.2, 0.0, 0.6, 0.4]])
    matched = match_priors(gt_boxes, torch.tensor([0, 1]), priors)
    assert matched.labels.tolist() == [1, 2, 0]
    assert matched.gt_index[:2].tolist() == [0, 1]


# -- hard negative mining -----------------------------------------------------------------------
def test_ohem_picks_the_hardest_three_negatives_per_positive():
    num_priors = 20
    conf = torch.zeros(1, num_priors, 4)
    conf[0, :, 0] = torch.linspace(5, -5, num_priors)    # later priors look less like background
    labels = torch.zeros(1, num_priors, dtype=torch.long)
    labels[0, 19] = 2          # positive: never a negative, even though hardest
    labels[0, 18] = NEUTRAL    # neutral: ignored, even though second hardest
    negatives = hard_negative_mining(conf, labels, negpos_ratio=3)
    assert negatives[0].nonzero().flatten().tolist() == [15, 16, 17]
    labels[0, 3] = 1           # two positives -> six negatives
    assert hard_negative_mining(conf, labels)[0].nonzero().flatten().tolist() == [12, 13, 14, 15, 16, 17]


def test_ohem_never_takes_more_than_the_other_priors():
    conf = torch.randn(1, 4, 3)
    labels = torch.tensor([[1, 1, 0, 0]])                # 2 positives want 6 negatives; only 2 exist
    assert hard_negative_mining(conf, labels)[0].tolist() == [False, False, True, True]


# -- mask, mask IoU and semantic terms ----------------------------------------------------------
def test_mask_and_maskiou_by_hand():
    """Saturated masks: the crop, the log clamp, the box-area normalisation and the IoU target."""
    raw = make_raw(CFG_PLUS)
    raw["proto"] = torch.full_like(raw["proto"], 10.0)
    raw["coef"] = torch.full_like(raw["coef"], 0.5)      # logit 10*0.5*8 = 40: sigmoid is exactly 1
    box = [0.25, 0.25, 0.75, 0.75]                        # proto pixels 16..47 (32 x 32) at 64 x 64

    class ConstantIoU(nn.Module):
        def forward(self, masks):
            return torch.full((masks.shape[0], NUM_CLASSES), 0.5)

    losses = YolactLoss(CFG_PLUS)(raw, [make_target([box], [1], 256)], maskiou_net=ConstantIoU())
    # The crop keeps the box plus 1 px (34 x 34); the 132-pixel ring predicts 1 where the
    # GT is 0, and BCE clamps -log(0) at 100. Per mask: / box area 32*32, then x mask_alpha.
    assert torch.isclose(losses["mask"], torch.tensor(6.125 * 132 * 100 / 1024))
    # IoU target 1024/1156, prediction 0.5: smooth-L1 0.5*d^2 per mask, x maskiou_alpha 25.
    assert torch.isclose(losses["maskiou"], torch.tensor(25 * 0.5 * (1024 / 1156 - 0.5) ** 2))


def test_small_masks_do_not_train_maskiou():
    raw = make_raw(CFG_PLUS)
    tiny = make_target([[0.5, 0.5, 0.515, 0.515]], [0], 256)   # 4x4 input px -> 1 proto px <= 25
    losses = YolactLoss(CFG_PLUS)(raw, [tiny], maskiou_net=MaskIoUNet(NUM_CLASSES))
    assert losses["mask"] > 0 and losses["maskiou"] == 0


def test_masks_to_train_subsamples_and_rescales():
    raw = make_raw(CFG, seed=3)
    target = make_target([[0.1, 0.1, 0.9, 0.9]], [0], 128)   # a big object: many positives
    assert num_positives(CFG, raw, target) > 4
    full = YolactLoss(CFG.replace(masks_to_train=1000))(raw, [target])["mask"]
    few = YolactLoss(CFG.replace(masks_to_train=4))(raw, [target])["mask"]
    assert not torch.isclose(full, few)                      # only 4 random masks were trained ...
    raw["coef"][:] = raw["coef"][0, 0]                       # ... so with identical masks the
    full = YolactLoss(CFG.replace(masks_to_train=1000))(raw, [target])["mask"]
    few = YolactLoss(CFG.replace(masks_to_train=4))(raw, [target])["mask"]
    assert torch.isclose(full, few, rtol=1e-5)               # old_n/new_n rescaling restores the sum


def test_semantic_target_ignores_crowds():
    raw = make_raw(CFG)
    person, crowd = [0.1, 0.1, 0.5, 0.5], [0.4, 0.4, 0.9, 0.9]
    with_crowd = YolactLoss(CFG)(raw, [make_target([person, crowd], [0, 0], 128, [False, True])])["segm"]
    without = YolactLoss(CFG)(raw, [make_target([person], [0], 128)])["segm"]
    as_object = YolactLoss(CFG)(raw, [make_target([person, crowd], [0, 0], 128)])["segm"]
    target = torch.zeros(NUM_CLASSES, 16, 16)
    target[0] = F.interpolate(box_mask(person, 128)[None, None], (16, 16), mode="bilinear")[0, 0] > 0.5
    expected = F.binary_cross_entropy_with_logits(raw["segm"][0], target, reduction="sum") / 256
    assert torch.isclose(with_crowd, expected) and torch.isclose(without, expected)
    assert not torch.isclose(as_object, expected)


# -- normalisation, precision ------------------------------------------------------------------
def test_batch_normalises_by_all_positives_and_segm_by_images():
    raw = make_raw(CFG, batch_size=2, seed=5)
    targets = [make_target([[0.1, 0.2, 0.6, 0.7]], [1], 128),
               make_target([[0.5, 0.1, 0.9, 0.4], [0.05, 0.5, 0.45, 0.95]], [0, 2], 128)]
    loss = YolactLoss(CFG)
    both = loss(raw, targets)
    singles = [loss({k: v if k == "priors" else v[i:i + 1] for k, v in raw.items()}, [t])
               for i, t in enumerate(targets)]
    n = [num_positives(CFG, raw, t) for t in targets]
    for key in ("box", "conf", "mask"):   # sums over the batch / positives in the batch
        expected = (singles[0][key] * n[0] + singles[1][key] * n[1]) / (n[0] + n[1])
        assert torch.isclose(both[key], expected, rtol=1e-5), key
    assert torch.isclose(both["segm"], (singles[0]["segm"] + singles[1]["segm"]) / 2)


def test_autocast_inputs_give_float32_losses():
    raw = make_raw(CFG)
    raw = {k: v.bfloat16() if k != "priors" else v for k, v in raw.items()}
    target = [make_target([[0.2, 0.2, 0.7, 0.6]], [1], 128)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = YolactLoss(CFG)(raw, target)
    reference = YolactLoss(CFG)({k: v.float() for k, v in raw.items()}, target)
    for key, value in mixed.items():
        assert value.dtype == torch.float32 and math.isfinite(value.item())
        assert torch.equal(value, reference[key]), key


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    raw = make_raw(CFG_PLUS, batch_size=2, seed=7)
    targets = [make_target([[0.1, 0.1, 0.6, 0.7], [0.5, 0.5, 0.95, 0.9]], [0, 2], 256, [False, True]),
               make_target([[0.3, 0.2, 0.8, 0.6]], [1], 256)]
    maskiou_net = MaskIoUNet(NUM_CLASSES)
    cpu = YolactLoss(CFG_PLUS)(raw, targets, maskiou_net=maskiou_net)
    cuda_raw = {k: v.cuda() for k, v in raw.items()}
    with torch.autocast("cuda", dtype=torch.float16):
        gpu = YolactLoss(CFG_PLUS)(cuda_raw, targets, maskiou_net=maskiou_net.cuda())
    for key, value in cpu.items():
        assert gpu[key].dtype == torch.float32
        assert torch.isclose(gpu[key].cpu(), value, rtol=1e-4), key
