"""The notebook widgets, driven as a learner would: set a control's ``.value``, then check the
state the widget computed and the picture it drew. Plus the library functions they wrap."""
import asyncio
import base64
import time

import numpy as np
import pytest
import torch

import yolact_edu as ye
from yolact_edu.bench.timing import STAGES, median_seconds, network_outputs, timed_predict
from yolact_edu.data import CocoDataset, make_shapes
from yolact_edu.data.images import sample_image
from yolact_edu.lessons.pretrained import quick_mode, tiny_shapes_model
from yolact_edu.ops.assemble import assemble_masks, crop_removes, mask_stages
from yolact_edu.training.trainer import Trainer
from yolact_edu.viz.draw import tile_grid
from yolact_edu.widgets import MaskAssemblyControls, PrototypeExplorer, TrainingMonitor


@pytest.fixture(scope="module")
def trained():
    return tiny_shapes_model()


@pytest.fixture(scope="module")
def picture():
    return sample_image()


@pytest.fixture(scope="module")
def explorer(trained, picture):
    return PrototypeExplorer(trained, picture)


# -- library functions the widgets wrap ---------------------------------------------------------
def test_mask_stages_match_inference_assembly():
    torch.manual_seed(0)
    proto = torch.rand(12, 10, 5)
    coefs = torch.rand(5) * 2 - 1
    box = torch.tensor([0.2, 0.1, 0.7, 0.8])
    stages = mask_stages(proto, coefs, box)
    assert torch.allclose(stages["running_sum"][-1], stages["logits"], atol=1e-6)
    assert torch.allclose(stages["contributions"].sum(0), proto @ coefs, atol=1e-5)
    expected = assemble_masks(proto, coefs[None], box[None])[0]
    assert torch.allclose(stages["cropped"], expected, atol=1e-6)
    assert torch.equal(stages["mask"], stages["cropped"] > 0.5)
    # outside the box nothing survives the crop; without the crop the sigmoid is kept
    assert stages["cropped"][0].abs().max() == 0 and stages["cropped"][:, 0].abs().max() == 0
    assert torch.equal(mask_stages(proto, coefs, box, crop_mask=False)["cropped"], stages["sigmoid"])


def test_switching_a_prototype_off_equals_a_zero_coefficient():
    torch.manual_seed(1)
    proto, coefs, box = torch.rand(8, 8, 4), torch.rand(4) * 2 - 1, torch.tensor([0.0, 0.0, 1.0, 1.0])
    enabled = torch.tensor([True, False, True, True])
    off = mask_stages(proto, coefs, box, enabled=enabled)
    zeroed = mask_stages(proto, coefs * torch.tensor([1.0, 0.0, 1.0, 1.0]), box)
    assert torch.allclose(off["logits"], zeroed["logits"])
    assert off["contributions"][1].abs().max() == 0
    with pytest.raises(ValueError, match="coefs must have shape"):
        mask_stages(proto, coefs[:3], box)
    with pytest.raises(ValueError, match="enabled must have shape"):
        mask_stages(proto, coefs, box, enabled=[True, False])


def test_tile_grid_keeps_values_and_leaves_nan_gaps():
    maps = np.arange(5 * 3 * 4, dtype=np.float32).reshape(5, 3, 4) - 30
    grid = tile_grid(maps, columns=2, gap=1)
    assert grid.shape == (3 * 3 + 2, 2 * 4 + 1)
    assert np.array_equal(grid[0:3, 0:4], maps[0]) and np.array_equal(grid[4:7, 5:9], maps[3])
    assert np.isnan(grid[3]).all() and np.isnan(grid[:, 4]).all()
    assert np.isnan(grid[8:, 5:]).all()                 # the unused sixth tile


def test_detect_with_fewer_prototypes_and_stage_timings(trained, picture):
    raw, _ = network_outputs(trained, picture)
    timings = {}
    full = trained.detect(raw, picture.shape[:2], score_threshold=0.3)[0]
    few = trained.detect(raw, picture.shape[:2], score_threshold=0.3, num_protos=4, timings=timings)[0]
    assert few.coefs.shape[1] == 4 and few.proto.shape[-1] == 4
    assert torch.equal(few.boxes, full.boxes)               # boxes and scores do not use the prototypes
    assert torch.allclose(few.coefs, full.coefs[:, :4])
    assert not torch.equal(few.masks, full.masks)
    assert set(timings) == {"decode + NMS", "assembly + crop", "upsample + threshold"}
    assert all(t > 0 for t in timings.values())
    with pytest.raises(ValueError, match="num_protos must be between 1 and 32"):
        trained.detect(raw, picture.shape[:2], num_protos=33)


def test_median_seconds_is_the_median():
    delays = iter([0.0, 0.05, 0.001, 0.002])              # first is the warm-up, then one slow outlier
    assert median_seconds(lambda: time.sleep(next(delays)), repeats=3, warmup=1) < 0.02
    with pytest.raises(ValueError, match="repeats"):
        median_seconds(lambda: None, repeats=0)


def test_timed_predict_matches_predict(trained, picture):
    detections, stages = timed_predict(trained, picture, score_threshold=0.3)
    assert list(stages) == list(STAGES) and all(t > 0 for t in stages.values())
    reference = trained.predict(picture, score_threshold=0.3)
    assert torch.equal(detections.boxes, reference.boxes) and torch.equal(detections.masks, reference.masks)


def test_shipped_model_is_trained(trained, picture, monkeypatch):
    assert trained.cfg.name == "yolact_tiny" and trained.cfg.num_classes == 6
    assert next(trained.parameters()).dtype == torch.float32 and not trained.training
    detections = trained.predict(picture, score_threshold=0.5)
    assert len(detections) >= 3                             # an untrained model scores ~1/7 everywhere
    monkeypatch.setenv("YOLACT_EDU_QUICK", "1")
    assert quick_mode()
    for off in ("", "0", "false"):
        monkeypatch.setenv("YOLACT_EDU_QUICK", off)
        assert not quick_mode()


# -- PrototypeExplorer ---------------------------------------------------------------------------
def _strongest_prototype(explorer) -> int:
    """The prototype whose contribution inside the chosen box is largest: moving it must matter."""
    contributions = explorer.stages["contributions"].abs()
    inside = explorer.stages["cropped"] > 0
    return int((contributions * inside).flatten(1).sum(1).argmax())


def test_explorer_starts_from_the_networks_mask(explorer):
    assert len(explorer.detections) >= 3
    first = explorer.detection.value
    assert np.array_equal(explorer.mask_image, explorer.detections.masks[first].numpy())
    assert explorer.mask_pixels == int(explorer.detections.masks[first].sum()) > 0
    assert np.allclose(explorer.coefs, explorer.detections.coefs[first].numpy())
    assert [s.value for s in explorer.coef_sliders] == pytest.approx(explorer.detections.coefs[first].tolist(),
                                                                       abs=0.006)
    assert len(explorer.figure.axes) == 10 and explorer.png.startswith(b"\x89PNG")
    assert f"mask {explorer.mask_pixels} px" in explorer.status.value
    png_output = explorer.figure_out.outputs[0]["data"]["image/png"]
    assert isinstance(png_output, str) and len(png_output) > 1000


def test_explorer_starts_where_the_crop_matters(explorer, trained, picture):
    """By default the first detection shown is, of the 3 most confident, the one whose mask the crop
    changes most; switching the crop off there grows the mask."""
    removed = crop_removes(explorer.proto.float(), explorer.detections.coefs.float(), explorer.detections.boxes_rel)
    first = explorer.detection.value
    assert explorer.detections.scores[first] >= explorer.detections.scores[2]
    assert removed[first] == removed[:3].max() > 0
    with_crop = explorer.mask_pixels
    explorer.crop.value = False
    assert explorer.mask_pixels > with_crop
    explorer.crop.value = True
    chosen = PrototypeExplorer(trained, picture, detection=0)
    assert chosen.detection.value == 0 and chosen.mask_pixels == int(chosen.detections.masks[0].sum())
    with pytest.raises(IndexError, match="not one of the"):
        PrototypeExplorer(trained, picture, detection=len(explorer.detections))


def test_explorer_coefficient_slider_changes_the_mask(explorer):
    explorer.reset_coefficients()
    before_pixels, before_png = explorer.mask_pixels, explorer.png
    i = _strongest_prototype(explorer)
    slider = explorer.coef_sliders[i]
    slider.value = -1.0 if explorer.coefs[i] > 0 else 1.0
    assert explorer.coefs[i] == pytest.approx(slider.value)
    assert explorer.mask_pixels != before_pixels and explorer.png != before_png
    # the figure's bar for prototype i shows the new value
    bars = explorer.figure.axes[1].patches
    assert bars[i].get_height() == pytest.approx(slider.value)
    explorer.reset_coefficients()
    assert explorer.mask_pixels == before_pixels


def test_explorer_toggle_threshold_and_crop(explorer):
    explorer.reset_coefficients()
    i = _strongest_prototype(explorer)
    explorer.proto_toggles[i].value = False
    assert not explorer.enabled[i] and explorer.coef_sliders[i].disabled
    zeroed = mask_stages(explorer.proto, torch.from_numpy(np.where(np.arange(explorer.k) == i, 0, explorer.coefs)),
                         explorer.detections.boxes_rel[0])
    assert torch.allclose(explorer.stages["logits"], zeroed["logits"], atol=1e-5)
    explorer.reset_coefficients()
    assert explorer.enabled.all()

    pixels = []
    for threshold in (0.2, 0.5, 0.8):
        explorer.mask_threshold.value = threshold
        pixels.append(explorer.mask_pixels)
    assert pixels[0] >= pixels[1] >= pixels[2] and pixels[0] > pixels[2]
    shown = explorer.figure.axes[-1].images[0].get_array()
    assert np.array_equal(np.asarray(shown), explorer.stages["mask"].numpy())
    explorer.mask_threshold.value = 0.5
    cropped = explorer.mask_pixels
    explorer.crop.value = False
    assert explorer.mask_pixels >= cropped
    assert torch.equal(explorer.stages["cropped"], explorer.stages["sigmoid"])
    explorer.crop.value = True


def test_explorer_picking_another_detection(explorer):
    explorer.detection.value = 2
    assert np.allclose(explorer.coefs, explorer.detections.coefs[2].numpy())
    assert np.array_equal(explorer.mask_image, explorer.detections.masks[2].numpy())
    assert explorer.status.value.startswith("detection 2 ")
    explorer.detection.value = 0


def test_explorer_switches_between_models_on_the_same_image(trained, picture):
    """The model picker shows another model's detections, prototypes and coefficients of the same
    image; a model with another k gets its own sliders, and coming back restores the first."""
    torch.manual_seed(0)
    other = ye.build_model(trained.cfg.replace(num_protos=8)).eval()
    both = PrototypeExplorer({"shapes": trained, "k8": other}, picture, score_threshold=0.0)
    assert both.model is trained and both.k == trained.cfg.num_protos
    first_png, first_coefs = both.png, both.coefs.copy()
    both.model_picker.value = "k8"
    assert both.model is other and both.k == 8 and len(both.coef_sliders) == 8 == len(both.grid.children)
    assert both.proto.shape[-1] == 8 and np.allclose(both.coefs, both.detections.coefs[both.detection.value].numpy())
    assert both.png != first_png
    both.coef_sliders[0].value = 0.9 if both.coefs[0] < 0 else -0.9      # the new sliders drive the picture
    assert both.coefs[0] == pytest.approx(both.coef_sliders[0].value)
    both.model_picker.value = "shapes"
    assert both.model is trained and len(both.coef_sliders) == trained.cfg.num_protos
    assert np.allclose(both.coefs, first_coefs)
    # a switch opens on the same object: the detection whose box overlaps the one shown before most
    same = PrototypeExplorer({"a": trained, "b": trained}, picture, detection=2)
    same.model_picker.value = "b"
    assert same.detection.value == 2 and np.allclose(same.coefs, same.detections.coefs[2].numpy())
    single = PrototypeExplorer(trained, picture)
    assert single.model_picker not in single.children[0].children     # no picker for one model


def test_explorer_without_detections_says_so(trained):
    blank = np.full((120, 160, 3), 127, np.uint8)
    explorer = PrototypeExplorer(trained, blank, score_threshold=0.999)
    assert len(explorer.detections) == 0
    assert "no detection" in explorer.status.value and explorer.coef_sliders[0].disabled


# -- MaskAssemblyControls --------------------------------------------------------------------
@pytest.fixture(scope="module")
def controls(trained, picture):
    return MaskAssemblyControls(trained, [picture, picture[::-1].copy()], repeats=1)


def test_controls_follow_detect(controls, trained, picture):
    controls.nms.value = "standard"
    controls.num_protos.value = 8
    controls.crop.value = False
    expected = trained.detect(network_outputs(trained, picture)[0], picture.shape[:2], **controls.settings())[0]
    assert torch.equal(controls.detections.boxes, expected.boxes)
    assert torch.equal(controls.detections.masks, expected.masks)
    assert controls.detections.coefs.shape[1] == 8
    assert list(controls.timings) == list(STAGES) and all(t > 0 for t in controls.timings.values())
    controls.nms.value, controls.num_protos.value, controls.crop.value = "fast", 32, True


def test_controls_thresholds_top_k_and_upsampling(controls):
    controls.score_threshold.value = 0.6
    assert len(controls.detections) > 0 and (controls.detections.scores > 0.6).all()
    controls.score_threshold.value = 0.05
    many = len(controls.detections)
    controls.top_k.value = 2
    assert len(controls.detections) == 2 < many
    assert f"{len(controls.detections)} detections" in controls.status.value
    bilinear = controls.detections.masks.clone()
    controls.interpolation.value = "nearest"
    assert not torch.equal(controls.detections.masks, bilinear)
    controls.mask_threshold.value = 0.9
    assert controls.detections.masks.sum() < bilinear.sum()
    png = controls.png
    controls.image.value = 1
    assert controls.png != png and controls.detections.image_size == controls.images[1].shape[:2]
    controls.interpolation.value, controls.mask_threshold.value, controls.top_k.value = "bilinear", 0.5, 20
    controls.score_threshold.value, controls.image.value = 0.3, 0


# -- TrainingMonitor ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    paths = make_shapes(tmp_path_factory.mktemp("shapes"), num_train=8, num_val=2, seed=5, min_size=128,
                        max_size=144)
    return CocoDataset(paths["train_annotations"], paths["train_images"], max_size=96, verbose=False)


def _trainer(dataset, out_dir, **kwargs):
    torch.manual_seed(0)
    cfg = ye.get_config("yolact_tiny").replace(num_classes=dataset.num_classes, class_names=dataset.class_names,
                                                max_size=96)
    return Trainer(ye.Yolact(cfg), dataset, out_dir=out_dir, batch_size=2, log_every=2,
                   checkpoint_every=10**9, **kwargs)


def test_monitor_runs_training_and_draws(small_set, tmp_path):
    trainer = _trainer(small_set, tmp_path / "run", max_iter=6)
    monitor = TrainingMonitor(trainer, [small_set.load_image(0)], refresh_every=4, redraw_seconds=0)
    assert not trainer.progress and monitor.on_event in trainer.callbacks
    summary = monitor.run()
    assert summary["iteration"] == 6 and not summary["stopped"]
    assert monitor.history["iteration"] == [2.0, 4.0, 6.0] and len(monitor.history["mask"]) == 3
    assert monitor.progress.value == 6 and monitor.progress.bar_style == "success"
    assert "6/6" in monitor.rate.value and "img/s" in monitor.rate.value
    assert monitor.sample_refreshes >= 3           # at start, at iteration 4, at the end
    assert bytes(monitor.loss_image.value)[:4] == bytes(monitor.samples_image.value)[:4] == b"\x89PNG"
    lines = monitor.loss_figure.axes[0].get_lines()
    assert [list(line.get_xdata()) for line in lines][0] == [2.0, 4.0, 6.0]
    assert monitor.stop_button.disabled and "finished at iteration 6" in monitor.status.value
    assert trainer.model.training                  # predictions during training left it in train mode
    # an untrusted notebook shows the loss plot
    assert base64.b64decode(monitor._repr_mimebundle_()["image/png"]) == bytes(monitor.loss_image.value)


def test_monitor_stop_button_ends_with_a_checkpoint(small_set, tmp_path):
    trainer = _trainer(small_set, tmp_path / "run", max_iter=200)
    monitor = TrainingMonitor(trainer, [], redraw_seconds=0)
    trainer.callbacks.append(lambda event, info: event == "log" and info["iteration"] >= 4 and monitor.stop())
    monitor.start()
    summary = monitor.wait()
    assert summary["stopped"] and summary["iteration"] == 4
    assert (tmp_path / "run" / "checkpoints").is_dir() and summary["checkpoint"].endswith("0000004.pth")
    assert "stopped at iteration 4" in monitor.status.value and monitor.progress.bar_style == "warning"


def _stop_during_step(trainer, monitor, step_number: int) -> None:
    """Press Stop while step ``step_number`` (1-based) runs, as a click lands mid-step."""
    real_step = trainer.step

    def step(images, targets):
        if trainer.iteration + 1 == step_number:
            monitor.stop()
        return real_step(images, targets)

    trainer.step = step


def test_monitor_stop_between_log_rows_leaves_bar_plot_and_status_agreeing(small_set, tmp_path):
    """log_every is 2 and Stop lands in step 3: the last step is still logged, so the loss plot,
    the progress bar, the status line, log.csv and the checkpoint all end at iteration 3."""
    trainer = _trainer(small_set, tmp_path / "run", max_iter=200)
    monitor = TrainingMonitor(trainer, [], redraw_seconds=0)
    _stop_during_step(trainer, monitor, 3)
    monitor.start()
    summary = asyncio.run(monitor.finished())
    assert summary["stopped"] and summary["iteration"] == 3
    assert monitor.history["iteration"] == [2.0, 3.0]
    assert list(monitor.loss_figure.axes[0].get_lines()[0].get_xdata()) == [2.0, 3.0]
    assert monitor.progress.value == 3 and monitor.rate.value.startswith("3/200 · ")
    assert monitor.status.value.startswith("stopped at iteration 3/200") and summary["checkpoint"].endswith(
        "0000003.pth")
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert rows[-1].split(",")[0] == "3"
    assert not monitor.running and monitor.stop_button.disabled


def test_monitor_stop_after_the_end_changes_nothing(small_set, tmp_path):
    """A click that arrives after training ended (it was queued behind the cells of Run All) must
    not leave the status on "stopping"."""
    trainer = _trainer(small_set, tmp_path / "run", max_iter=2)
    monitor = TrainingMonitor(trainer, [], redraw_seconds=0)
    assert monitor.stop_button.disabled                 # nothing to stop before start()
    monitor.start()
    monitor.wait()
    final = monitor.status.value
    monitor.stop()
    assert monitor.status.value == final and final.startswith("finished at iteration 2/2")
    assert not trainer._stop                           # a later run() is not stopped at once


def test_monitor_finished_refreshes_its_saved_display(small_set, tmp_path):
    """show() keeps a display handle; when training ends the kept output is replaced by the
    monitor's final state, whose picture is the finished loss plot."""
    trainer = _trainer(small_set, tmp_path / "run", max_iter=4)
    monitor = TrainingMonitor(trainer, [], redraw_seconds=0)
    before = monitor.snapshot_png()
    updates = []

    class Handle:
        def update(self, obj):
            updates.append(base64.b64decode(obj._repr_mimebundle_()["image/png"]))

    monitor._display = Handle()
    monitor.start()
    asyncio.run(monitor.finished())
    assert updates == [monitor.snapshot_png()] and updates[0] != before


def test_monitor_reports_a_training_error(small_set, tmp_path):
    trainer = _trainer(small_set, tmp_path / "run", max_iter=4)

    def explode(event, info):
        raise RuntimeError("boom at the first log row")

    monitor = TrainingMonitor(trainer, [])
    trainer.callbacks.append(explode)
    monitor.start()
    with pytest.raises(RuntimeError, match="boom"):
        monitor.wait()
    assert "training failed: RuntimeError" in monitor.status.value and monitor.progress.bar_style == "danger"


def test_trainer_predict_restores_frozen_batchnorm(small_set, tmp_path):
    trainer = _trainer(small_set, tmp_path / "run", max_iter=2, freeze_bn=True)
    trainer.predict(small_set.load_image(0))
    batchnorms = [m for m in trainer.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert trainer.model.training and batchnorms and not any(m.training for m in batchnorms)


def test_explorer_display_carries_its_current_picture(explorer):
    """A notebook opened untrusted shows the PNG in the widget's display bundle; it must be the
    picture the widget shows now, next to the live widget's own mimetype."""
    explorer.reset_coefficients()
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]) == explorer.png and explorer.png.startswith(b"\x89PNG")
    i = _strongest_prototype(explorer)
    explorer.coef_sliders[i].value = -1.0 if explorer.coefs[i] > 0 else 1.0
    moved = explorer._repr_mimebundle_()
    assert base64.b64decode(moved["image/png"]) == explorer.png != base64.b64decode(bundle["image/png"])
    explorer.reset_coefficients()


def test_widgets_without_a_picture_say_what_they_are(trained):
    from yolact_edu.widgets import UploadExplorer

    bundle = UploadExplorer(trained)._repr_mimebundle_()
    assert "image/png" not in bundle               # nothing uploaded: nothing to picture
    assert bundle["text/plain"].startswith("UploadExplorer: a live widget")


def test_crop_removes_counts_mask_cells_outside_the_box():
    proto = torch.zeros(10, 10, 1)
    proto[0:2, 0:3, 0] = 10.0           # 6 cells far outside the box
    proto[5:8, 5:8, 0] = 10.0           # 9 cells inside it
    coefs = torch.tensor([[1.0], [-1.0]])          # the second detection's mask is empty
    boxes = torch.tensor([[0.45, 0.45, 0.85, 0.85]] * 2)
    assert crop_removes(proto, coefs, boxes).tolist() == [6, 0]


def test_cost_explorer_shows_the_measured_cost_at_the_chosen_count():
    from yolact_edu.widgets import CostExplorer

    curves = {"YOLACT": {"counts": [1, 10, 100], "median_ms": [20.0, 22.0, 40.0]},
              "Mask R-CNN": {"counts": [1, 10, 100], "median_ms": [30.0, 35.0, 90.0]}}
    explorer = CostExplorer(curves, "test machine")
    assert explorer.count == 10 and explorer.at_count == {"YOLACT": 22.0, "Mask R-CNN": 35.0}
    before = explorer.png
    explorer.slider.value = 100
    assert explorer.at_count == {"YOLACT": 40.0, "Mask R-CNN": 90.0}
    assert explorer.extra == {"YOLACT": 20.0, "Mask R-CNN": 60.0}
    assert "N = 100: YOLACT 40.0 ms" in explorer.summary.value
    assert "(YOLACT takes 0.44x its time)" in explorer.summary.value
    assert explorer.png != before and explorer.png.startswith(b"\x89PNG")
    assert base64.b64decode(explorer._repr_mimebundle_()["image/png"]) == explorer.png
    with pytest.raises(ValueError, match="were not measured"):
        explorer.show(50)
    with pytest.raises(ValueError, match="different instance counts"):
        CostExplorer({"a": curves["YOLACT"], "b": {"counts": [1, 5], "median_ms": [1.0, 2.0]}})


def test_method_picker_shows_the_chosen_methods_picture():
    from matplotlib.figure import Figure

    from yolact_edu.lessons.landscape import family_demos as fd
    from yolact_edu.widgets import MethodPicker

    scene = fd.toy_scene()
    demos = fd.family_demos(scene)
    picker = MethodPicker(lambda name: fd.plot_family_gallery(scene, {name: demos[name]}), list(demos))
    first = picker.png
    assert first.startswith(b"\x89PNG") and picker.draws == 1
    picker.buttons.value = list(demos)[-1]
    assert picker.value == list(demos)[-1] and picker.draws == 2 and picker.png != first
    assert base64.b64decode(picker._repr_mimebundle_()["image/png"]) == picker.png
    with pytest.raises(ValueError, match="not one of the options"):
        MethodPicker(lambda name: Figure(), ["a"], value="b")


def test_monitor_stopped_at_its_first_log_row_still_draws_its_losses(small_set, tmp_path):
    """Stop during the first logged step: one log row, and the loss plot must still show it
    (a line through one point draws nothing), on whole-iteration ticks."""
    trainer = _trainer(small_set, tmp_path / "run", max_iter=200)
    monitor = TrainingMonitor(trainer, [], redraw_seconds=0)
    _stop_during_step(trainer, monitor, 2)                   # log_every is 2: the first row
    monitor.start()
    summary = monitor.wait()
    assert summary["iteration"] == 2 and monitor.history["iteration"] == [2.0]
    ax = monitor.loss_figure.axes[0]
    assert all(line.get_marker() == "o" for line in ax.get_lines())
    assert ax.get_xlim() == (1.0, 3.0)
    assert all(float(tick).is_integer() for tick in ax.get_xticks())


def test_prototype_slider_says_it_truncates_the_models_k(controls, trained):
    k = trained.cfg.num_protos
    assert controls.num_protos.max == k and f"of {k}" in controls.num_protos.description
    note = controls.num_protos_note.value
    assert f"trained with {k} prototypes" in note and "keeps the first k" in note
    controls.num_protos.value = 4
    assert f"first 4 of {k} prototypes" in controls.status.value
    controls.num_protos.value = k


def test_controls_pick_between_models_each_with_its_own_k(trained, picture):
    torch.manual_seed(0)
    eight = ye.Yolact(trained.cfg.replace(num_protos=8)).eval()
    both = MaskAssemblyControls({"shipped": trained, "k = 8": eight}, [picture], repeats=1)
    assert both.model is trained and both.model_picker in both.children[0].children[0].children
    shipped = both.detections
    both.num_protos.value = 5
    both.model_picker.value = "k = 8"
    assert both.model is eight and both.num_protos.max == both.num_protos.value == 8
    assert "of 8" in both.num_protos.description and "trained with 8" in both.num_protos_note.value
    expected = eight.detect(network_outputs(eight, picture)[0], picture.shape[:2], **both.settings())[0]
    assert torch.equal(both.detections.boxes, expected.boxes) and both.status.value.startswith("k = 8: ")
    both.model_picker.value = "shipped"
    assert torch.equal(both.detections.boxes, shipped.boxes) and both.num_protos.value == trained.cfg.num_protos
    # one model: no picker shown
    single = MaskAssemblyControls(trained, [picture], repeats=1)
    assert single.model_picker not in single.children[0].children[0].children
