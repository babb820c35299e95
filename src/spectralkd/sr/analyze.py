"""Branch analysis: do MDBN's deep and shallow branches carry different frequencies (detail vs contour)?

For each base block, the radially averaged spatial power spectrum of the deep-branch map (uconv2 output) and the
shallow-branch map (dconv output), averaged over channels, with the shared spectral code
(:mod:`spectralkd.spectral.spatial`), and the low/high energy ratio: non-DC energy at normalised radius
ρ ≤ 0.5 over energy at ρ > 0.5 (ρ = 1 is the Nyquist frequency along an axis). The paper's claim predicts a
higher ratio (more low-frequency, contour-like energy) in one branch type consistently across blocks.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from spectralkd.paths import portable
from spectralkd.runtime.io import atomic_write_text
from spectralkd.spectral.spatial import high_frequency_ratio, radial_power_spectrum
from spectralkd.sr.branches import branch_maps
from spectralkd.sr.datasets import to_tensor


def analyze_branches(model: torch.nn.Module, lr: np.ndarray) -> dict:
    """``{"blocks": [{"name", "deep": {...}, "shallow": {...}}], "summary": {...}}`` for one LR image."""
    device = next(model.parameters()).device
    maps = branch_maps(model.eval(), to_tensor(lr)[None].to(device))
    blocks = []
    for m in maps:
        entry = {"name": m["name"]}
        for kind in ("deep", "shallow"):
            x = m[kind].float()
            freq, power = radial_power_spectrum(x)
            high = high_frequency_ratio(x)
            entry[kind] = {"high_share": high, "low_high_ratio": (1 - high) / high if high > 0 else float("inf"),
                           "energy": float(x.pow(2).mean()), "radial_power": power.tolist()}
        entry["frequency"] = freq.tolist()
        blocks.append(entry)
    deep_lh = [b["deep"]["low_high_ratio"] for b in blocks]
    shallow_lh = [b["shallow"]["low_high_ratio"] for b in blocks]
    more_low = sum(s > d for d, s in zip(deep_lh, shallow_lh))
    summary = {
        "blocks": len(blocks),
        "shallow_more_low_frequency": more_low,
        "deep_more_low_frequency": len(blocks) - more_low,
        "mean_low_high_ratio": {"deep": float(np.mean(deep_lh)), "shallow": float(np.mean(shallow_lh))},
        "reading": ("shallow branches hold relatively more low-frequency (contour) energy than deep ones in "
                    f"{more_low} of {len(blocks)} blocks"),
    }
    return {"blocks": blocks, "summary": summary}


def write_analysis(result: dict, out: str | Path, title: str = "") -> list[Path]:
    """``branches.json`` and ``branches.png`` (radial spectra per block; low/high ratio per block)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "branches.json", json.dumps(portable(result, out), indent=1) + "\n")
    blocks = result["blocks"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    cmap = plt.get_cmap("viridis")
    for i, b in enumerate(blocks):
        c = cmap(i / max(len(blocks) - 1, 1))
        f = np.asarray(b["frequency"])
        ax1.semilogy(f[1:], np.asarray(b["deep"]["radial_power"])[1:], color=c, lw=1.2)
        ax1.semilogy(f[1:], np.asarray(b["shallow"]["radial_power"])[1:], color=c, lw=1.2, ls="--")
    ax1.set_xlabel("normalised radial frequency (1 = Nyquist)")
    ax1.set_ylabel("mean power")
    ax1.set_title("radial spectra: deep (solid) vs shallow (dashed), light = later")
    x = np.arange(len(blocks))
    ax2.plot(x, [b["deep"]["low_high_ratio"] for b in blocks], "o-", label="deep branch")
    ax2.plot(x, [b["shallow"]["low_high_ratio"] for b in blocks], "s--", label="shallow branch")
    ax2.set_xticks(x, [b["name"].replace("body.", "").replace(".baseblock", "/") for b in blocks], rotation=60)
    ax2.set_ylabel("low/high energy ratio (ρ ≤ 0.5 vs > 0.5)")
    ax2.set_title("per base block")
    ax2.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out / "branches.png", dpi=110)
    plt.close(fig)
    return [out / "branches.json", out / "branches.png"]
