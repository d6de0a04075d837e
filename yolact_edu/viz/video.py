"""Segment a video file or a webcam stream frame by frame and write an annotated video.

    >>> stats = annotate_video(model, "street.mp4", "outputs/video/street_annotated.mp4")
    >>> stats["fps"]          # mean frames per second of the model + drawing

Each frame goes through the same one-line path as a still image (``model.predict`` ->
:class:`~yolact_edu.Detections` -> :func:`~yolact_edu.viz.draw.draw_detections`); the only
additions are decoding/encoding with OpenCV and a frames-per-second overlay, the number the
paper's "real-time" claim is about (33 FPS for YOLACT-550 on a Titan Xp).
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from ..files.atomic_write import create_temporary
from ..files.output_folder import OutputFolder
from .draw import draw_detections

# OpenCV's bundled FFmpeg writes these without extra codecs installed.
FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".avi": "MJPG"}
DEFAULT_FPS = 30.0
FPS_SMOOTHING = 0.9   # weight of the running FPS; per-frame times jitter too much to read


def is_webcam(source: str | int | os.PathLike) -> bool:
    """True for a webcam index: an int, or a string of digits as typed on the command line."""
    return isinstance(source, int) or (isinstance(source, str) and source.isdigit())


def open_source(source: str | int | os.PathLike) -> cv2.VideoCapture:
    """An opened ``cv2.VideoCapture`` for a video file or a webcam index (``0`` or ``"0"``).

    Raises FileNotFoundError for a missing file and ValueError for a source OpenCV cannot open.
    """
    if is_webcam(source):
        capture = cv2.VideoCapture(int(source))
        if not capture.isOpened():
            raise ValueError(f"cannot open webcam {int(source)} (no such camera, or it is in use)")
        return capture
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"cannot open video {path}: not a video OpenCV can decode")
    return capture


def fourcc_for(path: str | os.PathLike) -> str:
    """The codec written for ``path``'s suffix: mp4v for .mp4, MJPG for .avi."""
    suffix = Path(path).suffix.lower()
    if suffix not in FOURCC_BY_SUFFIX:
        raise ValueError(f"cannot write video with suffix {suffix!r} ({path}); "
                         f"use one of {', '.join(FOURCC_BY_SUFFIX)}")
    return FOURCC_BY_SUFFIX[suffix]


def open_writer(path: str | os.PathLike, fps: float, frame_size: tuple[int, int]) -> cv2.VideoWriter:
    """An opened ``cv2.VideoWriter`` for ``path``; frame_size is (width, height) in pixels."""
    codec = fourcc_for(path)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), float(fps), tuple(frame_size))
    if not writer.isOpened():
        raise ValueError(f"cannot open a {codec} video writer for {path}")
    return writer


def draw_fps(image: np.ndarray, fps: float) -> np.ndarray:
    """A copy of ``image`` (HxWx3 uint8) with "12.3 FPS" in white on a black box, top-left."""
    out = np.ascontiguousarray(image).copy()
    text = f"{fps:.1f} FPS"
    # Scale with the frame so the label is readable on 128 px thumbnails and on 4K alike.
    scale = max(0.35, min(out.shape[:2]) / 720)
    thickness = max(1, round(2 * scale))
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(2, round(4 * scale))
    cv2.rectangle(out, (0, 0), (width + 2 * pad, height + baseline + 2 * pad), (0, 0, 0), cv2.FILLED)
    cv2.putText(out, text, (pad, pad + height), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                thickness, cv2.LINE_AA)
    return out


def _output_fps(capture: cv2.VideoCapture, fallback: float | None) -> float:
    # Webcams and some containers report 0, NaN or absurd rates; a bad rate makes a broken file.
    reported = capture.get(cv2.CAP_PROP_FPS)
    if math.isfinite(reported) and 1.0 <= reported <= 240.0:
        return float(reported)
    return float(fallback or DEFAULT_FPS)


def check_output(source: str | int | os.PathLike, output: str | os.PathLike, *, force: bool = False,
                 protect: Iterable[str | os.PathLike] = ()) -> Path:
    """Claim ``output`` for the annotated video (see :class:`~yolact_edu.files.output_folder.OutputFolder`):
    :class:`~yolact_edu.files.output_folder.OutputConflict` if it is the source itself or one of the
    other inputs in ``protect`` (compared as files: another spelling or a hard link counts) or,
    without ``force``, a file that yolact_edu did not write. Returns the path; raises ValueError for
    a suffix it cannot write."""
    output = Path(output)
    fourcc_for(output)
    inputs = [*protect, *([] if is_webcam(source) else [Path(source)])]
    return OutputFolder(output.parent, force=force, protect=inputs).path(output.name)


def annotate_video(model, source: str | int | os.PathLike, output: str | os.PathLike, *,
                   score_threshold: float = 0.15, top_k: int | None = 15,
                   autocast: str | None = None, max_frames: int | None = None,
                   progress: bool = True, fps: float | None = None, force: bool = False,
                   **detect_kwargs) -> dict:
    """Run ``model`` on every frame of ``source`` and write the drawn detections to ``output``.

    model: any model of the package (anything with ``predict(image_rgb, autocast=)`` returning
        :class:`~yolact_edu.Detections`); detect_kwargs (e.g. YOLACT's ``nms="standard"``) go to
        ``predict`` as well.
    source: a video file, or a webcam index (int, or digits such as "0").
    output: .mp4 (mp4v) or .avi (MJPG); frames keep the source's size, the frame rate is the
        source's when it reports a sane one, else ``fps`` (default 30).
    max_frames: stop after this many frames (a webcam never ends on its own).

    Frames go to a temporary file beside ``output`` that takes its name at the end, so a
    crash never leaves half a video under the final name (one left by ``kill -9`` is removed by
    the next run, see :mod:`yolact_edu.files.atomic_write`). ``output`` is never the source, and a file
    there that yolact_edu did not write is replaced only with ``force`` (:func:`check_output`).
    Ctrl+C is a normal way to stop (a webcam): the frames done so far are kept as a valid video and the stats returned.

    Returns {"frames": int, "seconds": wall time, "fps": mean frames/s of model + drawing,
    "output": Path (None if interrupted before the first frame), "interrupted": bool}.
    """
    output = check_output(source, output, force=force)      # before any work
    capture = open_source(source)
    name = f"webcam {int(source)}" if is_webcam(source) else str(source)
    out_fps = _output_fps(capture, fps)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if not is_webcam(source) else 0
    total = count if count > 0 else None
    if total is not None and max_frames is not None:
        total = min(total, max_frames)
    partial = create_temporary(output)      # keeps the suffix: OpenCV picks the container from it
    writer, frames, busy, smoothed, interrupted = None, 0, 0.0, None, False
    bar = tqdm(total=total, unit="frame", desc=Path(name).name, disable=not progress)
    started = time.perf_counter()
    try:
        while max_frames is None or frames < max_frames:
            ok, frame_bgr = capture.read()
            if not ok:
                break
            tic = time.perf_counter()
            frame_rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
            detections = model.predict(frame_rgb, autocast=autocast, **detect_kwargs)
            drawn = draw_detections(frame_rgb, detections.cpu().filter(score_threshold, top_k))
            elapsed = max(time.perf_counter() - tic, 1e-9)
            busy += elapsed
            smoothed = 1 / elapsed if smoothed is None else (
                FPS_SMOOTHING * smoothed + (1 - FPS_SMOOTHING) / elapsed)
            if writer is None:
                height, width = frame_rgb.shape[:2]
                try:
                    writer = open_writer(partial, out_fps, (width, height))
                except ValueError as exc:
                    raise ValueError(f"cannot write the video {output}: {exc}") from None
            writer.write(cv2.cvtColor(draw_fps(drawn, smoothed), cv2.COLOR_RGB2BGR))
            frames += 1
            bar.set_postfix(fps=f"{smoothed:.1f}", refresh=False)
            bar.update()
    except KeyboardInterrupt:
        interrupted = True                  # keep what was written: fall through to the rename
    except BaseException:
        if writer is not None:
            writer.release()
        partial.unlink(missing_ok=True)
        raise
    finally:
        capture.release()
        bar.close()
    seconds = time.perf_counter() - started
    if writer is None:                      # nothing was decoded (or Ctrl+C came first)
        partial.unlink(missing_ok=True)
        if not interrupted:
            raise ValueError(f"no decodable frames in {name}")
    else:
        writer.release()                    # writes the container index: the file is now valid
        os.replace(partial, output)
    return {"frames": frames, "seconds": seconds, "fps": frames / busy if busy else 0.0,
            "output": output if writer is not None else None, "interrupted": interrupted}
