"""PNG plots of an analysis (matplotlib, Agg backend): intensity, entropy, channel spectra grid, spatial spectra."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from spectralkd.analysis.outputs import unstructured_intensity  # noqa: E402
from spectralkd.analysis.measures import AnalysisResult  # noqa: E402


def _save(fig, path: Path) -> Path:
    for ax in fig.axes:
        if ax.get_xlabel() == "layer":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _band(ax, result: AnalysisResult, measure: str, color: str) -> bool:
    """Shade the bootstrap interval of ``measure`` around its curve; False (nothing drawn) when there is none."""
    cis = [result.interval(i, measure) for i in range(len(result.layers))]
    if not cis or any(ci is None for ci in cis):
        return False
    level = round(100 * result.bootstrap.get("level", 0.95))
    ax.fill_between([m.index for m in result.layers], [lo for lo, _ in cis], [hi for _, hi in cis], color=color,
                    alpha=0.25, lw=0, label=f"{level} % bootstrap interval over images")
    return True


def _mark_pairs(ax, teacher_ids, ids):
    for t in teacher_ids or []:
        if t in ids:
            ax.axvline(t, color="tab:orange", alpha=0.25, lw=6)


def intensity_plot(result: AnalysisResult, path: Path, teacher_ids=None) -> Path:
    ids = [m.index for m in result.layers]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    _mark_pairs(ax, teacher_ids, ids)
    _band(ax, result, "intensity", "tab:blue")
    ax.plot(ids, [m.intensity for m in result.layers], "o-", color="tab:blue", label="frequency intensity L(X)")
    ax.plot(ids, [unstructured_intensity(m.rms, m.shape[0]) for m in result.layers], "k--", lw=1,
            label="0.886·RMS/√C (channels without structure)")
    ax.set_xlabel("layer")
    ax.set_ylabel("mean |FFT over channels| / C")
    title = f"{result.model}: intensity by layer ({result.num_images} images)"
    ax.set_title(title + ("; shaded = recommended teacher layers" if teacher_ids else ""), fontsize=9)
    ax.legend(fontsize=8)
    return _save(fig, path)


def entropy_plot(result: AnalysisResult, path: Path) -> Path:
    ids = [m.index for m in result.layers]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    if _band(ax, result, "entropy", "tab:green"):
        ax.legend(fontsize=8)
    ax.plot(ids, [m.entropy for m in result.layers], "s-", color="tab:green")
    bins = result.settings.get("bins", 100)
    ax.set_xlabel("layer")
    ax.set_ylabel("entropy [bits]")
    ax.set_title(f"channel entropy by layer ({bins} bins over the global range "
                 f"{result.value_range[0]:.3g}..{result.value_range[1]:.3g})", fontsize=9)
    return _save(fig, path)


def spectra_grid(result: AnalysisResult, path: Path, columns: int = 6) -> Path:
    n = len(result.layers)
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 1.9 * rows), squeeze=False)
    for ax, m in zip(axes.flat, result.layers):
        c = m.shape[0]
        half = m.spectrum[: c // 2]
        ax.plot(np.arange(len(half)) / c, half, lw=0.8)
        ax.set_title(f"layer {m.index} (C={c})", fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.supxlabel("normalised channel frequency k/C", fontsize=9)
    fig.supylabel("mean |FFT_k| / C", fontsize=9)
    return _save(fig, path)


def spatial_plot(result: AnalysisResult, path: Path) -> Path:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    cmap = plt.get_cmap("viridis")
    n = len(result.layers)
    for i, m in enumerate(result.layers):
        f, p = np.asarray(m.radial_frequency), np.asarray(m.radial_power)
        keep = (f > 0) & (p > 0)
        if keep.any():
            ax1.semilogy(f[keep], p[keep], color=cmap(i / max(n - 1, 1)), lw=1, label=f"{m.index}" if n <= 12 else None)
    ax1.set_xlabel("normalised radial frequency (1 = Nyquist along an axis)")
    ax1.set_ylabel("mean power per frequency")
    ax1.set_title("spatial spectra (DC left out; light = deeper)", fontsize=9)
    if n <= 12:
        ax1.legend(fontsize=6, ncol=2, title="layer", title_fontsize=7)
    if _band(ax2, result, "high_freq_ratio", "tab:red"):
        ax2.legend(fontsize=7)
    ax2.plot([m.index for m in result.layers], [m.high_freq_ratio for m in result.layers], "o-", color="tab:red")
    ax2.set_xlabel("layer")
    ax2.set_ylabel("share of non-DC energy at ρ > 0.5")
    ax2.set_title("high-frequency energy ratio", fontsize=9)
    return _save(fig, path)


def write_plots(result: AnalysisResult, out: str | Path, teacher_ids=None) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return {
        "intensity.png": intensity_plot(result, out / "intensity.png", teacher_ids),
        "entropy.png": entropy_plot(result, out / "entropy.png"),
        "channel_spectra.png": spectra_grid(result, out / "channel_spectra.png"),
        "spatial_spectra.png": spatial_plot(result, out / "spatial_spectra.png"),
    }
