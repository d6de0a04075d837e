"""Configurations: the official set, the teaching config, and safe changes."""
import dataclasses

import pytest

import yolact_edu as ye
from yolact_edu.config import COCO_CATEGORY_IDS

OFFICIAL = ["yolact_base", "yolact_im400", "yolact_im700", "yolact_resnet50",
            "yolact_darknet53", "yolact_plus_base", "yolact_plus_resnet50"]


def test_list_configs_has_the_official_seven_then_teaching_ones():
    names = ye.list_configs()
    assert names[:7] == OFFICIAL
    assert "yolact_tiny" in names[7:]


@pytest.mark.parametrize("name", OFFICIAL)
def test_official_configs_share_the_coco_defaults(name):
    cfg = ye.get_config(name)
    assert cfg.name == name and cfg.num_classes == 80 and len(cfg.class_names) == 80
    assert cfg.num_protos == 32
    assert (cfg.nms_top_k, cfg.nms_conf_thresh, cfg.nms_iou_thresh, cfg.max_detections) == (200, 0.05, 0.5, 100)
    assert cfg.masks_to_train == (300 if name == "yolact_im700" else 100)
    assert cfg.num_anchors == (9 if "plus" in name else 3)
    assert cfg.square_anchors == ("plus" not in name)


def test_scaled_anchor_sizes_truncate_like_the_original():
    assert [s[0] for s in ye.get_config("yolact_im400").pred_scales] == [17, 34, 69, 139, 279]
    assert [s[0] for s in ye.get_config("yolact_im700").pred_scales] == [30, 61, 122, 244, 488]


def test_configs_are_frozen_and_replace_makes_a_copy():
    cfg = ye.get_config("yolact_base")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.max_size = 10
    three = cfg.replace(num_classes=3)
    assert three.class_names == ("class_0", "class_1", "class_2")
    assert cfg.num_classes == 80 and ye.get_config("yolact_base").num_classes == 80
    named = cfg.replace(num_classes=2, class_names=("cat", "dog"))
    assert named.class_names == ("cat", "dog")


def test_bad_config_values_are_named():
    cfg = ye.get_config("yolact_base")
    with pytest.raises(ValueError, match="class_names has 2 entries but num_classes is 3"):
        cfg.replace(num_classes=3, class_names=("a", "b"))
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1, got 0"):
        cfg.replace(num_classes=0, class_names=())
    with pytest.raises(KeyError, match="unknown config 'yolact_huge'"):
        ye.get_config("yolact_huge")
    assert ye.get_config("yolact_base_config") is cfg


def test_coco_category_ids():
    assert len(COCO_CATEGORY_IDS) == 80
    assert COCO_CATEGORY_IDS[:11] == tuple(range(1, 12)) and COCO_CATEGORY_IDS[11] == 13
    assert COCO_CATEGORY_IDS[-1] == 90


def test_yolact_plus_needs_inputs_large_enough_for_mask_rescoring():
    plus = ye.get_config("yolact_plus_resnet50")
    assert plus.replace(max_size=249).max_size == 249
    with pytest.raises(ValueError, match="max_size >= 249; got max_size 248"):
        plus.replace(max_size=248)
    assert ye.get_config("yolact_resnet50").replace(max_size=128).max_size == 128


def test_each_config_carries_its_augmentation():
    assert ye.get_config("yolact_tiny").augmentation == "light"           # a schedule of minutes
    assert all(ye.get_config(name).augmentation == "original" for name in OFFICIAL)
    with pytest.raises(ValueError, match="augmentation"):
        ye.get_config("yolact_tiny").replace(augmentation="heavy")


def test_with_classes_fits_a_config_to_a_dataset():
    cfg = ye.get_config("yolact_tiny")
    assert cfg.with_classes(cfg.class_names) is cfg
    pets = cfg.with_classes(["cat", "dog"])
    assert (pets.num_classes, pets.class_names) == (2, ("cat", "dog")) and pets.max_size == cfg.max_size


def test_configs_saved_under_the_old_threshold_names_still_load():
    from yolact_edu.build import config_from_dict, get_model_config
    from yolact_edu.config import config_to_dict
    conf, iou = "nms_conf_thresh", "nms_iou_thresh"
    for name, renames in (("condinst_tiny", {conf: "candidate_threshold", iou: "nms_threshold"}),
                          ("solov2_tiny", {conf: "candidate_threshold"}),
                          ("maskrcnn_tiny", {conf: "box_score_thresh", iou: "box_nms_thresh"})):
        cfg = get_model_config(name).replace(nms_conf_thresh=0.125)
        values = config_to_dict(cfg)
        for new, old in renames.items():
            values[old] = values.pop(new)
        assert config_from_dict(values) == cfg
        values["nms_conf_thresh"] = 0.25          # both names: the new one wins, nothing unknown is left
        assert config_from_dict(values).nms_conf_thresh == 0.25
