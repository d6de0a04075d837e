"""Notebook 02 §3 as an experiment: what two models' prototypes encode, measured on the same images.

The paper's prototypes (its Figure 5) split the image by position, follow instance edges and
foreground, and separate instances of one class. Whether a model learns such maps depends on what
its data demands. On the plain shapes set the class alone separates most objects; on the crowded
variant, instances of one class touch in crowds. :func:`role_strengths` takes, for each role, the
prototype that follows it most closely (the largest |r| of
:func:`~yolact_edu.lessons.prototypes.average_properties`); :func:`describe_role_comparison` says
which model's is stronger, in words made from the numbers, whatever they turn out to be.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .prototypes import CLASS_PREFIX, WEAK_R, average_properties

ROLES = ("x in box", "y in box", "edges", "foreground", "a class")
"""Roles compared: position inside the object's box, instance boundaries, the foreground, and
the best class detector ("a class": the strongest of the per-class properties)."""
CLEARLY = 1.25            # one model's |r| at least this many times the other's: "stronger"


def role_strengths(properties: dict[str, np.ndarray]) -> dict[str, tuple[int, float, str]]:
    """{role: (prototype index, r, property)} for each of :data:`ROLES`: the prototype with the
    largest |r| for that property (for "a class", over every class property; ``property`` names it)."""
    found = {}
    for role in ROLES:
        names = [n for n in properties if n.startswith(CLASS_PREFIX)] if role == "a class" else [role]
        best = max(((n, int(np.abs(properties[n]).argmax())) for n in names),
                   key=lambda pair: abs(float(properties[pair[0]][pair[1]])))
        found[role] = (best[1], float(properties[best[0]][best[1]]), best[0])
    return found


def compare_roles(models: dict, dataset, indices) -> dict[str, dict[str, np.ndarray]]:
    """{label: :func:`~yolact_edu.lessons.prototypes.average_properties`} of each YOLACT in ``models``
    ({label: model}) over the same ``dataset`` images ``indices``."""
    indices = list(indices)
    return {label: average_properties(model, dataset, indices) for label, model in models.items()}


def role_table(compared: dict[str, dict[str, np.ndarray]]) -> str:
    """Markdown: one row per role, for each model its best prototype and r."""
    strengths = {label: role_strengths(p) for label, p in compared.items()}
    header = "| role | " + " | ".join(strengths) + " |\n|---|" + "---|" * len(strengths)
    rows = []
    for role in ROLES:
        cells = []
        for found in strengths.values():
            index, r, name = found[role]
            cells.append(f"P{index}: r = {r:+.2f}" + (f" ({name[len(CLASS_PREFIX):]})" if role == "a class" else ""))
        rows.append(f"| {role} | " + " | ".join(cells) + " |")
    return "\n".join([header, *rows])


def describe_role_comparison(compared: dict[str, dict[str, np.ndarray]], weak: float = WEAK_R) -> str:
    """Markdown sentences from two models' :func:`compare_roles`: for each role which model's best
    prototype follows it more closely (|r| at least :data:`CLEARLY` times the other's) or that they are
    alike, which roles neither model encodes (|r| < ``weak``), and what each model's strongest role is."""
    if len(compared) != 2:
        raise ValueError(f"describe_role_comparison compares two models, got {len(compared)}")
    (a, pa), (b, pb) = compared.items()
    sa, sb = role_strengths(pa), role_strengths(pb)
    lines = []
    for role in ROLES:
        ra, rb = abs(sa[role][1]), abs(sb[role][1])
        if max(ra, rb) < weak:
            lines.append(f"- **{role}**: neither model has a prototype that follows it (|r| {ra:.2f} and {rb:.2f}, "
                         f"both below {weak}).")
        elif max(ra, rb) >= CLEARLY * min(ra, rb):
            strong, weak_one = (a, b) if ra > rb else (b, a)
            lines.append(f"- **{role}**: {strong}'s best prototype follows it more closely: |r| = {max(ra, rb):.2f} "
                         f"against {min(ra, rb):.2f} for {weak_one}.")
        else:
            lines.append(f"- **{role}**: about as closely in both (|r| = {ra:.2f} for {a}, {rb:.2f} for {b}).")
    for label, found in ((a, sa), (b, sb)):
        role = max(ROLES, key=lambda name: abs(found[name][1]))
        lines.append(f"- {label}'s strongest role is **{role}** (P{found[role][0]}, r = {found[role][1]:+.2f}).")
    return "\n".join(lines)


def draw_role_comparison(compared: dict[str, dict[str, np.ndarray]], protos: dict, image: np.ndarray) -> plt.Figure:
    """One row per model: the image, then for each role of :data:`ROLES` that model's best prototype
    on this image (``protos`` {label: [Hp,Wp,k]}) titled with its averaged r; and a last panel of
    |r| per role, the models side by side."""
    labels = list(compared)
    fig = plt.figure(figsize=(15, 2.7 * len(labels) + 3.0))
    grid = fig.add_gridspec(len(labels) + 1, len(ROLES) + 1, height_ratios=[1] * len(labels) + [1.1])
    for row, label in enumerate(labels):
        proto = protos[label]
        proto = proto.detach().float().cpu().numpy() if hasattr(proto, "detach") else np.asarray(proto)
        ax = fig.add_subplot(grid[row, 0])
        ax.imshow(image)
        ax.set_title(label, fontsize=10, fontweight="bold")
        ax.axis("off")
        for column, (role, (index, r, name)) in enumerate(role_strengths(compared[label]).items(), start=1):
            ax = fig.add_subplot(grid[row, column])
            ax.imshow(proto[..., index], cmap="viridis")
            what = name[len(CLASS_PREFIX):] if role == "a class" else role
            ax.set_title(f"{what}: P{index}, r = {r:+.2f}", fontsize=9)
            ax.axis("off")
    ax = fig.add_subplot(grid[len(labels), :])
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        found = role_strengths(compared[label])
        ax.bar(np.arange(len(ROLES)) + (i - (len(labels) - 1) / 2) * width,
               [abs(found[role][1]) for role in ROLES], width, label=label)
    ax.axhline(WEAK_R, color="gray", lw=0.8, ls="--")
    ax.text(-0.5, WEAK_R, f" |r| = {WEAK_R}", va="bottom", ha="left", fontsize=8, color="gray")
    ax.set_xticks(range(len(ROLES)), ROLES)
    ax.set_ylabel("|r| of the best prototype")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.suptitle("each model's best prototype per role on one image (r averaged over the val images)", fontsize=11)
    fig.tight_layout()
    return fig


__all__ = ["ROLES", "CLEARLY", "role_strengths", "compare_roles", "role_table", "describe_role_comparison",
           "draw_role_comparison"]
