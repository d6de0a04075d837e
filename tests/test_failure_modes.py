"""YOLACT's failure modes, measured: leakage and localisation failure on hand-made scenes whose
answers are known, then the summary, the chosen examples and the generated sentences."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from yolact_edu.detections import Detections  # noqa: E402
from yolact_edu.lessons import failure_modes as fm  # noqa: E402

H, W = 60, 80


def box_mask(x1, y1, x2, y2):
    mask = np.zeros((H, W), np.uint8)
    mask[y1:y2, x1:x2] = 1
    return mask


@pytest.fixture
def scene():
    """A and B: touching squares of class 0; host: a ring-like frame of class 1 with C (class 2)
    in its empty middle; E: a lone class-0 square far away."""
    a, b = box_mask(2, 2, 12, 12), box_mask(12, 2, 22, 12)
    host = box_mask(40, 20, 70, 50) - box_mask(45, 25, 65, 45)
    c = box_mask(50, 30, 58, 38)
    e = box_mask(2, 45, 10, 55)
    masks = np.stack([a, b, host, c, e])
    return {"masks": torch.from_numpy(masks), "labels": torch.tensor([0, 0, 1, 2, 0])}


def detections(masks, scores, labels):
    masks = torch.from_numpy(np.stack(masks).astype(bool))
    boxes = torch.tensor([[0, 0, W, H]] * len(masks), dtype=torch.float32)
    return Detections(boxes=boxes, scores=torch.tensor(scores), labels=torch.tensor(labels), masks=masks)


def test_crowd_sizes_follow_touching_objects_of_one_class():
    a, b, c = box_mask(0, 0, 10, 10), box_mask(10, 0, 20, 10), box_mask(20, 0, 30, 10)   # a chain
    far, other_class = box_mask(50, 40, 60, 50), box_mask(30, 0, 40, 10)                  # touches c
    corner = box_mask(10, 10, 14, 14)                                                      # a's corner only
    sizes = fm.crowd_sizes(np.stack([a, b, c, far, other_class, corner]), [0, 0, 0, 0, 1, 0])
    assert sizes.tolist() == [4, 4, 4, 1, 1, 4]


def test_each_detection_is_measured_against_the_other_instances(scene):
    m = scene["masks"].numpy()
    found = detections([m[0], m[0] | m[1], m[2] | m[3], m[4], box_mask(30, 0, 36, 6), m[1]],
                       [0.9, 0.8, 0.7, 0.6, 0.9, 0.1], [0, 0, 1, 0, 0, 0])
    records = fm.measure_image(found, scene, image_index=7)
    by_detection = {r.detection: r for r in records}
    assert set(by_detection) == {0, 1, 2, 3}        # 4: on nothing (a false positive); 5: below CONFIDENT
    exact = by_detection[0]
    assert (exact.own, exact.own_iou, exact.leak, exact.taken_in, exact.merged, exact.crowd) == (0, 1.0, 0.0, [], 1, 2)
    assert not exact.leaks and not exact.localisation_failure and exact.image == 7

    group = by_detection[1]                          # one mask for the touching pair: a localisation failure
    assert group.merged == 2 and group.localisation_failure and group.leaks
    assert group.leak == pytest.approx(0.5) and group.taken_in == [1 - group.own]

    nested = by_detection[2]                         # the frame's mask takes in the object in its middle
    assert nested.own == 2 and nested.taken_in == [3] and nested.merged == 1
    assert nested.leaks and not nested.localisation_failure
    assert nested.leak == pytest.approx(m[3].sum() / (m[2].sum() + m[3].sum()))
    assert by_detection[3].crowd == 1 and not by_detection[3].leaks


def test_summary_counts_by_crowd_and_picks_the_clearest_examples(scene):
    m = scene["masks"].numpy()
    found = detections([m[0], m[0] | m[1], m[2] | m[3], m[4]], [0.9, 0.8, 0.7, 0.6], [0, 0, 1, 0])
    records = fm.measure_image(found, scene)
    summary = fm.summarize(records)
    assert summary["detections"] == 4
    assert summary["leak_rate"] == pytest.approx(0.5) and summary["failure_rate"] == pytest.approx(0.25)
    assert summary["median_leak"] == pytest.approx(np.median([0.5, records[2].leak]))
    assert summary["by_crowd"]["1"] == {"detections": 2, "leak_rate": 0.5, "failure_rate": 0.0,
                                        "median_leak": pytest.approx(records[2].leak)}
    assert summary["by_crowd"]["2-4"]["failure_rate"] == pytest.approx(0.5)
    assert "5-9" not in summary["by_crowd"]
    assert fm.worst_case(records, "localisation").detection == 1
    assert fm.worst_case(records, "leakage").detection == 2          # took in another class (1 is a merge)
    assert fm.worst_case(records[:1], "leakage") is None
    with pytest.raises(ValueError, match="mode must be"):
        fm.worst_case(records, "blur")
    other = fm.measure_image(detections([m[0]], [0.95], [0]), scene)
    assert fm.counterpart(other, records[1]).detection == 0 and fm.counterpart(other, records[2]) is None


def test_the_sentences_follow_the_numbers():
    def summary(leak, fail, bins):
        return {"detections": 100, "leak_rate": leak, "median_leak": 0.3, "failure_rate": fail,
                "by_crowd": {b: {"detections": 25, "leak_rate": v, "failure_rate": v, "median_leak": 0.3}
                             for b, v in bins.items()}}

    text = fm.describe_failures({"YOLACT": summary(0.2, 0.1, {"1": 0.0, "5-9": 0.3}),
                                 "Mask R-CNN": summary(0.05, 0.1, {"1": 0.1, "5-9": 0.05})})
    assert "**YOLACT** leaks more often than Mask R-CNN: 20.0% against 5.0% (4.0× as often)" in text
    assert "Both models merge a crowd equally often (10.0%)" in text
    assert "leakage rises with the crowd (0% → 30%" in text
    assert "leakage does not rise steadily with the crowd (10% → 5%" in text
    flipped = fm.describe_failures({"YOLACT": summary(0.05, 0.0, {"1": 0.1}),
                                    "Mask R-CNN": summary(0.2, 0.3, {"1": 0.2})})
    assert "**Mask R-CNN** leaks more often than YOLACT" in flipped
    assert "**Mask R-CNN** merges a crowd more often than YOLACT: 30.0% against 0.0% (where the other never does)" \
        in flipped


def test_the_drawing_marks_the_mask_its_object_and_what_it_took_in(scene):
    m = scene["masks"].numpy()
    found = detections([m[2] | m[3]], [0.7], [1])
    record = fm.measure_image(found, scene)[0]
    image = np.full((H, W, 3), 200, np.uint8)
    fig, axes = plt.subplots(1, 2)
    fm.draw_case(axes[0], image, scene, found, record, "YOLACT")
    fm.draw_case(axes[1], image, scene, found, None, "Mask R-CNN")
    shown = axes[0].images[0].get_array()
    assert tuple(shown[29, 52]) == (255, 40, 40)          # C's outline, in red
    assert tuple(shown[19, 55]) == (255, 255, 255)        # the frame's outline, in white
    expected_iou = m[2].sum() / (m[2].sum() + m[3].sum())
    assert f"IoU with its object {expected_iou:.2f}" in axes[0].get_title()
    assert f"{1 - expected_iou:.0%} of the mask on other objects" in axes[0].get_title()
    assert "no confident detection" in axes[1].get_title()
    plt.close(fig)
    fig, axes = plt.subplots(1, 2)
    fm.plot_by_crowd({"YOLACT": fm.summarize([record])}, axes=axes)
    assert axes[0].lines[0].get_ydata().tolist() == [1.0]
    assert [t.get_text() for t in axes[0].texts] == ["n=1"]        # the point rests on one detection
    plt.close(fig)


def test_box_fit_is_measured_against_the_objects_box(scene):
    m = scene["masks"].numpy()
    found = detections([m[0], m[0]], [0.9, 0.8], [0, 0])
    found.boxes = torch.tensor([[2, 2, 12, 12], [2, 2, 22, 12]], dtype=torch.float32)   # exact; twice as wide
    exact, wide = fm.measure_image(found, scene)
    assert exact.box_iou == pytest.approx(1.0) and wide.box_iou == pytest.approx(0.5)


def make_record(leaks, box_iou, crowd, merged=1):
    return fm.DetectionRecord(image=0, detection=0, score=0.9, label=0, own=0, own_iou=0.8, leak=0.3 if leaks else 0.0,
                              taken_in=[1] if leaks else [], merged=merged, crowd=crowd, box_iou=box_iou)


def test_the_paper_check_agrees_or_disagrees_from_the_numbers():
    agreeing = [make_record(True, 0.5, 10, merged=3), make_record(True, 0.6, 6), make_record(False, 0.9, 1),
                make_record(False, 0.8, 1), make_record(False, 0.9, 12)]
    text = fm.describe_paper_agreement(agreeing, "YOLACT")
    assert "merges 0% of its detections in crowds of 1 and 50% in crowds of 10+: the measurement agrees" in text
    assert "100% of YOLACT's leaking detections have a box with IoU < 0.7" in text
    assert "and 0% of the others: the measurement agrees" in text
    disagreeing = [make_record(True, 0.9, 1, merged=2), make_record(False, 0.5, 12), make_record(False, 0.9, 12)]
    text = fm.describe_paper_agreement(disagreeing, "YOLACT")
    assert text.count("does not bear this out") == 2
    assert "cannot be checked" in fm.describe_paper_agreement([make_record(False, 0.9, 1)], "YOLACT")


def test_draw_worst_shows_the_same_object_for_each_model(scene):
    m = scene["masks"].numpy()

    class Model:
        def __init__(self, masks, scores, labels):
            self.found = detections(masks, scores, labels)

        def predict(self, image, score_threshold):
            return self.found

    class Dataset:
        def load_image(self, index):
            return np.zeros((H, W, 3), np.uint8)

        def load_target(self, index):
            return scene

    models = {"YOLACT": Model([m[2] | m[3], m[0]], [0.9, 0.8], [1, 0]), "Mask R-CNN": Model([m[2]], [0.9], [1])}
    records = {label: fm.measure_image(model.found, scene) for label, model in models.items()}
    fig = fm.draw_worst(models, Dataset(), records, "leakage", "YOLACT")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("YOLACT · leakage") and "on other objects" in titles[0]
    assert titles[1].startswith("Mask R-CNN · leakage") and "0% of the mask on other objects" in titles[1]
    # enlarged on the frame and what it took in (x 40..70, y 20..50), with a margin of at least 24 px,
    # inside the 80x60 image
    assert fig.axes[0].get_xlim() == (16.0, 80.0) and fig.axes[1].get_ylim() == (60.0, 0.0)
    assert fm.draw_worst(models, Dataset(), records, "localisation", "YOLACT") is None
    plt.close("all")


def test_largest_crowd_image_picks_the_biggest_group(scene):
    lone = {"masks": scene["masks"][4:], "labels": scene["labels"][4:]}

    class Dataset:
        def load_target(self, index):
            return scene if index == 2 else lone

    assert fm.largest_crowd_image(Dataset(), [0, 1, 2, 3]) == 2
    assert fm.largest_crowd_image(Dataset(), [3, 1]) == 3
    with pytest.raises(ValueError, match="at least one"):
        fm.largest_crowd_image(Dataset(), [])


def test_the_leakage_example_prefers_a_mask_that_took_in_another_class(scene):
    m = scene["masks"].numpy()
    found = detections([m[0] | m[1], m[2] | m[3]], [0.9, 0.7], [0, 1])     # a merged pair; the frame leaking
    records = fm.measure_image(found, scene)
    assert records[0].leak > records[1].leak                               # the merge leaks more ...
    assert fm.worst_case(records, "leakage").detection == 1                # ... but the leakage case is the frame
    assert fm.worst_case(records[:1], "leakage").detection == 0            # only merges: the merge it is


def test_crowd_member_opens_on_the_most_confident_detection_in_the_largest_crowd(scene):
    m = scene["masks"].numpy()
    found = detections([m[4], m[2], m[1], m[0]], [0.95, 0.9, 0.8, 0.7], [0, 1, 0, 0])   # sorted by score
    assert fm.crowd_member(found, scene) == 2            # B (crowd of 2), before A; E and the frame stand alone
    assert fm.crowd_member(found, scene, top_k=2) == 0   # only the first two offered: both alone, the first
    assert fm.crowd_member(detections([box_mask(30, 0, 34, 4)], [0.9], [0]), scene) is None
