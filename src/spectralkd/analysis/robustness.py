"""Robustness of a classifier: top-1 under L∞ adversarial attacks (FGSM, PGD) and under common corruptions.

Everything happens in pixel space: images are loaded with the model's preprocessing (resize, crop) but without
normalisation, as ``B×3×H×W`` floats in [0, 1]; the model is wrapped with its normalisation
(:class:`Normalized`), so ε is a fraction of the 0–255 pixel range and an attacked image is a valid image.

- Attacks come from torchattacks (``FGSM``; ``PGD`` with random start, step ``alpha = 2.5·ε/steps`` unless given,
  as Madry et al.), with the random start seeded per batch so a run is reproducible.
- Corruptions come from imagecorruptions (the maintained ``imagecorruptions-imaug`` distribution): Hendrycks &
  Dietterich's 15 benchmark corruptions (noise, blur, weather, digital) plus the 4 held-out ones, severities 1–5,
  applied to the uint8 image at the model's input size. Their parameters are ImageNet-C's, which are harsher on
  32-pixel images than CIFAR-10-C's own (e.g. Gaussian noise σ = 0.08–0.38 vs 0.04–0.10), so compare numbers
  across models measured here, not with published CIFAR-10-C tables.

Both packages are the optional extra ``spectralkd[robustness]``; a missing one is a one-line UserError.
"""
from __future__ import annotations

import json
import math
import re
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from spectralkd.errors import UserError

ATTACKS = ("fgsm", "pgd")
# Hendrycks & Dietterich (ICLR 2019): the 15 benchmark corruptions, by family, and the 4 held-out ones.
COMMON_CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise",                        # noise
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",                # blur
    "snow", "frost", "fog", "brightness",                                    # weather
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",         # digital
)
EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL_CORRUPTIONS = COMMON_CORRUPTIONS + EXTRA_CORRUPTIONS
INSTALL_HINT = "pip install 'spectralkd[robustness]'"


class Normalized(nn.Module):
    """``model((x - mean) / std)`` for pixel inputs ``x`` in [0, 1]."""

    def __init__(self, model: nn.Module, mean, std):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor([float(v) for v in mean]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor([float(v) for v in std]).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


# ---- parsing (the CLI's values; one-line errors) ---------------------------------------------------------------

def parse_eps(text: str | float | list) -> list[tuple[str, float]]:
    """``"1/255,2/255,0.01"`` → ``[("1/255", 0.00392…), …]``; every ε must lie in (0, 1]."""
    items = text if isinstance(text, (list, tuple)) else str(text).split(",")
    out = []
    for item in items:
        label = str(item).strip()
        if not label:
            continue
        try:
            value = float(Fraction(label))
        except (ValueError, ZeroDivisionError):
            raise UserError(f"--eps value '{label}' is not a number or fraction like 2/255") from None
        if not 0.0 < value <= 1.0:
            raise UserError(f"--eps value {label} is outside (0, 1]; ε is a fraction of the pixel range, e.g. 2/255")
        out.append((label, value))
    if not out:
        raise UserError("--eps is empty; give values in (0, 1] such as 1/255,2/255,4/255")
    return out


def parse_names(text: str | None, allowed: tuple[str, ...], what: str, groups: dict | None = None) -> list[str]:
    """Comma-separated names (or a group name such as ``all``) checked against ``allowed``; none → []."""
    if text is None or str(text).strip().lower() in ("", "none"):
        return []
    names: list[str] = []
    for item in str(text).split(","):
        name = item.strip().lower()
        if not name:
            continue
        if groups and name in groups:
            names += [n for n in groups[name] if n not in names]
        elif name in allowed:
            if name not in names:
                names.append(name)
        else:
            extra = f" (or {', '.join(groups)})" if groups else ""
            raise UserError(f"unknown {what} '{item.strip()}'; allowed: {', '.join(allowed)}{extra}")
    return names


def parse_attacks(text: str | None) -> list[str]:
    return parse_names(text, ATTACKS, "attack")


def parse_corruptions(text: str | None) -> list[str]:
    return parse_names(text, ALL_CORRUPTIONS, "corruption",
                       {"all": ALL_CORRUPTIONS, "common": COMMON_CORRUPTIONS, "extra": EXTRA_CORRUPTIONS})


def parse_severities(text: str | list) -> list[int]:
    """``"1-5"``, ``"1,3,5"`` or a list → sorted severities in 1..5."""
    values: set[int] = set()
    for item in (text if isinstance(text, (list, tuple)) else str(text).split(",")):
        item = str(item).strip()
        if not item:
            continue
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", item)
        try:
            lo, hi = (int(m.group(1)), int(m.group(2))) if m else (int(item), int(item))
        except ValueError:
            raise UserError(f"--severities value '{item}' is not an integer or range like 1-5") from None
        if not (1 <= lo <= hi <= 5):
            raise UserError(f"--severities {item} is outside 1-5")
        values.update(range(lo, hi + 1))
    if not values:
        raise UserError("--severities is empty; give e.g. 1-5 or 1,3,5")
    return sorted(values)


# ---- optional packages ---------------------------------------------------------------------------------------

def _torchattacks():
    try:
        import torchattacks
    except ImportError:
        raise UserError(f"adversarial attacks need the torchattacks package, which is not installed; {INSTALL_HINT}") from None
    return torchattacks


def _corrupt_fn():
    try:
        from imagecorruptions import corrupt
    except ImportError:
        raise UserError("corruptions need the imagecorruptions package (imagecorruptions-imaug), which is not "
                        f"installed; {INSTALL_HINT}") from None
    return corrupt


def package_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("torchattacks", "imagecorruptions-imaug"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


# ---- the operations ------------------------------------------------------------------------------------------

def attack_images(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, attack: str, eps: float,
                  steps: int = 10, alpha: float | None = None, seed: int = 0) -> torch.Tensor:
    """Adversarial versions of pixel ``images`` (in [0, 1]) for the pixel-space ``model`` (L∞ ball of radius ε).

    ``pgd``: ``steps`` steps of size ``alpha`` (default 2.5·ε/steps) from a uniform random start drawn with
    ``seed`` (the global RNG is left untouched). ε = 0 returns the images unchanged.
    """
    if attack not in ATTACKS:
        raise UserError(f"unknown attack '{attack}'; allowed: {', '.join(ATTACKS)}")
    if not 0.0 <= eps <= 1.0:
        raise UserError(f"ε {eps} is outside [0, 1]")
    ta = _torchattacks()
    if attack == "fgsm":
        atk = ta.FGSM(model, eps=eps)
    else:
        if int(steps) < 1:
            raise UserError(f"--pgd-steps must be at least 1, got {steps}")
        a = 2.5 * eps / int(steps) if alpha is None else float(alpha)
        atk = ta.PGD(model, eps=eps, alpha=a, steps=int(steps), random_start=True)
    devices = [images.device] if images.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        return atk(images, labels).detach()


def corrupt_images(images: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """``images`` (B×3×H×W in [0, 1]) with corruption ``name`` at ``severity`` (0 = unchanged, 1..5).

    Each image is rounded to uint8, corrupted by imagecorruptions and scaled back; the package's noise draws
    from NumPy's global RNG, which is seeded with ``seed`` here (and restored afterwards).
    """
    if name not in ALL_CORRUPTIONS:
        raise UserError(f"unknown corruption '{name}'; allowed: {', '.join(ALL_CORRUPTIONS)}")
    if int(severity) != severity or not 0 <= severity <= 5:
        raise UserError(f"severity {severity} is outside 0-5")
    if severity == 0:
        return images
    corrupt = _corrupt_fn()
    arr = (images.detach().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255.0).round().astype(np.uint8)
    state = np.random.get_state()
    np.random.seed(int(seed) % 2**32)
    try:
        out = np.stack([np.asarray(corrupt(img, corruption_name=name, severity=int(severity)))
                        .reshape(img.shape) for img in arr])
    finally:
        np.random.set_state(state)
    out = torch.from_numpy(np.clip(out, 0, 255).astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    return out.contiguous().to(images.device)


def cached_corrupt_images(images: torch.Tensor, name: str, severity: int, seed: int = 0,
                          cache_dir: str | Path | None = None) -> torch.Tensor:
    """:func:`corrupt_images`, memoised on disk in ``cache_dir`` (None: no cache).

    The key is a SHA-256 of the uint8 input pixels, the corruption, severity, seed and the imagecorruptions version,
    so a cached batch is reused only for exactly the same input, never for a changed image set or package; the
    entry is the corrupted uint8 batch as safetensors (no pickle), written atomically. Comparing several models on
    the same images (``benchmarks/robustness_study.py``) then corrupts each batch once: the corruptions cost
    ~0.4 s per 32-pixel image over 15 × 5 settings, far more than evaluating a small model on them.
    """
    if cache_dir is None or int(severity) == 0:
        return corrupt_images(images, name, severity, seed)
    import hashlib

    from safetensors.torch import load_file, save

    from spectralkd.runtime.io import atomic_write_bytes

    pixels = (images.detach().clamp(0, 1).cpu() * 255.0).round().to(torch.uint8).contiguous()
    h = hashlib.sha256(pixels.numpy().tobytes())
    h.update(json.dumps([list(pixels.shape), name, int(severity), int(seed),
                         package_versions().get("imagecorruptions-imaug")]).encode())
    path = Path(cache_dir) / f"{name}-{int(severity)}-{h.hexdigest()[:32]}.safetensors"
    if path.is_file():
        try:
            return (load_file(str(path))["corrupted"].float() / 255.0).to(images.device)
        except Exception:  # a damaged entry is recomputed and rewritten
            pass
    out = corrupt_images(images, name, severity, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, save({"corrupted": (out.cpu() * 255.0).round().to(torch.uint8).contiguous()}))
    return out


@torch.no_grad()
def correct(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> int:
    return int(model(images).argmax(dim=1).eq(labels).sum().item())


def measure(model: nn.Module, batches, attacks: list[str], eps: list[tuple[str, float]], pgd_steps: int = 10,
            pgd_alpha: float | None = None, corruptions: list[str] = (), severities: list[int] = (1, 2, 3, 4, 5),
            seed: int = 0, device: torch.device | str = "cpu", progress: bool = False,
            corruption_cache: str | Path | None = None) -> dict:
    """Top-1 (%) of the pixel-space ``model`` over ``batches`` of ``(images, labels)``: clean, per attack and ε,
    per corruption and severity, and the mean over every corruption and severity measured. With
    ``corruption_cache`` (a folder) corrupted batches are memoised there (:func:`cached_corrupt_images`)."""
    from tqdm import tqdm

    model.eval()
    n = 0
    clean = 0
    hits_atk = {a: {label: 0 for label, _ in eps} for a in attacks}
    hits_cor = {c: {s: 0 for s in severities} for c in corruptions}
    for b, (images, labels) in enumerate(tqdm(batches, desc="robustness", disable=not progress, leave=False,
                                              file=sys.stderr, mininterval=2.0)):
        images, labels = images.to(device), labels.to(device)
        n += labels.numel()
        clean += correct(model, images, labels)
        for a in attacks:
            for label, value in eps:
                adv = attack_images(model, images, labels, a, value, pgd_steps, pgd_alpha, seed=seed * 100003 + b)
                hits_atk[a][label] += correct(model, adv, labels)
        for ci, c in enumerate(corruptions):
            for s in severities:
                bad = cached_corrupt_images(images.cpu(), c, s, seed=(seed * 1009 + b) * 1000 + ci * 10 + s,
                                            cache_dir=corruption_cache).to(device)
                hits_cor[c][s] += correct(model, bad, labels)
    if n == 0:
        raise UserError("no images to measure")
    pct = lambda k: 100.0 * k / n  # noqa: E731
    cor = {c: {str(s): pct(k) for s, k in d.items()} for c, d in hits_cor.items()}
    flat = [v for d in cor.values() for v in d.values()]
    return {"images": n, "clean": pct(clean),
            "attacks": {a: {label: pct(k) for label, k in d.items()} for a, d in hits_atk.items()},
            "corruptions": cor,
            "corruption_mean": float(np.mean(flat)) if flat else None}


# ---- checkpoint → report ---------------------------------------------------------------------------------------

def pixel_loader(items, dcfg: dict, num_images: int | None, batch_size: int, seed: int = 0, num_workers: int = 0):
    """A loader of pixel-space images (the model's resize/crop, no normalisation) over a seeded random subset of
    ``num_images`` of ``items`` (all when None), and the subset size."""
    from torch.utils.data import DataLoader

    from spectralkd.data import ImageFiles, eval_transform

    items = list(items)
    if num_images is not None:
        if int(num_images) < 1:
            raise UserError(f"--num-images must be at least 1, got {num_images}")
        order = np.random.default_rng(int(seed)).permutation(len(items))[: int(num_images)]
        items = [items[i] for i in sorted(order)]
    tf = eval_transform({**dcfg, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)})
    return DataLoader(ImageFiles(items, tf), batch_size=batch_size, num_workers=num_workers), len(items)


def robustness_checkpoint(checkpoint: str | Path, out: str | Path, data: str | Path | None = None,
                          model_name: str | None = None, model_kwargs: str | dict | None = None,
                          num_images: int | None = 1000, attacks="fgsm,pgd", eps="1/255,2/255,4/255",
                          pgd_steps: int = 10, pgd_alpha: float | None = None, corruptions=None,
                          severities="1-5", batch_size: int = 250, device: str = "auto", seed: int = 0,
                          split: str = "val", num_workers: int = 0, progress: bool = False,
                          corruption_cache: str | Path | None = None) -> dict:
    """Measure a checkpoint (model and preprocessing from its card, as ``spectralkd eval``) and write
    ``out/robustness.json``, ``out/report.md`` and ``out/robustness.png``; returns the JSON dict."""
    from spectralkd.data import default_data, labelled_split
    from spectralkd.features.classifier import classifier_from_checkpoint
    from spectralkd.runtime.device import pick_device

    attack_list, corruption_list = parse_attacks(attacks), parse_corruptions(corruptions)
    eps_list = parse_eps(eps) if attack_list else []
    sev_list = parse_severities(severities) if corruption_list else []
    if attack_list:
        _torchattacks()
    if corruption_list:
        _corrupt_fn()
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    if corruption_cache is not None and corruption_list:
        try:
            Path(corruption_cache).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"--corruption-cache {corruption_cache}: cannot use it as a folder "
                            f"({e.strerror or e})") from None
    data = data or default_data()
    items, classes, folder = labelled_split(data, split)
    model, dcfg, name = classifier_from_checkpoint(checkpoint, len(classes), model_name, model_kwargs,
                                                   data_label=str(folder))
    dev = pick_device(device)
    wrapped = Normalized(model, dcfg["mean"], dcfg["std"]).to(dev).eval()
    loader, count = pixel_loader(items, dcfg, num_images, batch_size, seed, num_workers)
    result = {"model": name, "checkpoint": str(checkpoint), "data": str(folder), "split": split, "seed": int(seed),
              "input_size": list(dcfg["input_size"]), "mean": list(dcfg["mean"]), "std": list(dcfg["std"]),
              "eps": {label: value for label, value in eps_list}, "pgd_steps": int(pgd_steps),
              "pgd_alpha": "2.5*eps/steps" if pgd_alpha is None else float(pgd_alpha), "severities": sev_list,
              "packages": package_versions()}
    result.update(measure(wrapped, loader, attack_list, eps_list, pgd_steps, pgd_alpha, corruption_list, sev_list,
                          seed, dev, progress, corruption_cache))
    if corruption_list and set(COMMON_CORRUPTIONS) <= set(corruption_list):
        result["corruption_mean_common15"] = float(np.mean(
            [v for c in COMMON_CORRUPTIONS for v in result["corruptions"][c].values()]))
    write_outputs(result, out)
    return result


def report_markdown(r: dict) -> str:
    lines = [f"# Robustness of {r['model']}", "",
             f"Checkpoint `{r['checkpoint']}`, {r['images']} images of `{r['data']}` (seed {r['seed']}).", "",
             f"Clean top-1: **{r['clean']:.2f} %**", ""]
    if r["attacks"]:
        labels = list(next(iter(r["attacks"].values())))
        lines += ["## L∞ attacks (pixel space, top-1 %)", "",
                  "| attack | " + " | ".join(f"ε = {x}" for x in labels) + " |",
                  "|---|" + "---:|" * len(labels)]
        for a, d in r["attacks"].items():
            steps = f" ({r['pgd_steps']} steps)" if a == "pgd" else ""
            lines.append(f"| {a}{steps} | " + " | ".join(f"{d[x]:.2f}" for x in labels) + " |")
        lines.append("")
    if r["corruptions"]:
        sev = [str(s) for s in r["severities"]]
        lines += ["## Corruptions (top-1 %)", "", "| corruption | " + " | ".join(f"s{s}" for s in sev) + " | mean |",
                  "|---|" + "---:|" * (len(sev) + 1)]
        for c, d in r["corruptions"].items():
            lines.append(f"| {c} | " + " | ".join(f"{d[s]:.2f}" for s in sev) + f" | {np.mean(list(d.values())):.2f} |")
        lines += ["", f"Mean corruption accuracy: **{r['corruption_mean']:.2f} %**"]
        if "corruption_mean_common15" in r:
            lines.append(f"(over the 15 benchmark corruptions: {r['corruption_mean_common15']:.2f} %)")
        lines.append("")
    return "\n".join(lines)


def write_outputs(result: dict, out: str | Path) -> None:
    """``robustness.json``, ``report.md`` and ``robustness.png`` in ``out``; paths in them are made portable
    (relative to ``out`` or the working directory, never absolute)."""
    from spectralkd.paths import portable
    from spectralkd.runtime.io import atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = portable(result, out)
    atomic_write_text(out / "robustness.json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(out / "report.md", report_markdown(result))
    plot(result, out / "robustness.png")


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in ("attacks", "corruptions") if r[p]]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, p in zip(axes[0], panels):
        if p == "attacks":
            for a, d in r["attacks"].items():
                xs = [0.0] + [r["eps"][k] * 255 for k in d]
                ax.plot(xs, [r["clean"]] + list(d.values()), marker="o", label=a)
            ax.set_xlabel("ε × 255")
            ax.set_title("L∞ attacks")
        else:
            for c, d in r["corruptions"].items():
                ax.plot([0] + [int(s) for s in d], [r["clean"]] + list(d.values()), lw=1, alpha=0.7, label=c)
            mean = [np.mean([d[str(s)] for d in r["corruptions"].values()]) for s in r["severities"]]
            ax.plot([0] + r["severities"], [r["clean"]] + mean, color="k", lw=2.5, label="mean")
            ax.set_xlabel("severity")
            ax.set_title("corruptions")
        ax.set_ylabel("top-1 (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6 if p == "corruptions" else 8, ncol=2 if p == "corruptions" else 1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def paired_summary(diffs: list[float]) -> dict:
    """Mean of paired differences and its 95 % t-interval (``None`` bounds with fewer than two pairs)."""
    from scipy import stats

    d = [float(x) for x in diffs]
    if not d:
        return {"n": 0, "mean": None, "ci95": [None, None]}
    m = float(np.mean(d))
    if len(d) < 2:
        return {"n": 1, "mean": m, "ci95": [None, None]}
    half = float(stats.t.ppf(0.975, len(d) - 1) * np.std(d, ddof=1) / math.sqrt(len(d)))
    return {"n": len(d), "mean": m, "ci95": [m - half, m + half]}
