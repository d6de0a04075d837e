"""How long each NMS takes, measured honestly (notebook 03 §4; paper §3.4): the same candidates
for every method, medians of repeated calls, and sentences written from the numbers.

Five ways to remove duplicates, from most sequential to most parallel:

- ``standard, Python loop``: the greedy algorithm itself, written here as a plain loop
  (:func:`greedy_nms`): take the best remaining box, drop what overlaps it, repeat. Each turn
  needs the survivors of the previous one: a sequential dependency.
- ``standard, torchvision nms per class``: the same algorithm compiled (C++/CUDA), one call per class.
- ``standard, torchvision batched_nms``: one compiled call for all classes (what ``detect(nms="standard")`` runs).
- ``Fast NMS``: :func:`~yolact_edu.ops.nms.fast_nms`, a [C,n,n] IoU matrix and a column max, no loop.
- ``cross-class Fast NMS``: :func:`~yolact_edu.ops.nms.cross_class_fast_nms`, one [n,n] matrix for all classes.

The three "standard" methods keep exactly the same boxes (``tests/test_nms_timing.py``).

    >>> timing = time_nms_methods(cands.boxes, cands.scores, repeats=50, threads=1)
    >>> timing.rows(), timing.sentence()
"""
from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torchvision

from ..bench.timing import median_seconds, repeat_seconds
from ..ops.boxes import jaccard
from ..ops.nms import run_nms
from .nms_comparison import cpu_threads


def greedy_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float = 0.5) -> tuple[torch.Tensor, int]:
    """Standard (greedy) NMS for one class as a plain Python loop.

    boxes [n,4] point form; scores [n]. Returns (keep [m] int64 indices, best first, the same as
    ``torchvision.ops.nms``; the number of IoUs it computed). A box is dropped when its IoU with a
    kept, better box is > ``iou_threshold``. Each turn compares one kept box with the boxes still
    left, so the work shrinks as boxes are removed, but no turn can start before the previous ends.
    """
    remaining = scores.argsort(descending=True, stable=True)
    keep, ious = [], 0
    while remaining.numel():
        best, rest = remaining[0], remaining[1:]
        keep.append(best)
        overlap = jaccard(boxes[best][None], boxes[rest])[0]          # [len(rest)]
        ious += rest.numel()
        remaining = rest[overlap <= iou_threshold]
    return torch.stack(keep) if keep else remaining, ious


def _class_pairs(scores: torch.Tensor, conf_threshold: float):
    classes, candidates = torch.nonzero(scores > conf_threshold, as_tuple=True)
    return classes, candidates


def _pool(per_class: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], max_detections: int | None, like):
    """Concatenate per-class (keep, classes, scores), sort by score (stable), cap."""
    if not per_class:
        empty = like.new_zeros(0, dtype=torch.int64)
        return empty, empty.clone(), like.new_zeros(0)
    keep, classes, kept_scores = (torch.cat(parts) for parts in zip(*per_class))
    kept_scores, order = kept_scores.sort(descending=True, stable=True)
    if max_detections is not None:
        order, kept_scores = order[:max_detections], kept_scores[:max_detections]
    return keep[order], classes[order], kept_scores


def python_loop_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float = 0.5,
                    conf_threshold: float = 0.05, max_detections: int | None = 100):
    """Per-class standard NMS with :func:`greedy_nms`, on every (candidate, class) pair scoring above
    ``conf_threshold`` (as :func:`~yolact_edu.ops.nms.standard_nms`). boxes [n,4]; scores [C,n].
    Returns (keep [m], classes [m], scores [m]) by score, descending."""
    per_class = []
    for c in range(scores.shape[0]):
        candidates = torch.nonzero(scores[c] > conf_threshold).flatten()
        if candidates.numel():
            kept, _ = greedy_nms(boxes[candidates], scores[c, candidates], iou_threshold)
            kept = candidates[kept]
            per_class.append((kept, torch.full_like(kept, c), scores[c, kept]))
    return _pool(per_class, max_detections, scores)


def torchvision_per_class_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float = 0.5,
                              conf_threshold: float = 0.05, max_detections: int | None = 100):
    """Per-class standard NMS with one compiled ``torchvision.ops.nms`` call per class. Same
    contract and result as :func:`python_loop_nms`."""
    per_class = []
    for c in range(scores.shape[0]):
        candidates = torch.nonzero(scores[c] > conf_threshold).flatten()
        if candidates.numel():
            kept = candidates[torchvision.ops.nms(boxes[candidates].float(), scores[c, candidates].float(),
                                                  iou_threshold)]
            per_class.append((kept, torch.full_like(kept, c), scores[c, kept]))
    return _pool(per_class, max_detections, scores)


TIMED_METHODS: dict[str, Callable] = {
    "standard, Python loop":
        lambda b, s, t, k, conf, cap: python_loop_nms(b, s, t, conf, cap),
    "standard, torchvision nms per class":
        lambda b, s, t, k, conf, cap: torchvision_per_class_nms(b, s, t, conf, cap),
    "standard, torchvision batched_nms":
        lambda b, s, t, k, conf, cap: run_nms("standard", b, s, iou_threshold=t, conf_threshold=conf,
                                              max_detections=cap),
    "Fast NMS":
        lambda b, s, t, k, conf, cap: run_nms("fast", b, s, iou_threshold=t, nms_top_k=k, conf_threshold=conf,
                                              max_detections=cap),
    "cross-class Fast NMS":
        lambda b, s, t, k, conf, cap: run_nms("cross_class", b, s, iou_threshold=t, nms_top_k=k, conf_threshold=conf,
                                              max_detections=None),
}
"""name -> fn(boxes, scores, iou_threshold, nms_top_k, conf_threshold, max_detections) -> (keep, classes, scores),
each with ``detect``'s settings: the standard methods see only pairs above ``conf_threshold``, the
Fast NMS ones each class's (or all classes') ``nms_top_k`` best; cross-class Fast NMS has no cap."""

FAST_NMS = "Fast NMS"
FASTEST_STANDARD = "standard, torchvision batched_nms"


@dataclass
class NmsTiming:
    """Each method of :data:`TIMED_METHODS` run on the same candidates.

    seconds: method -> the timed calls (s); kept: method -> (candidate, class) pairs kept scoring
    above ``min_score``; device: where it ran, in words."""

    seconds: dict[str, list[float]]
    kept: dict[str, int]
    device: str
    num_candidates: int
    min_score: float

    @property
    def median_ms(self) -> dict[str, float]:
        return {name: statistics.median(times) * 1e3 for name, times in self.seconds.items()}

    def rows(self) -> list[dict]:
        """One row per method, fastest first: kept boxes, median ms, and its time relative to the fastest."""
        medians = self.median_ms
        best = min(medians.values())
        return [{"method": name, f"kept (score > {self.min_score:g})": self.kept[name],
                 "median ms": round(ms, 3), "x fastest": round(ms / best, 1), "timed calls": len(self.seconds[name])}
                for name, ms in sorted(medians.items(), key=lambda item: item[1])]

    def sentence(self) -> str:
        """The ranking in words, written from the medians (so it holds on any machine)."""
        return ranking_sentence(self.median_ms, f"on {self.num_candidates} candidates on {self.device}")


def device_label(device, threads: int | None) -> str:
    """"CPU (1 thread)" or the CUDA device's name."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    count = threads or torch.get_num_threads()
    return f"CPU ({count} thread{'s' if count != 1 else ''})"


def time_nms_methods(boxes: torch.Tensor, scores: torch.Tensor, methods: Sequence[str] = tuple(TIMED_METHODS),
                     iou_threshold: float = 0.5, nms_top_k: int = 200, conf_threshold: float = 0.05,
                     max_detections: int | None = 100, repeats: int = 30, threads: int | None = None) -> NmsTiming:
    """Time each method on the same boxes [n,4] and scores [C,n] (on their device), ``repeats``
    calls each after one warm-up; ``threads``: CPU threads while timing (:func:`cpu_threads`)."""
    seconds, kept = {}, {}
    for name in methods:
        def call(fn=TIMED_METHODS[name]):
            return fn(boxes, scores, iou_threshold, nms_top_k, conf_threshold, max_detections)

        _, _, kept_scores = call()
        kept[name] = int((kept_scores > conf_threshold).sum())
        with cpu_threads(threads):
            seconds[name] = repeat_seconds(call, repeats, device=boxes.device)
    return NmsTiming(seconds, kept, device_label(boxes.device, threads), int(boxes.shape[0]), conf_threshold)


def nms_time_vs_candidates(boxes: torch.Tensor, scores: torch.Tensor, counts: Sequence[int],
                           methods: Sequence[str] = tuple(TIMED_METHODS), iou_threshold: float = 0.5,
                           repeats: int = 5, threads: int | None = None) -> dict[str, list[float]]:
    """Median seconds of each method on the ``n`` best candidates (by best class score) for
    every n in ``counts``. No caps, so the cost shows: every method sees every candidate
    and class (nms_top_k = n, conf_threshold = 0, no max_detections). threads: see :func:`cpu_threads`."""
    order = scores.max(0).values.argsort(descending=True)
    medians: dict[str, list[float]] = {method: [] for method in methods}
    with cpu_threads(threads):
        for count in counts:
            chosen = order[:count]
            sub_boxes, sub_scores, n = boxes[chosen], scores[:, chosen], len(chosen)
            for method in methods:
                def call(b=sub_boxes, s=sub_scores, fn=TIMED_METHODS[method], n=n):
                    return fn(b, s, iou_threshold, n, 0.0, None)

                medians[method].append(median_seconds(call, repeats, device=boxes.device))
    return medians


def fastest_at(counts: Sequence[int], medians: Mapping[str, Sequence[float]], n: int | None = None,
               among: Sequence[str] | None = None) -> str:
    """The method with the smallest median at ``n`` candidates (default the largest measured n),
    among ``among`` (default every method of ``medians``)."""
    i = list(counts).index(n if n is not None else max(counts))
    return min(among or medians, key=lambda method: medians[method][i])


def pair_times(counts: Sequence[int], medians: Mapping[str, Sequence[float]], n: int | None = None,
               pair: Sequence[str] = (FAST_NMS, FASTEST_STANDARD)) -> str:
    """E.g. "at n = 4092: Fast NMS 3.3e+03 ms, standard, torchvision batched_nms 180 ms (medians)",
    the two methods' measured medians at ``n`` (default the largest measured n), in words."""
    n = n if n is not None else max(counts)
    i = list(counts).index(n)
    return f"at n = {n}: " + ", ".join(f"{name} {medians[name][i] * 1e3:.3g} ms" for name in pair) + " (medians)"


def ranking_sentence(median_ms: Mapping[str, float], where: str) -> str:
    """E.g. "On 33 candidates on CPU (1 thread), the fastest is X (0.04 ms); Fast NMS takes 0.12 ms,
    3.0x as long as torchvision's batched_nms (0.04 ms)." Every word that compares comes from the numbers."""
    ranked = sorted(median_ms, key=median_ms.get)
    best = ranked[0]
    text = f"{where[:1].upper()}{where[1:]}, the fastest is **{best}** ({median_ms[best]:.3g} ms)"
    text += f" and the slowest **{ranked[-1]}** ({median_ms[ranked[-1]]:.3g} ms)."
    if FAST_NMS in median_ms and FASTEST_STANDARD in median_ms:
        ratio = median_ms[FAST_NMS] / median_ms[FASTEST_STANDARD]
        relation = (f"{ratio:.1f}x as long as" if ratio >= 1.05 else
                    f"{1 / ratio:.1f}x faster than" if ratio <= 1 / 1.05 else "about as long as")
        text += (f" Fast NMS takes {median_ms[FAST_NMS]:.3g} ms, {relation} the compiled greedy loop of "
                 f"`batched_nms` ({median_ms[FASTEST_STANDARD]:.3g} ms).")
    return text


def curve_sentence(counts: Sequence[int], medians: Mapping[str, Sequence[float]], device: str) -> str:
    """Which method is fastest at each measured n, and how Fast NMS's time grows against batched_nms's,
    written from :func:`nms_time_vs_candidates`' medians."""
    winners: dict[str, list[int]] = {}
    for n in counts:
        winners.setdefault(fastest_at(counts, medians, n), []).append(int(n))
    parts = [f"**{name}** at n = {', '.join(map(str, ns))}" for name, ns in winners.items()]
    text = f"On {device}, the fastest method is {'; '.join(parts)}."
    if FAST_NMS in medians and FASTEST_STANDARD in medians and len(counts) > 1:
        growth = {name: medians[name][-1] / medians[name][0] for name in (FAST_NMS, FASTEST_STANDARD)}
        text += (f" From n = {counts[0]} to {counts[-1]} ({counts[-1] / counts[0]:.0f}x the candidates), "
                 f"Fast NMS's time grows {growth[FAST_NMS]:.0f}x, batched_nms's {growth[FASTEST_STANDARD]:.0f}x.")
    return text


def iou_work(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float = 0.5,
             count: int | None = None) -> dict[str, int]:
    """How many IoUs each algorithm computes on the ``count`` best candidates (by best class score, as
    :func:`nms_time_vs_candidates` takes them; default all) and every class, no caps: Fast NMS its full
    C·n² matrix, greedy NMS only a kept box against the boxes still left (:func:`greedy_nms`).
    Returns {"Fast NMS", "greedy", "n"}."""
    chosen = scores.max(0).values.argsort(descending=True)[:count]
    boxes, scores = boxes[chosen], scores[:, chosen]
    num_classes, n = scores.shape
    greedy = sum(greedy_nms(boxes, scores[c], iou_threshold)[1] for c in range(num_classes))
    return {"Fast NMS": num_classes * n * n, "greedy": int(greedy), "n": n}


def _count(value: int) -> str:
    return f"{value / 1e6:.1f} million" if value >= 1e6 else f"{value:,}"


def work_sentence(work: Mapping[str, int], num_classes: int) -> str:
    """The two IoU counts of :func:`iou_work` in words."""
    n = work["n"]
    ratio = work["Fast NMS"] / max(1, work["greedy"])
    return (f"At n = {n} with {num_classes} classes, Fast NMS computes {_count(work['Fast NMS'])} IoUs "
            f"(the whole {num_classes}×{n}×{n} matrix); the greedy loop computes {_count(work['greedy'])}, "
            f"{ratio:.0f}x fewer, because it never compares against a box it has already removed.")


# Standard NMS in blues/greens (dashed: sequential), Fast NMS in reds (solid: one matrix).
METHOD_STYLE = {"standard, Python loop": ("tab:blue", "--", "s"),
                "standard, torchvision nms per class": ("tab:cyan", "--", "v"),
                "standard, torchvision batched_nms": ("tab:green", "--", "^"),
                "Fast NMS": ("tab:red", "-", "o"),
                "cross-class Fast NMS": ("tab:orange", "-", "D")}


def plot_nms_timings(ax, counts: Sequence[int], medians: Mapping[str, Sequence[float]], device_name: str = ""):
    """Median milliseconds against the number of candidates, log-log, one line per method of
    :func:`nms_time_vs_candidates`. Returns ``ax``."""
    from matplotlib.ticker import NullFormatter

    for method, seconds in medians.items():
        color, linestyle, marker = METHOD_STYLE.get(method, (None, "-", "o"))
        ax.plot(counts, [s * 1e3 for s in seconds], marker=marker, linestyle=linestyle, color=color, label=method)
    ax.set_xscale("log")
    ax.set_xticks(list(counts), [str(c) for c in counts])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yscale("log")
    ax.set_xlabel("candidates n (each with every class score)")
    ax.set_ylabel("median time per call (ms)")
    ax.set_title("NMS time vs candidates" + (f" on {device_name}" if device_name else ""), fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))     # outside: the lines fill the plot
    return ax


__all__ = ["FAST_NMS", "FASTEST_STANDARD", "greedy_nms", "python_loop_nms", "torchvision_per_class_nms",
           "TIMED_METHODS", "NmsTiming", "device_label", "time_nms_methods", "nms_time_vs_candidates", "fastest_at",
           "pair_times", "ranking_sentence", "curve_sentence", "iou_work", "work_sentence", "METHOD_STYLE",
           "plot_nms_timings"]
