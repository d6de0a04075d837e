"""Notebook 01 §1: opaque class and instance maps, the region count the learner guesses, and
captions that do not cover each other (viz.draw.caption_boxes)."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from yolact_edu.lessons.two_ways.tasks import (  # noqa: E402
    BACKGROUND,
    instance_color,
    instance_map,
    label_picture,
    plot_task_maps,
    region_counts,
    region_sentence,
    semantic_regions,
)
from yolact_edu.viz.draw import caption_boxes, class_color, draw_instances  # noqa: E402


def touching_target():
    """Three touching circles of class 0 (one semantic region), a square of class 1 apart."""
    height, width = 40, 60
    yy, xx = np.mgrid[:height, :width]
    masks = []
    for cx in (8, 18, 28):
        masks.append(((xx - cx) ** 2 + (yy - 10) ** 2 <= 25) & ~np.any(masks, axis=0) if masks else
                     ((xx - cx) ** 2 + (yy - 10) ** 2 <= 25))
    square = np.zeros((height, width), bool)
    square[25:35, 45:55] = True
    masks = np.stack([*masks, square]).astype(np.uint8)
    boxes = [[3, 5, 14, 16], [13, 5, 24, 16], [23, 5, 34, 16], [45, 25, 55, 35]]
    return {"masks": torch.from_numpy(masks), "boxes": torch.tensor(boxes, dtype=torch.float32),
            "labels": torch.tensor([0, 0, 0, 1])}


def test_regions_merge_touching_objects_of_one_class_only():
    target = touching_target()
    counts = region_counts(target, (40, 60))
    assert counts == {"instances": 4, "classes": 2, "semantic regions": 2}
    sentence = region_sentence(counts)
    assert "4 objects of 2 classes form only 2 semantic regions" in sentence
    # the same circles as two classes no longer merge into one region
    target["labels"] = torch.tensor([0, 2, 0, 1])
    assert region_counts(target, (40, 60))["semantic regions"] == 4
    assert "its own semantic region" in region_sentence(region_counts(target, (40, 60)))


def test_semantic_regions_connectivity():
    class_map = np.zeros((5, 5), np.int64)
    class_map[1, 1] = class_map[2, 2] = 3           # touch at a corner only
    assert semantic_regions(class_map, 8) == 1 and semantic_regions(class_map, 4) == 2
    assert semantic_regions(np.zeros((3, 3), np.int64)) == 0


def test_maps_are_opaque_and_ids_distinct():
    target = touching_target()
    ids = instance_map(target["masks"])
    assert ids[10, 8] == 1 and ids[10, 28] == 3 and ids[30, 50] == 4 and ids[0, 0] == 0
    assert instance_map(np.zeros((0, 3, 4)), height=3, width=4).shape == (3, 4)
    with pytest.raises(ValueError):
        instance_map(np.zeros((0, 3, 4)))
    picture = label_picture(ids, {i + 1: instance_color(i) for i in range(4)})
    assert tuple(picture[0, 0]) == BACKGROUND                       # nothing of an image shows through
    assert tuple(picture[10, 8]) == instance_color(0) != instance_color(2) == tuple(picture[10, 28])


def test_plot_task_maps_draws_legends():
    target = touching_target()
    image = np.full((40, 60, 3), 200, np.uint8)
    axes = plot_task_maps(image, target, ["circle", "square", "triangle"])
    semantic_legend = [t.get_text() for t in axes[2].get_legend().get_texts()]
    instance_legend = [t.get_text() for t in axes[3].get_legend().get_texts()]
    assert semantic_legend == ["circle", "square"]
    assert instance_legend == ["#0 circle", "#1 circle", "#2 circle", "#3 square"]
    semantic = axes[2].get_images()[0].get_array()
    assert tuple(semantic[10, 8]) == tuple(semantic[10, 28]) == class_color(0)   # one colour for the blob


def _overlap(a, b):
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def test_captions_of_a_crowded_row_do_not_overlap():
    # eight touching boxes, each far narrower than its caption: the old "always above the
    # top-left corner" placement put every caption on one line, each covering the next
    boxes = np.array([[20 + 30 * i, 60, 50 + 30 * i, 110] for i in range(8)], np.float32)
    captions = [f"circle 0.{90 - i}" for i in range(8)]
    rects = caption_boxes(boxes, captions, (200, 300))
    assert len(rects) == 8
    for i in range(8):
        x1, y1, x2, y2 = rects[i]
        assert 0 <= x1 < x2 <= 300 and 0 <= y1 < y2 <= 200
        for j in range(i):
            assert _overlap(rects[i], rects[j]) == 0, (i, j, rects[i], rects[j])
    # the best detection keeps the usual place, above its box
    assert rects[0][3] == 60 and rects[0][0] == 20


def test_captions_with_no_free_place_pile_up_above_their_box_rather_than_fill_the_picture():
    # a 64x48 picture with many detections: spreading the captions would cover the picture, so
    # each stays at its first place (above its box, kept in the image)
    boxes = np.array([[5, 20, 40, 45]] * 6, np.float32)
    captions = [f"circle 0.{90 - i}" for i in range(6)]
    rects = caption_boxes(boxes, captions, (48, 64))
    assert len(set(rects)) == 1
    x1, y1, x2, y2 = rects[0]
    assert y2 <= 20 and 0 <= x1 and x2 <= 64          # above the box, inside the picture
    # the same boxes in a large picture do spread
    assert len(set(caption_boxes(boxes, captions, (480, 640)))) > 1


def test_draw_instances_keeps_its_signature_and_paints_captions_where_placed():
    image = np.zeros((120, 200, 3), np.uint8)
    boxes = np.array([[10, 40, 40, 90], [40, 40, 70, 90]], np.float32)
    masks = np.zeros((2, 120, 200), bool)
    captions = ["triangle 0.99", "triangle 0.98"]
    out = draw_instances(image, masks, boxes, [2, 2], captions)
    rects = caption_boxes(boxes, captions, image.shape[:2], 0.4)
    assert _overlap(*rects) == 0
    for x1, y1, x2, y2 in rects:
        assert (out[y1:y2, x1:x2] != 0).any()           # a caption background was painted there
    assert (draw_instances(image, masks, boxes, [2, 2], captions, show_labels=False)[:38] == 0).all()
