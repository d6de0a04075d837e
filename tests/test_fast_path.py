"""The inference fast path (model.optimize()) and its correctness guard: on the same images its
detections match eager fp32 (same classes, boxes within 1 px, mask IoU >= 0.95 for the top 20)."""
import numpy as np
import pytest
import torch
from cpu_support import needs_native_bf16

import yolact_edu as ye
from yolact_edu.bench.cpu import cpu_has_native_bf16
from yolact_edu.lessons.pretrained import shapes_dataset, shipped_model
from yolact_edu.model.fast_path import resolve_autocast
from yolact_edu.ops.agreement import detection_agreement
from yolact_edu.ops.assemble import assemble_masks, masks_to_image
from yolact_edu.ops.nms import batched_fast_nms, fast_nms, run_nms, stable_topk
from yolact_edu.postprocess import detect, prior_candidates
from yolact_edu.training.evaluation import evaluate


@pytest.fixture(scope="module")
def shipped():
    return shipped_model("yolact_tiny")


@pytest.fixture(scope="module")
def val_images():
    dataset = shapes_dataset("val")
    return [dataset.load_image(i) for i in range(20)]


@pytest.fixture(scope="module")
def eager_found(shipped, val_images):
    return [shipped.predict(image) for image in val_images]


def test_stable_topk_orders_ties_by_index():
    values = torch.tensor([[0.5, 1.0, 0.2, 1.0, 1.0, 0.7]])
    top, idx = stable_topk(values, 4)
    assert idx.tolist() == [[1, 3, 4, 5]]
    assert torch.equal(top, values[0, [1, 3, 4, 5]][None])


def test_batched_fast_nms_equals_fast_nms_per_image():
    generator = torch.Generator().manual_seed(0)
    batch, classes, priors = 3, 5, 400
    centres = torch.rand(batch, priors, 2, generator=generator)
    sizes = torch.rand(batch, priors, 2, generator=generator) * 0.3 + 0.02
    boxes = torch.cat([centres - sizes / 2, centres + sizes / 2], -1)
    # quantised scores: many exact ties, as a trained model's saturated 1.0 scores give
    scores = (torch.rand(batch, classes, priors, generator=generator) * 20).floor() / 20
    candidates = scores.max(dim=1).values > 0.6
    prior_idx, labels, kept, valid = batched_fast_nms(boxes, scores, candidates, 0.5, nms_top_k=50, max_detections=40)
    assert prior_idx.shape == (batch, 40) and valid.dtype == torch.bool
    for b in range(batch):
        where = candidates[b].nonzero().squeeze(1)
        keep, ref_labels, ref_scores = fast_nms(boxes[b][where], scores[b][:, where], 0.5, 50, 40)
        n = int(valid[b].sum())
        assert bool(valid[b, :n].all()) and not bool(valid[b, n:].any())    # the valid ones come first
        assert n == len(keep)
        assert torch.equal(prior_idx[b, :n], where[keep])
        assert torch.equal(labels[b, :n], ref_labels)
        assert torch.equal(kept[b, :n], ref_scores)


def one_image_step_by_step(raw, cfg, b, size, *, nms="fast", score_threshold=0.0, top_k=None, crop=True,
                           conf_threshold=None, num_protos=None, maskiou_net=None):
    """The original's post-processing for image ``b`` alone, one step after another (candidates,
    NMS, score cut, assembly, crop, upsampling of every mask to the image): what ``detect`` must give."""
    conf = cfg.nms_conf_thresh if conf_threshold is None else conf_threshold
    cap = top_k if top_k is not None else (None if nms == "cross_class" else cfg.max_detections)
    candidates, boxes, class_scores = prior_candidates(raw, b, conf)
    keep, labels, scores = run_nms(nms, boxes, class_scores, iou_threshold=cfg.nms_iou_thresh,
                                   nms_top_k=cfg.nms_top_k, conf_threshold=conf, max_detections=cap)
    above = scores >= score_threshold
    keep, labels, scores = keep[above], labels[above], scores[above]
    used = raw["proto"].shape[-1] if num_protos is None else num_protos
    coefs = raw["coef"][b, candidates][keep][:, :used].float()
    soft = assemble_masks(raw["proto"][b, ..., :used].float(), coefs, boxes[keep], crop_masks=crop)
    mask_scores = None
    if maskiou_net is not None:
        mask_scores = scores * maskiou_net(soft[:, None]).gather(1, labels[:, None]).squeeze(1)
    return {"labels": labels, "scores": scores, "boxes_rel": boxes[keep], "coefs": coefs,
            "masks": masks_to_image(soft, *size, 0.5), "mask_scores": mask_scores}


@pytest.mark.parametrize("settings", [{}, {"score_threshold": 0.3, "top_k": 7}, {"crop": False, "conf_threshold": 0.2},
                                      {"nms": "standard"}, {"nms": "cross_class", "top_k": 12},
                                      {"num_protos": 3, "nms": "standard"}])
def test_the_one_batched_path_equals_the_original_steps_image_by_image(shipped, val_images, settings):
    x = shipped.preprocess(val_images[:4])
    with torch.no_grad():
        raw = shipped.eval()(x)
    sizes = [image.shape[:2] for image in val_images[:4]]
    found = detect(raw, shipped.cfg, sizes, **settings)
    alone = [detect({**{k: raw[k][b:b + 1] for k in ("loc", "conf", "coef", "proto")}, "priors": raw["priors"]},
                    shipped.cfg, sizes[b], **settings)[0] for b in range(4)]
    for b, (got, single) in enumerate(zip(found, alone)):
        reference = one_image_step_by_step(raw, shipped.cfg, b, sizes[b], **settings)
        assert len(got) == len(reference["labels"]) > 0, settings
        for name, expected in reference.items():
            if expected is not None:
                assert torch.equal(getattr(got, name), expected), (settings, b, name)
        for name in ("labels", "scores", "boxes", "coefs", "masks"):     # the batch does not change an image's result
            assert torch.equal(getattr(got, name), getattr(single, name)), (settings, b, name)


def test_an_image_without_candidates_gets_empty_detections_of_the_right_shapes(shipped, val_images):
    x = shipped.preprocess(val_images[:2])
    with torch.no_grad():
        raw = shipped.eval()(x)
    raw["conf"][1] = torch.tensor([50.0] + [0.0] * shipped.cfg.num_classes)     # image 1: all background
    for nms in ("fast", "standard"):
        found = detect(raw, shipped.cfg, [(40, 50), (30, 70)], nms=nms)
        assert len(found[0]) > 0 and len(found[1]) == 0
        empty = found[1]
        assert empty.masks.shape == (0, 30, 70) and empty.masks.dtype == torch.bool
        assert empty.boxes.shape == (0, 4) and empty.coefs.shape == (0, raw["proto"].shape[-1])


def test_yolact_plus_mask_scores_are_the_maskiou_nets_on_the_kept_masks():
    torch.manual_seed(0)
    model = ye.Yolact(ye.get_config("yolact_tiny").replace(use_maskiou=True)).eval()
    with torch.no_grad():
        model.prediction_layers[0].conf_layer.weight.mul_(20)
        raw = model(model.preprocess(np.zeros((64, 80, 3), np.uint8) + 90))
        for nms in ("fast", "standard"):
            found = detect(raw, model.cfg, (64, 80), nms=nms, maskiou_net=model.maskiou_net)[0]
            reference = one_image_step_by_step(raw, model.cfg, 0, (64, 80), nms=nms, maskiou_net=model.maskiou_net)
            assert found.mask_scores is not None and len(found.mask_scores) == len(found) > 0
            assert torch.allclose(found.mask_scores, reference["mask_scores"], atol=1e-6)


def test_optimize_leaves_the_model_alone_and_is_inference_only(shipped):
    before = {k: v.clone() for k, v in shipped.state_dict().items()}
    fast = shipped.optimize(autocast="fp32")
    assert fast.fast_path.folded > 0 and fast.fast_path.channels_last
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in shipped.modules())
    assert shipped.fast_path is None
    after = shipped.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(RuntimeError, match="optimize"):
        fast.train()


def test_fp32_fast_path_passes_the_guard(shipped, val_images, eager_found):
    fast = shipped.optimize(autocast="fp32")
    for image, reference in zip(val_images, eager_found):
        report = detection_agreement(reference, fast.predict(image), top=20)
        assert report["agrees"], report
        assert report["same_order"] and report["max_box_px"] == 0 and report["min_mask_iou"] == 1.0


def test_fp32_fast_path_on_a_batch(shipped, val_images, eager_found):
    fast = shipped.optimize(autocast="fp32")
    for reference, found in zip(eager_found[:6], fast.predict(val_images[:6])):
        assert torch.equal(reference.labels, found.labels) and torch.equal(reference.masks, found.masks)


@needs_native_bf16
def test_bf16_fast_path(shipped, val_images, eager_found):
    """bf16 moves scores by about 0.01: confident detections pass the guard on every image; in the
    low-scoring tail, where near-threshold NMS decisions flip, the strict top-20 guard can fail
    (docs/benchmarks.md gives the counts), so accuracy over the val set is checked too. A promise of
    CPUs with native bf16 only: elsewhere bf16 is refused (emulated, it missed this guard)."""
    fast = shipped.optimize(autocast="bf16")
    assert fast.fast_path.autocast == "bf16"
    for image, reference in zip(val_images, eager_found):
        found = fast.predict(image)
        report = detection_agreement(reference[reference.scores >= 0.3], found, top=20)
        assert report["agrees"], report
        assert report["max_score_diff"] < 0.05


@needs_native_bf16
def test_bf16_fast_path_keeps_the_accuracy(shipped):
    dataset = shapes_dataset("val", max_size=shipped.cfg.max_size)
    eager = evaluate(shipped, dataset, max_images=50, progress=False, verbose=False)
    fast = evaluate(shipped.optimize(autocast="bf16"), dataset, max_images=50, progress=False, verbose=False)
    for kind in ("bbox", "segm"):
        assert abs(eager[kind]["AP"] - fast[kind]["AP"]) < 0.005, (kind, eager[kind]["AP"], fast[kind]["AP"])


def test_autocast_choice():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_autocast("fp32", cpu) is None
    assert resolve_autocast("bf16", cuda) == "bf16"
    assert resolve_autocast("auto", cuda) == "fp16"
    assert resolve_autocast("auto", cpu) == ("bf16" if cpu_has_native_bf16() else None)
    with pytest.raises(ValueError, match="autocast must be one of"):
        resolve_autocast("int8", cpu)


def test_the_relatives_take_the_switch_too(val_images):
    model = shipped_model("condinst_tiny")
    fast = model.optimize(autocast="fp32")
    report = detection_agreement(model.predict(val_images[0]), fast.predict(val_images[0]), top=20)
    assert report["agrees"], report


@pytest.mark.parametrize("count, proto, height, width, half_side", [
    (40, 69, 480, 640, 0.05),      # small boxes: windows
    (40, 69, 480, 640, 0.5),       # large boxes: whole-image interpolation
    (40, 32, 301, 97, 0.2),        # mixed, odd sizes
    (0, 32, 50, 60, 0.1),
])
def test_upsampling_inside_the_boxes_gives_the_same_masks(count, proto, height, width, half_side):
    from yolact_edu.ops.assemble import assemble_masks, masks_to_image, masks_to_image_in_boxes

    generator = torch.Generator().manual_seed(count + proto)
    prototypes = torch.rand(proto, proto, 16, generator=generator)
    coefs = torch.randn(count, 16, generator=generator) * 0.4
    centres = torch.rand(count, 2, generator=generator) * 1.2 - 0.1          # some boxes leave the image
    sides = torch.rand(count, 2, generator=generator) * half_side + 0.002
    boxes = torch.cat([centres - sides, centres + sides], 1)
    soft = assemble_masks(prototypes, coefs, boxes, crop_masks=True)
    reference = masks_to_image(soft, height, width)
    found = masks_to_image_in_boxes(soft, boxes, height, width)
    assert found.shape == (count, height, width) and found.dtype == torch.bool
    assert torch.equal(found, reference)
    if count:
        assert reference.any()
