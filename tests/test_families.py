"""One interface across the six families, table-driven: the same detect options with one meaning
(and a one-line refusal where a family cannot honour one), predict that never changes the model's
mode, settings that stay in their thread, freeze_backbone, bf16 and the one loader, ``ye.load``."""
import threading
import warnings

import pytest
import torch

import yolact_edu as ye
from yolact_edu.build import build_model, get_model_config
from yolact_edu.lessons.pretrained import shapes_dataset
from yolact_edu.loading import SHIPPED_FILES
from yolact_edu.model.segmenter import DEFAULT_SCORE_THRESHOLD
from yolact_edu.training.checkpoint import save_checkpoint
from yolact_edu.training.trainer import Trainer

FAMILIES = ("yolact_tiny", "maskrcnn_tiny", "condinst_tiny", "solov2_tiny", "blendmask_tiny", "centermask_tiny")
_MODELS: dict = {}


def shipped(name):
    if name not in _MODELS:
        _MODELS[name] = ye.load(name)
    return _MODELS[name]


@pytest.fixture(scope="module")
def image():
    return shapes_dataset("val").load_image(0)


# (family, options, a fragment of the one-line refusal); everything not listed here is honoured
REFUSED = [
    ("maskrcnn_tiny", {"crop": False}, "maskrcnn_tiny cannot honour crop=False: its masks are predicted inside"),
    ("blendmask_tiny", {"crop": False}, "blendmask_tiny cannot honour crop=False"),
    ("centermask_tiny", {"crop": False}, "centermask_tiny cannot honour crop=False"),
    ("solov2_tiny", {"crop": True}, "solov2_tiny cannot honour crop=True: SOLOv2 predicts no boxes"),
    ("solov2_tiny", {"crop": False}, "solov2_tiny cannot honour crop=False"),
    ("solov2_tiny", {"iou_threshold": 0.5}, "solov2_tiny cannot honour iou_threshold: its Matrix NMS"),
    ("maskrcnn_tiny", {"iou_threshold": 0.5}, "maskrcnn_tiny cannot honour iou_threshold: torchvision's RoI heads"),
    ("maskrcnn_tiny", {"nms": "fast"}, "maskrcnn_tiny: nms must be one of standard, got 'fast'"),
    ("condinst_tiny", {"nms": "matrix"}, "condinst_tiny: nms must be one of standard"),
    ("yolact_tiny", {"nms": "matrix"}, "yolact_tiny: nms must be one of fast, cross_class, standard"),
    ("solov2_tiny", {"num_protos": 4}, "solov2_tiny: detect does not take num_protos"),
    ("maskrcnn_tiny", {"conf_threshold": 0.2}, "maskrcnn_tiny: detect does not take conf_threshold"),
    ("condinst_tiny", {"conf_threshold": 1.5}, "condinst_tiny: conf_threshold must lie in [0, 1], got 1.5"),
]
OPTIONS = [{"crop": True}, {"crop": False}, {"iou_threshold": 0.5}, {"nms": "standard"}]


def refusal(name, options):
    for family, refused, message in REFUSED:
        if family == name and refused == options:
            return message
    return None


@pytest.mark.parametrize("name", FAMILIES)
def test_default_options_are_the_same_everywhere(name, image):
    found = shipped(name).predict(image)
    assert len(found) > 0
    assert float(found.scores.min()) >= DEFAULT_SCORE_THRESHOLD
    assert bool((found.scores[:-1] >= found.scores[1:]).all())
    assert len(found) <= shipped(name).cfg.max_detections


@pytest.mark.parametrize("name", FAMILIES)
def test_score_threshold_keeps_equal_scores_and_top_k_caps(name, image):
    model = shipped(name)
    every = model.predict(image, score_threshold=0.0)
    at = float(every.scores[min(3, len(every) - 1)])
    kept = model.predict(image, score_threshold=at)
    assert len(kept) == int((every.scores >= at).sum())          # >=, in every family
    assert len(model.predict(image, top_k=2)) == 2


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("name", FAMILIES)
def test_each_option_is_honoured_or_refused_in_one_line(name, options, image):
    model = shipped(name)
    message = refusal(name, options)
    if message is None and options.get("nms") == "standard" and name == "solov2_tiny":
        message = "solov2_tiny: nms must be one of matrix, got 'standard'"
    if message is not None:
        with pytest.raises(ValueError) as caught:
            model.predict(image, **options)
        assert message in str(caught.value) and "\n" not in str(caught.value)
        return
    found = model.predict(image, **options)
    if options.get("crop"):
        # every mask pixel lies inside its box; YOLACT crops on its prototype grid (with the
        # original's one-cell padding) before upsampling, so there the margin is two cells
        margin = 1 if found.proto is None else 2 * -(-image.shape[1] // found.proto.shape[1])
        for box, mask in zip(found.boxes, found.masks):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            if len(xs):
                assert xs.min() >= int(box[0]) - margin and xs.max() <= int(box[2]) + margin
                assert ys.min() >= int(box[1]) - margin and ys.max() <= int(box[3]) + margin
    if "iou_threshold" in options:
        assert len(found) <= len(model.predict(image, iou_threshold=0.9))


@pytest.mark.parametrize("family, options, message", REFUSED, ids=lambda v: str(v)[:30])
def test_refusals_come_before_the_network_runs(family, options, message, image):
    model = shipped(family)
    calls = []
    handle = model.register_forward_hook(lambda *args: calls.append(1))
    try:
        with pytest.raises(ValueError, match=message.split(":")[0]):
            model.predict(image, **options)
    finally:
        handle.remove()
    assert calls == []


@pytest.mark.parametrize("name", [n for n in FAMILIES if n != "maskrcnn_tiny"])
def test_conf_threshold_is_the_candidate_threshold_in_every_family_that_has_one(name, image):
    model = shipped(name)
    assert "conf_threshold" in model.detect_extras
    x = model.preprocess(image)
    with torch.no_grad():
        raw = model(x)
    # (not monotonic in between: with Fast NMS more candidates can also suppress more)
    counts = [len(model.detect(raw, image.shape[:2], score_threshold=0.0, top_k=500, conf_threshold=t)[0])
              for t in (0.0, 0.9, 1.0)]
    assert counts[0] > counts[1] and counts[2] == 0              # no class probability is > 1
    default = model.detect(raw, image.shape[:2], score_threshold=0.0)[0]
    same = model.detect(raw, image.shape[:2], score_threshold=0.0, conf_threshold=model.cfg.nms_conf_thresh)[0]
    assert torch.equal(default.scores, same.scores)        # None means the config's nms_conf_thresh


def test_every_family_names_its_candidate_threshold_and_nms_iou_alike():
    for name in FAMILIES:
        fields = set(get_model_config(name).__dataclass_fields__)
        assert "nms_conf_thresh" in fields, name
        assert ("nms_iou_thresh" in fields) == (shipped(name).iou_refusal is None or name == "maskrcnn_tiny"), name
        assert not fields & {"candidate_threshold", "nms_threshold", "box_score_thresh", "box_nms_thresh"}, name


def test_condinst_crop_changes_its_masks_and_yolact_without_crop_spreads(image):
    condinst = shipped("condinst_tiny")
    loose, cropped = condinst.predict(image, crop=False), condinst.predict(image, crop=True)
    assert len(loose) == len(cropped)
    assert int(cropped.masks.sum()) <= int(loose.masks.sum())
    assert bool((cropped.masks <= loose.masks).all())
    yolact = shipped("yolact_tiny")
    assert int(yolact.predict(image, crop=False).masks.sum()) > int(yolact.predict(image).masks.sum())


@pytest.mark.parametrize("name", FAMILIES)
def test_predict_never_changes_the_models_mode(name, image):
    model = build_model(name)
    model.train()
    frozen = next(m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)))
    frozen.eval()
    model.predict(image)
    assert model.training and not frozen.training
    model.eval()
    model.predict(image)
    assert not model.training


@pytest.mark.parametrize("name", FAMILIES)
def test_settings_are_seen_only_by_their_own_thread(name):
    model = build_model(name)
    entered, release, seen = threading.Event(), threading.Event(), {}

    def widget():
        with model.settings(max_detections=3):
            seen["inside"] = model.cfg.max_detections
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=widget)
    thread.start()
    entered.wait(10)
    seen["other thread"] = model.cfg.max_detections
    release.set()
    thread.join()
    assert seen == {"inside": 3, "other thread": 100}
    assert model.cfg.max_detections == 100


def trainable_names(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("name", FAMILIES)
def test_freeze_backbone_freezes_the_backbone_only(name, tmp_path):
    train = shapes_dataset("train")
    model = build_model(get_model_config(name).with_classes(train.class_names))
    backbone = {id(p) for p in model.backbone_parameters()}
    assert backbone and len(backbone) < len(list(model.parameters()))
    neck = [n for n, p in model.named_parameters() if "fpn" in n.lower() and id(p) in backbone]
    assert neck == []                                       # the FPN is never part of it
    trainer = Trainer(model, train, out_dir=tmp_path, batch_size=2, max_iter=1,
                      freeze_backbone=True, progress=False)
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if id(p) in backbone}
    others_before = {n: p.detach().clone() for n, p in model.named_parameters() if id(p) not in backbone}
    trainer.run()
    assert all(torch.equal(p, frozen_before[n]) for n, p in model.named_parameters() if n in frozen_before)
    assert any(not torch.equal(p, others_before[n]) for n, p in model.named_parameters() if n in others_before)
    assert all(not m.training for m in model.backbone_modules())


@pytest.mark.parametrize("name", FAMILIES)
def test_bf16_runs_in_every_family(name, image, monkeypatch):
    # this CPU may lack native bf16: let it emulate, which is all the dtype check needs
    monkeypatch.setenv("YOLACT_EDU_EMULATED_BF16", "1")
    model = shipped(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # "running it emulated", on a CPU without bf16
        found = model.predict(image, autocast="bf16")
    plain = model.predict(image)
    assert len(found) > 0 and found.boxes.dtype == torch.float32
    assert int(found.labels[0]) == int(plain.labels[0])


@pytest.mark.parametrize("name", SHIPPED_FILES)
def test_load_a_shipped_model_by_name(name):
    model = ye.load(name)
    assert not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.cfg.name == name.removesuffix("_crowded")


def test_load_your_own_checkpoint(tmp_path):
    model = build_model("condinst_tiny")
    path = tmp_path / "run" / "checkpoints" / "condinst_tiny_0000010.pth"
    path.parent.mkdir(parents=True)
    save_checkpoint(path, model)
    loaded = ye.load(path)
    assert type(loaded) is type(model) and not loaded.training
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    assert type(ye.load(str(path))) is type(model)


def test_load_an_official_file_by_its_name_in_the_weights_folder(tmp_path, monkeypatch):
    from official_keys import make_state_dict

    from yolact_edu.weights import OFFICIAL_FILES

    monkeypatch.setenv("YOLACT_EDU_HOME", str(tmp_path))
    (tmp_path / "weights").mkdir()
    name = OFFICIAL_FILES["yolact_resnet50"]
    torch.save(make_state_dict("yolact_resnet50", seed=0), tmp_path / "weights" / name)
    model = ye.load(name)
    assert model.cfg.name == "yolact_resnet50" and not model.training


def test_load_refuses_what_it_cannot_find_in_one_line(tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        ye.load("yolact_huge")
    message = str(caught.value)
    assert message.startswith("yolact_huge: no such file, and not a shipped model (yolact_tiny,")
    assert "yolact-edu weights download" in message and "\n" not in message


def test_the_readme_table_of_options_is_the_code_s():
    from pathlib import Path

    from yolact_edu.build import detect_options_markdown

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"<!-- detect-options -->\n{detect_options_markdown()}\n<!-- /detect-options -->" in readme, \
        "run tools/update_readme.py"
