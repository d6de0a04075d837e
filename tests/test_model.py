"""The public model contract of DESIGN §2: preprocess, forward, detect, predict."""
import numpy as np
import pytest
import torch
from cpu_support import needs_native_bf16

import yolact_edu as ye
from conftest import spread_scores
from yolact_edu.ops.preprocess import RGB_MEAN, RGB_STD


def check_detections(dets, height, width, num_protos=32):
    n = len(dets)
    assert n > 0
    assert dets.boxes.shape == (n, 4) and dets.boxes.dtype == torch.float32
    assert (dets.boxes[:, 0] >= 0).all() and (dets.boxes[:, 1] >= 0).all()
    assert (dets.boxes[:, 2] <= width).all() and (dets.boxes[:, 3] <= height).all()
    assert (dets.boxes[:, 2] >= dets.boxes[:, 0]).all() and (dets.boxes[:, 3] >= dets.boxes[:, 1]).all()
    # The original's postprocess: relative boxes x image size, clamped to the image, truncated.
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    pixels = (dets.boxes_rel * scale).clamp(min=torch.zeros(4), max=scale)
    assert torch.equal(dets.boxes, pixels.long().float())
    assert dets.masks.shape == (n, height, width) and dets.masks.dtype == torch.bool
    assert dets.labels.dtype == torch.int64 and dets.labels.min() >= 0
    assert dets.coefs.shape == (n, num_protos)
    assert dets.coefs.abs().max() <= 1.0
    assert dets.proto.ndim == 3 and dets.proto.shape[-1] == num_protos and dets.proto.min() >= 0
    assert torch.all(dets.scores[:-1] >= dets.scores[1:]), "sorted by score, descending"
    assert ((dets.scores >= 0) & (dets.scores <= 1)).all()


def test_predict_contract_tiny(tiny_model, images):
    image = images[0]
    dets = tiny_model.predict(image)
    check_detections(dets, 240, 320)
    assert dets.mask_scores is None
    assert len(dets) <= tiny_model.cfg.max_detections
    # masks are cropped: nothing outside the (1 proto-pixel padded) box survives
    proto_px = 320 / tiny_model.cfg.max_size * 4     # image pixels per proto pixel, x direction
    ys, xs = torch.nonzero(dets.masks[0], as_tuple=True)
    if len(xs):
        x1, y1, x2, y2 = dets.boxes[0].tolist()
        assert xs.min() >= x1 - 2 * proto_px and xs.max() <= x2 + 2 * proto_px


@pytest.mark.parametrize("name", ["yolact_resnet50", "yolact_plus_resnet50"])
def test_predict_contract_official_architectures(name, images):
    torch.manual_seed(1)
    model = spread_scores(ye.Yolact(name)).eval()
    dets = model.predict(images[1], top_k=20)
    check_detections(dets, 300, 200)
    assert len(dets) <= 20
    if model.cfg.use_maskiou:
        assert dets.mask_scores.shape == dets.scores.shape
        assert (dets.mask_scores >= 0).all()


def test_batch_of_two_equals_two_batches_of_one(tiny_model, images):
    x = tiny_model.preprocess(list(images))
    sizes = [im.shape[:2] for im in images]
    with torch.no_grad():
        together = tiny_model.detect(tiny_model(x), sizes)
        apart = [tiny_model.detect(tiny_model(x[i:i + 1]), [sizes[i]])[0] for i in range(2)]
    for a, b in zip(together, apart):
        assert len(a) == len(b) > 0
        assert torch.allclose(a.scores, b.scores, atol=1e-5)
        # Detections whose scores tie to float rounding may come out in either order; put
        # both lists in (score, label) order before comparing them entry by entry.
        order_a = sorted(range(len(a)), key=lambda i: (round(a.scores[i].item(), 4), a.labels[i].item()))
        order_b = sorted(range(len(b)), key=lambda i: (round(b.scores[i].item(), 4), b.labels[i].item()))
        a_boxes, b_boxes = a.boxes_rel[order_a], b.boxes_rel[order_b]
        assert torch.equal(a.labels[order_a], b.labels[order_b])
        assert torch.allclose(a_boxes, b_boxes, atol=1e-5)
        # whole-pixel boxes: a coordinate sitting on a pixel edge may truncate either way
        assert (a.boxes[order_a] - b.boxes[order_b]).abs().max() <= 1
        assert torch.allclose(a.coefs[order_a], b.coefs[order_b], atol=1e-5)
        # a mask pixel may flip where the soft mask sits exactly at the threshold
        assert (a.masks[order_a] != b.masks[order_b]).float().mean() < 1e-3


def test_predict_accepts_lists_and_tensors(tiny_model, images):
    image = images[0]
    single = tiny_model.predict(image)
    from_tensor = tiny_model.predict(torch.from_numpy(image).permute(2, 0, 1))
    batch = tiny_model.predict(torch.from_numpy(np.stack([image, image])).permute(0, 3, 1, 2))
    listed = tiny_model.predict([image])
    assert isinstance(batch, list) and len(batch) == 2 and isinstance(listed, list)
    for other in (from_tensor, batch[1], listed[0]):
        assert torch.equal(other.labels, single.labels)
        assert torch.allclose(other.scores, single.scores, atol=1e-6)


def test_preprocess_normalisation():
    model = ye.Yolact("yolact_tiny").eval()
    mean_image = np.broadcast_to(np.array(RGB_MEAN), (50, 70, 3)).round().astype(np.uint8)
    x = model.preprocess(mean_image)
    side = model.cfg.max_size
    assert x.shape == (1, 3, side, side)
    expected = (torch.tensor(mean_image[0, 0], dtype=torch.float32) - torch.tensor(RGB_MEAN)) / torch.tensor(RGB_STD)
    assert torch.allclose(x[0, :, 5, 5], expected, atol=1e-6)
    # stretch resize, bilinear, align_corners=False: a left/right split image keeps its halves
    split = np.zeros((10, 20, 3), np.uint8)
    split[:, 10:] = 255
    y = model.preprocess(split)
    assert torch.allclose(y[0, 0, :, 0], torch.full((side,), -RGB_MEAN[0] / RGB_STD[0]))
    assert torch.allclose(y[0, 0, :, -1], torch.full((side,), (255 - RGB_MEAN[0]) / RGB_STD[0]))


def test_darknet_preprocess_is_unit_scaling():
    cfg = ye.get_config("yolact_darknet53").replace(max_size=64)
    with torch.device("meta"):
        model = ye.Yolact(cfg)
    model.to_empty(device="cpu")
    image = np.full((8, 8, 3), 51, np.uint8)
    assert torch.allclose(model.preprocess(image), torch.full((1, 3, 64, 64), 0.2))


def test_forward_outputs_in_train_and_eval_mode(tiny_model):
    cfg = tiny_model.cfg
    x = torch.randn(2, 3, cfg.max_size, cfg.max_size)
    tiny_model.train()
    try:
        raw = tiny_model(x)
    finally:
        tiny_model.eval()
    num_priors = raw["priors"].shape[0]
    assert raw["loc"].shape == (2, num_priors, 4)
    assert raw["conf"].shape == (2, num_priors, cfg.num_classes + 1)
    assert raw["coef"].shape == (2, num_priors, cfg.num_protos)
    proto_side = cfg.max_size // 4                 # P3 is 1/8 of the input, upsampled x2
    assert raw["proto"].shape == (2, proto_side, proto_side, cfg.num_protos)
    assert raw["segm"].shape == (2, cfg.num_classes, proto_side // 2, proto_side // 2)   # on P3
    assert raw["conf"].min() < 0 < raw["conf"].max(), "logits, not probabilities"
    with torch.no_grad():
        assert "segm" not in tiny_model(x)


def test_detect_options(tiny_model, images):
    image = images[0]
    base = tiny_model.predict(image)
    few = tiny_model.predict(image, top_k=5)
    assert len(few) == 5 and torch.equal(few.labels, base.labels[:5])
    high = tiny_model.predict(image, score_threshold=float(base.scores[3]))
    assert len(high) == 4            # >=, as every family: the detection scoring exactly the threshold stays
    uncropped = tiny_model.predict(image, crop=False)
    assert uncropped.masks.sum() >= base.masks.sum()
    loose = tiny_model.predict(image, mask_threshold=0.1)
    assert (loose.masks | ~base.masks).all(), "a lower threshold only adds pixels"
    for kind in ("cross_class", "standard"):
        other = tiny_model.predict(image, nms=kind)
        assert len(other) > 0 and torch.all(other.scores[:-1] >= other.scores[1:])
    with pytest.raises(ValueError, match="nms must be one of"):
        tiny_model.predict(image, nms="soft")


def test_bad_inputs_are_named(tiny_model):
    with pytest.raises(ValueError, match=r"HxWx3.*\(10, 10\)"):
        tiny_model.predict(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match=r"\[3,H,W\]"):
        tiny_model.predict(torch.zeros(4, 10, 10, dtype=torch.uint8))
    with pytest.raises(TypeError, match="numpy array or a torch tensor"):
        tiny_model.predict("image.jpg")
    with pytest.raises(ValueError, match="autocast"):
        tiny_model.predict(np.zeros((10, 10, 3), np.uint8), autocast="fp8")


def test_predict_restores_training_mode(images):
    model = ye.Yolact("yolact_tiny")
    assert model.training
    model.predict(images[0])
    assert model.training


@needs_native_bf16
def test_cpu_autocast_bf16_runs(tiny_model, images):
    dets = tiny_model.predict(images[0], autocast="bf16")
    assert dets.boxes.dtype == torch.float32 and len(dets) > 0
