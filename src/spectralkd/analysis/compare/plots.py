"""PNG plots of a comparison: measures against relative depth, and channel spectra of aligned layers."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from spectralkd.analysis.compare.measures import MEASURES, curve, depth_matched  # noqa: E402
from spectralkd.spectral.similarity import relative_depth  # noqa: E402

TITLES = {"intensity": "frequency intensity L(X)", "rms": "RMS", "entropy": "channel entropy [bits]",
          "high_freq_ratio": "spatial high-frequency ratio"}
SHORT = {"intensity": "intensity", "rms": "RMS", "entropy": "entropy", "high_freq_ratio": "high-freq. ratio"}


def literal(text: str) -> str:
    """``text`` drawn as written: ``$`` would start matplotlib mathtext (and can fail to parse), so it is escaped."""
    return str(text).replace("$", r"\$")


def student_colour(k: int) -> str:
    """The colour of student ``k`` (0-based) in every plot of a comparison; the teacher is black."""
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return cycle[k % len(cycle)]


def measures_plot(analyses: Sequence[dict], labels: Sequence[str], path: Path,
                  pairs: Sequence[dict | None] | None = None) -> Path:
    """2×2 overlay of the per-layer measures against relative depth; aligned student layers drawn filled."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5))
    pairs = list(pairs or [None] * len(analyses))
    for ax, name in zip(axes.flat, MEASURES):
        for k, (analysis, label, p) in enumerate(zip(analyses, labels, pairs)):
            values = curve(analysis, name)
            x = relative_depth(len(values))
            style = (dict(color="black", lw=2.2, marker="o", ms=4) if k == 0
                     else dict(color=student_colour(k - 1), lw=1.4, marker="s", ms=4))
            line, = ax.plot(x, values, label=f"{literal(label)} ({len(values)} layers)", **style)
            if p and p.get("student_ids") and k > 0:
                ids = [int(layer["index"]) for layer in analysis["layers"]]
                sel = [i for i, idx in enumerate(ids) if idx in set(map(int, p["student_ids"]))]
                ax.plot(x[sel], np.asarray(values)[sel], "o", ms=8, mfc="none", color=line.get_color())
        ax.set_title(TITLES[name], fontsize=10)
        ax.set_xlabel("relative depth")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("teacher (black) and students by relative depth; circled: aligned by a distillation loss", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def spectra_plot(analyses: Sequence[dict], labels: Sequence[str], path: Path,
                 pairs: Sequence[dict | None] | None = None, max_panels: int = 12) -> Path:
    """Channel spectra of aligned layers side by side: one panel per teacher layer, its student counterparts overlaid.

    Counterparts come from each student's distillation pairs when known, else the layer at the nearest relative depth.
    """
    teacher = analyses[0]
    t_ids = [int(layer["index"]) for layer in teacher["layers"]]
    pairs = list(pairs or [None] * len(analyses))
    matches: list[dict[int, int]] = []  # per student: teacher layer -> student layer
    for analysis, p in zip(analyses[1:], pairs[1:]):
        s_ids = [int(layer["index"]) for layer in analysis["layers"]]
        if p and p.get("student_ids"):
            matches.append({int(t): int(s) for s, t in zip(p["student_ids"], p["teacher_ids"])})
        else:
            matches.append({t: s for s, t in depth_matched(s_ids, t_ids)})
    shown = sorted({t for m in matches for t in m})[:max_panels]
    cols = min(4, max(1, len(shown)))
    rows = max(1, math.ceil(len(shown) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, t in zip(axes.flat, shown):
        spec = teacher["spectra"].get(str(t))
        if spec:
            ax.plot(np.arange(len(spec)) / (2 * len(spec)), spec, color="black", lw=2, label=f"{literal(labels[0])} L{t}")
        for k, (label, analysis, m) in enumerate(zip(labels[1:], analyses[1:], matches)):
            if t in m and analysis["spectra"].get(str(m[t])):
                s = analysis["spectra"][str(m[t])]
                ax.plot(np.arange(len(s)) / (2 * len(s)), s, lw=1.2, color=student_colour(k),
                        label=f"{literal(label)} L{m[t]}")
        ax.set_yscale("log")
        ax.set_title(f"teacher layer {t}", fontsize=9)
        ax.set_xlabel("channel frequency k/C", fontsize=8)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def dynamics_plot(teacher: dict, teacher_label: str, students: Sequence[tuple[str, list[dict], dict]],
                  path: Path) -> Path:
    """Per student (label, dynamics records, its compare.json ``dynamics`` entry) two rows: each measure against
    relative depth with one line per recorded epoch (coloured by epoch, the teacher in black), then each measure's
    relative distance and correlation to the teacher's curve against the epoch."""
    rows = 2 * len(students)
    fig, axes = plt.subplots(rows, 3, figsize=(13, 3.1 * rows), squeeze=False, layout="constrained")
    cmap = plt.get_cmap("viridis")
    for k, (label, records, summary) in enumerate(students):
        panels = list(axes[2 * k]) + list(axes[2 * k + 1])
        epochs = [r["epoch"] for r in records]
        norm = matplotlib.colors.Normalize(vmin=min(epochs), vmax=max(max(epochs), min(epochs) + 1))
        for ax, name in zip(panels, MEASURES):
            for r in records:
                values = [x[name] for x in r["layers"]]
                ax.plot(relative_depth(len(values)), values, color=cmap(norm(r["epoch"])), lw=1.1, marker=".", ms=3)
            t = curve(teacher, name)
            ax.plot(relative_depth(len(t)), t, color="black", lw=2.2, marker="o", ms=3,
                    label=literal(teacher_label) if "teacher" in teacher_label.lower()
                    else f"{literal(teacher_label)} (teacher)")
            ax.set_title(f"{literal(label)}: {TITLES[name]}", fontsize=9)
            ax.set_xlabel("relative depth", fontsize=8)
        panels[0].legend(fontsize=7)
        rows_by_epoch = [e for e in summary["epochs"] if "measures" in e]
        for ax, key, title in ((panels[4], "relative_distance", "distance to teacher / teacher mean"),
                               (panels[5], "correlation", "correlation with teacher")):
            for name in MEASURES:
                ys = [e["measures"][name][key] for e in rows_by_epoch]
                ax.plot([e["epoch"] for e in rows_by_epoch], [math.nan if y is None else y for y in ys],
                        marker="o", ms=3, lw=1.2, label=SHORT[name])
            ax.set_title(f"{literal(label)}: {title}", fontsize=9)
            ax.set_xlabel("epoch", fontsize=8)
        panels[4].legend(fontsize=6)
        bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=panels[:4], label="epoch",
                           shrink=0.8)
        bar.locator = matplotlib.ticker.MaxNLocator(integer=True)
        bar.update_ticks()
    fig.suptitle("students over training (coloured by epoch; teacher in black)", fontsize=10)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
