"""Tables and plots of the CIFAR-10 study's results (used by benchmarks/cifar10_kd.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from spectralkd.runtime.runlog import read_jsonl

VARIANTS = ("none", "logit_kd", "spectralkd", "spectralkd_paper_rule", "feature_mse", "spectral_only")


def summary(runs: list[dict], variants=VARIANTS, keys=("best_top1", "last_top1"), wall: bool = True) -> list[dict]:
    """Per variant: mean and sample standard deviation over seeds of each of ``keys`` (and the mean wall time)."""
    import statistics

    out = []
    for variant in variants:
        rows = [r for r in runs if r["variant"] == variant]
        if not rows:
            continue
        agg = {"variant": variant, "seeds": [r["seed"] for r in rows]}
        for k in keys:
            vals = [r[k] for r in rows]
            agg[k] = {"mean": round(statistics.fmean(vals), 3),
                      "std": round(statistics.stdev(vals), 3) if len(vals) > 1 else None, "values": vals}
        if wall:
            agg["wall_seconds_mean"] = round(statistics.fmean(r["wall_seconds"] for r in rows), 1)
        out.append(agg)
    return out


def table(rows: list[dict]) -> str:
    """The summary as a Markdown table (mean ± sample std over seeds)."""
    fmt = lambda a: f"{a['mean']:.2f} ± {a['std']:.2f}" if a["std"] is not None else f"{a['mean']:.2f}"  # noqa: E731
    lines = ["| variant | seeds | best top-1 (%) | last top-1 (%) | per seed (best / last) | wall min/run |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        per = ", ".join(f"{b:.2f} / {l:.2f}" for b, l in zip(r["best_top1"]["values"], r["last_top1"]["values"]))
        lines.append(f"| {r['variant']} | {len(r['seeds'])} | {fmt(r['best_top1'])} | {fmt(r['last_top1'])} | {per} "
                     f"| {r['wall_seconds_mean'] / 60:.1f} |")
    return "\n".join(lines)


def dynamics_table(compare: dict) -> str:
    """Per student: correlation with the teacher's curve and mean distance per measure; the intensity distance on
    the layers that the spectral loss aligned in any student and on the others (the same layers for every student)."""
    aligned = sorted({layer["student_layer"] for s in compare["students"] for layer in s["layers"] if layer["aligned"]})
    measures = ("intensity", "rms", "entropy", "high_freq_ratio")
    head = ["student", *[f"{m} corr / dist" for m in measures], f"intensity dist, layers {aligned}", "other layers"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in compare["students"]:
        cells = [s["label"]] + [f"{s['measures'][m]['correlation']:.3f} / {s['measures'][m]['mean_distance']:.4f}"
                                for m in measures]
        for inside in (True, False):
            diffs = [layer["abs_diff"] for layer in s["layers"] if (layer["student_layer"] in aligned) == inside]
            cells.append(f"{sum(diffs) / len(diffs):.4f}" if diffs else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(runs: list[dict], log_of: Callable[[dict], Path], teacher_top1: float, path: Path) -> None:
    """Validation top-1 by epoch, one line per run (colour = variant), and each variant's final mean ± std."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = dict(zip(VARIANTS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for r in runs:
        log = read_jsonl(log_of(r))
        seen = r["seed"] != min(x["seed"] for x in runs if x["variant"] == r["variant"])
        ax.plot([x["epoch"] for x in log], [x["val_top1"] for x in log], "o-", color=colours[r["variant"]],
                alpha=0.8, lw=1.2, ms=3, label=None if seen else r["variant"])
    ax.set(xlabel="epoch", ylabel="val top-1 (%)", title="every run (seeds share a colour)")
    ax.set_xticks(range(1, max(r["epochs"] for r in runs) + 1))
    ax.legend(fontsize=8)
    rows = summary(runs)
    for i, row in enumerate(rows):
        vals = row["best_top1"]["values"]
        bx.errorbar([i], [row["best_top1"]["mean"]], yerr=[row["best_top1"]["std"] or 0], fmt="o",
                    color=colours[row["variant"]], capsize=4)
        bx.scatter([i] * len(vals), vals, s=12, color="k", zorder=3)
    bx.set_xticks(range(len(rows)), [r["variant"] for r in rows], rotation=25, ha="right", fontsize=8)
    bx.set(ylabel="best val top-1 (%)", title="mean ± sample std over seeds (dots: seeds)")
    fig.suptitle(f"CIFAR-10 students (DeiT 0.31M) distilled from the CaiT teacher ({teacher_top1:.2f} %), same budget")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
