"""Video annotation on a tiny synthetic clip: real OpenCV decoding/encoding, a real (untrained)
yolact_tiny, real Ctrl+C handling."""
import argparse

import cv2
import numpy as np
import pytest

from yolact_edu.cli import video as cli_video
from yolact_edu.files.output_folder import LEDGER
from yolact_edu.viz.video import annotate_video, draw_fps, fourcc_for, open_source, open_writer

HEIGHT, WIDTH, FRAMES = 96, 128, 6


def written(folder) -> list[str]:
    """The files in ``folder`` besides the ledger of what yolact_edu wrote there."""
    return sorted(p.name for p in folder.iterdir() if p.name != LEDGER)


def read_frames(path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"{path} is not a readable video"
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """6 frames, 96x128, a light background with a square and a disc moving across it."""
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (WIDTH, HEIGHT))
    for i in range(FRAMES):
        frame = np.full((HEIGHT, WIDTH, 3), 200, np.uint8)
        cv2.rectangle(frame, (10 + 12 * i, 30), (40 + 12 * i, 60), (0, 0, 255), cv2.FILLED)
        cv2.circle(frame, (100 - 8 * i, 70), 14, (255, 128, 0), cv2.FILLED)
        writer.write(frame)
    writer.release()
    return path


def test_annotates_every_frame_at_source_size(tiny_model, clip, tmp_path):
    out = tmp_path / "nested" / "clip_annotated.mp4"
    stats = annotate_video(tiny_model, clip, out, progress=False)
    frames = read_frames(out)
    assert stats["frames"] == FRAMES == len(frames)
    assert stats["output"] == out and not stats["interrupted"]
    assert stats["fps"] > 0 and stats["seconds"] > 0
    assert all(frame.shape == (HEIGHT, WIDTH, 3) for frame in frames)
    assert cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)
    # the FPS box is black over the light background; the far corner keeps the background
    assert frames[0][:8, :30].mean() < 60
    assert frames[0][-8:, -8:].mean() > 150
    assert written(out.parent) == ["clip_annotated.mp4"]  # no temp left


def test_avi_output_and_max_frames(tiny_model, clip, tmp_path):
    out = tmp_path / "first3.avi"
    stats = annotate_video(tiny_model, str(clip), out, max_frames=3, progress=False)
    assert stats["frames"] == 3 == len(read_frames(out))


def test_draw_fps_marks_only_the_corner():
    image = np.full((HEIGHT, WIDTH, 3), 200, np.uint8)
    drawn = draw_fps(image, 12.3)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    assert (image == 200).all()                      # the input is not touched
    assert not np.array_equal(drawn[:20, :50], image[:20, :50])
    assert (drawn[:20, :50] > 128).any() and (drawn[:20, :50] < 50).any()   # white on black
    assert np.array_equal(drawn[40:, :], image[40:, :])


def test_bad_suffix_is_refused_before_any_work(tiny_model, tmp_path):
    with pytest.raises(ValueError, match=r"'\.gif'"):
        fourcc_for("out.gif")
    # the suffix is checked first, so even a missing source reports the suffix
    with pytest.raises(ValueError, match=r"'\.mkv'"):
        annotate_video(tiny_model, tmp_path / "missing.mp4", tmp_path / "out.mkv", progress=False)


def test_unopenable_sources_are_named(tiny_model, tmp_path):
    missing = tmp_path / "missing.mp4"
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        annotate_video(tiny_model, missing, tmp_path / "out.mp4", progress=False)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_text("not a video")
    with pytest.raises(ValueError, match="garbage.mp4"):
        annotate_video(tiny_model, garbage, tmp_path / "out.mp4", progress=False)
    with pytest.raises(ValueError, match="webcam 99"):
        open_source("99")
    assert not (tmp_path / "out.mp4").exists()


def test_writer_failure_names_the_path(tmp_path):
    with pytest.raises(ValueError, match="no_such_dir"):
        open_writer(tmp_path / "no_such_dir" / "out.mp4", 10.0, (WIDTH, HEIGHT))


class InterruptAt:
    """A model whose ``predict`` raises an exception on the n-th frame (1-based), as Ctrl+C or
    a crash would in the middle of a run."""

    def __init__(self, model, frame: int, exception: type[BaseException]):
        self.model, self.frame, self.exception, self.calls = model, frame, exception, 0

    def predict(self, image, **kwargs):
        self.calls += 1
        if self.calls == self.frame:
            raise self.exception("stopped")
        return self.model.predict(image, **kwargs)


def test_ctrl_c_keeps_a_valid_video_of_the_frames_done(tiny_model, clip, tmp_path):
    out = tmp_path / "partial.mp4"
    stats = annotate_video(InterruptAt(tiny_model, 3, KeyboardInterrupt), clip, out, progress=False)
    assert stats["interrupted"] and stats["frames"] == 2 and stats["output"] == out
    frames = read_frames(out)
    assert len(frames) == 2 and frames[0].shape == (HEIGHT, WIDTH, 3)
    assert written(tmp_path) == ["partial.mp4"]


def test_a_crash_leaves_no_file(tiny_model, clip, tmp_path):
    out = tmp_path / "crashed.mp4"
    with pytest.raises(RuntimeError, match="stopped"):
        annotate_video(InterruptAt(tiny_model, 3, RuntimeError), clip, out, progress=False)
    assert written(tmp_path) == []


def parse(argv):
    parser = argparse.ArgumentParser(prog="yolact-edu")
    cli_video.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_run_writes_the_default_output(clip, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = parse(["video", str(clip), "--max-frames", "2", "--device", "cpu"])
    assert cli_video.run(args) == 0
    out = tmp_path / "outputs" / "video" / "clip_annotated.mp4"
    assert len(read_frames(out)) == 2
    printed = capsys.readouterr().out
    assert "randomly initialised yolact_tiny" in printed and "2 frames" in printed


def test_cli_help_and_webcam_default_output(capsys):
    assert str(cli_video.default_output("0")) == "outputs/video/webcam0.mp4"
    assert str(cli_video.default_output("a/b/street.mov")) == "outputs/video/street_annotated.mp4"
    with pytest.raises(SystemExit):
        parse(["video", "--help"])
    help_text = capsys.readouterr().out
    assert "examples:" in help_text and "--max-frames" in help_text and "webcam" in help_text
