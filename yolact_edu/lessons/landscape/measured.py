"""This machine's latency beside the published GPU figures (notebook 05): medians of the network
alone and of the whole ``predict``, as a table and as bars next to :mod:`.published`'s rows."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...bench.timing import machine_name, median_seconds
from .published import REAL_TIME_FPS


@dataclass(frozen=True)
class LatencyMeasurement:
    """A latency measured here: medians in ms of the network alone (preprocessed tensor -> raw
    outputs) and of the whole ``predict`` (uint8 image -> Detections)."""

    name: str
    weights: str              # e.g. "trained on shapes" or "untrained (random)"
    input_size: int
    device: str
    network_ms: float
    predict_ms: float
    detections: int           # how many detections the timed predict returned
    repeats: int

    @property
    def fps(self) -> float:
        return 1000.0 / self.predict_ms


def measure_latency(model, image: np.ndarray, name: str, weights: str, repeats: int = 5,
                    warmup: int = 1) -> LatencyMeasurement:
    """Median latency of ``model`` on one HxWx3 uint8 image, with
    :func:`yolact_edu.bench.timing.median_seconds` (no gradients, eval mode, the model's device):
    ``warmup`` untimed network runs, then ``repeats`` timed network runs and ``repeats`` timed
    predict runs."""
    device = next(model.parameters()).device
    model.eval()
    last: list = []
    with torch.no_grad():
        x = model.preprocess(image).to(device)
        network_s = median_seconds(lambda: model(x), repeats=repeats, warmup=warmup, device=device)
        # The network is warm by now; the first predict only adds post-processing set-up, so no warm-up
        # run is spent on it (that matters for a 550 px model on a 2-core CPU).
        predict_s = median_seconds(lambda: last.append(model.predict(image)), repeats=repeats, warmup=0,
                                   device=device)
    return LatencyMeasurement(name=name, weights=weights, input_size=model.cfg.max_size,
                              device=machine_name(device), network_ms=1000 * network_s,
                              predict_ms=1000 * predict_s, detections=len(last[-1]), repeats=repeats)


def measurements_table(measurements) -> list[dict]:
    """Rows for :func:`~yolact_edu.lessons.tables.markdown_table` / :func:`~yolact_edu.lessons.tables.html_table`."""
    return [{"model": m.name, "weights": m.weights, "input": f"{m.input_size}x{m.input_size}",
             "device": m.device, "network ms": f"{m.network_ms:.1f}", "predict ms": f"{m.predict_ms:.1f}",
             "predict FPS": f"{m.fps:.2f}", "detections": m.detections, "repeats": m.repeats}
            for m in measurements]


def plot_speed_beside(published, measurements, ax=None):
    """Horizontal bars of ms per image (log scale): published GPU rows in blue/orange, this
    machine's ``predict`` medians hatched in grey, labelled with their device. Returns the Axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 0.45 * (len(published) + len(measurements)) + 1.2))
    labels, values, colors, hatches = [], [], [], []
    for r in published:
        labels.append(f"{r.label} @{r.input_size} — {r.gpu}, {r.runtime}")
        values.append(r.speed_ms)
        colors.append("tab:orange" if r.tensorrt else "tab:blue")
        hatches.append("")
    for m in measurements:
        labels.append(f"{m.name} @{m.input_size}, {m.weights} — THIS MACHINE: {m.device}")
        values.append(m.predict_ms)
        colors.append("lightgray")
        hatches.append("//")
    y = np.arange(len(values))[::-1]
    bars = ax.barh(y, values, color=colors, edgecolor="black", linewidth=0.5)
    for bar, hatch, value in zip(bars, hatches, values):
        bar.set_hatch(hatch)
        ax.annotate(f"{value:.1f} ms", (value, bar.get_y() + bar.get_height() / 2), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(min(values) / 2, max(values) * 4)
    ax.axvline(1000 / REAL_TIME_FPS, ls="--", lw=0.8, color="tab:red")
    ax.set_xlabel("ms per image (log scale; dashed = 33 ms, i.e. 30 FPS)")
    ax.set_title("Published GPU latencies vs this machine's CPU (a different universe: compare bars "
                 "only within a colour)", fontsize=10)
    return ax


def detections_sentence(trained: LatencyMeasurement, untrained: LatencyMeasurement, threshold: float) -> str:
    """What the *detections* column says about an untrained model's "predict" time, generated
    from the counts (post-processing work grows with the detections kept above ``threshold``)."""
    counts = (f"`{untrained.name}` ({untrained.weights}) kept {untrained.detections} detections above the "
              f"{threshold:g} score threshold, `{trained.name}` ({trained.weights}) {trained.detections}")
    if untrained.detections < trained.detections:
        return (f"{counts}: with fewer detections to assemble, crop and paste, `{untrained.name}`'s \"predict\" "
                "time leaves out part of the post-processing a trained model would do.")
    return (f"{counts}: `{untrained.name}`'s \"predict\" time includes at least as much post-processing as "
            f"`{trained.name}`'s, though its detections mean nothing.")


def times_slower(measured: LatencyMeasurement, published) -> float:
    """How many times longer ``measured``'s whole predict takes here than the published GPU time of
    ``published`` (a :class:`~.published.PublishedResult`, which includes post-processing)."""
    return measured.predict_ms / published.speed_ms


__all__ = ["LatencyMeasurement", "measure_latency", "measurements_table", "plot_speed_beside", "detections_sentence",
           "times_slower"]
