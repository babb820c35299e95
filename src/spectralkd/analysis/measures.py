"""Run a model over images and accumulate every spectral measure per layer (two passes, bounded memory).

Pass 1 feeds each batch's feature maps to :class:`~spectralkd.spectral.RunningMeasures` (channel spectra, RMS,
SVD ranks, spatial spectra, value range); pass 2 runs the same images again for the channel entropy, whose
histogram range is the global min..max found in pass 1 (see :mod:`spectralkd.spectral.running`). The loader must
yield the same images in the same order both times (no shuffling, evaluation transforms).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from spectralkd.data import (
    ImageFiles, analysis_images, collate_skip_bad, data_config, eval_transform, holdout_split, labelled_split,
)
from spectralkd.errors import UserError
from spectralkd.features import block_maps, map_names, module_maps, num_block_maps, resolve_indices
from spectralkd.spectral import LayerMeasures, RunningMeasures
from spectralkd.spectral.bootstrap import CONFIDENCE_LEVEL, DEFAULT_RESAMPLES, layer_intervals


@dataclass
class AnalysisResult:
    """What ``analyze`` found; ``layers[i]`` belongs to ``layer_ids[i]`` (named ``layer_names[i]``)."""

    model: str
    layers: list[LayerMeasures]
    layer_ids: list[int]
    layer_names: list[str]
    depth: int  # maps the model offers (blocks/stages), or the number of named modules
    num_images: int
    skipped: int
    value_range: tuple[float, float]
    settings: dict = field(default_factory=dict)
    # per layer {measure: (lower, upper) or None}: bootstrap intervals over images (empty dicts when disabled)
    intervals: list[dict] = field(default_factory=list)
    bootstrap: dict = field(default_factory=dict)  # resamples, seed, level, method, over[, note]; {} when disabled

    def interval(self, i: int, measure: str) -> tuple[float, float] | None:
        """The interval of ``measure`` for layer position ``i`` (None: not computed)."""
        return self.intervals[i].get(measure) if i < len(self.intervals) else None


class LayerSelection:
    """Which maps to take: timm blocks/stages by index (``block_maps``) or any modules by name (hooks)."""

    def __init__(self, model: nn.Module, indices: Sequence[int] | None = None, names: Sequence[str] | None = None):
        if names:
            known = dict(model.named_modules())
            missing = [n for n in names if n not in known]
            if missing:
                sample = ", ".join(list(known)[1:6])
                raise UserError(f"module '{missing[0]}' is not in {type(model).__name__}; names look like: {sample}, ...")
            self.names, self.ids, self.depth = list(names), list(range(len(names))), len(names)
            if indices:
                raise UserError("give either --layers (module names) or --indices (block ids), not both")
        else:
            self.depth = num_block_maps(model)
            self.ids = resolve_indices(indices, self.depth)
            modules = map_names(model)
            self.names = [modules[i] for i in self.ids]
        self.by_name = bool(names)

    def maps(self, model: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
        if self.by_name:
            return module_maps(model, images, self.names)
        return block_maps(model, images, self.ids)


def pick_images(files: list[Path], num_images: int | None) -> list[Path]:
    """``num_images`` files spread evenly over the sorted list (so class folders are all represented)."""
    if num_images is None or num_images >= len(files):
        return files
    if num_images < 1:
        raise UserError(f"--num-images must be at least 1, got {num_images}")
    take = np.linspace(0, len(files) - 1, num_images).round().astype(int)
    return [files[i] for i in take]


def make_loader(model: nn.Module, data: str | Path, num_images: int | None = None, batch_size: int = 32,
                input_size: int | None = None, skip_bad: bool = False, workers: int = 0, split: str = "val",
                holdout: tuple[int, int] | None = None, **overrides) -> tuple[DataLoader, dict, int]:
    """(loader of ``(images, labels, n_dropped)``, the data config used, number of files).

    ``holdout=(N, seed)``: the images a training run with ``data.holdout=N``, ``data.holdout_seed=seed`` holds out
    of ``train`` as its validation split (so a teacher is analysed on validation, not test, images).
    """
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    cfg = data_config(model, input_size=input_size, **overrides)
    if holdout:
        _, held = holdout_split(labelled_split(data, "train")[0], int(holdout[0]), int(holdout[1]))
        files = pick_images(sorted(path for path, _ in held), num_images)
    else:
        files = pick_images(analysis_images(data, split), num_images)
    dataset = ImageFiles(files, eval_transform(cfg), skip_bad=skip_bad, bad_hint="use --skip-bad to skip such files")
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=collate_skip_bad)
    return loader, cfg, len(files)


def _batches(loader: Iterable, desc: str, progress: bool):
    total = len(loader) if hasattr(loader, "__len__") else None
    return tqdm(loader, desc=desc, total=total, unit="batch", file=sys.stderr, disable=not progress, leave=False)


def collect(model: nn.Module, loader: Iterable, selection: LayerSelection, bins: int = 100,
            device: torch.device | str = "cpu", progress: bool = True) -> tuple[RunningMeasures, int, int]:
    """Both passes over ``loader`` → (accumulator with entropy, images analysed, images skipped)."""
    model.eval()
    acc = RunningMeasures(selection.ids, bins=bins)
    images_seen = skipped = 0
    with torch.inference_mode():
        for images, _, dropped in _batches(loader, "spectra (pass 1/2)", progress):
            skipped += dropped
            if images is None:
                continue
            maps = selection.maps(model, images.to(device))
            acc.update([m.float() for m in maps])
            images_seen += images.shape[0]
        if images_seen == 0:
            raise UserError(f"no image could be analysed ({skipped} unreadable)")
        for images, _, _ in _batches(loader, "entropy (pass 2/2)", progress):
            if images is None:
                continue
            acc.update_entropy([m.float() for m in selection.maps(model, images.to(device))])
    return acc, images_seen, skipped


def probe_measures(model: nn.Module, images: torch.Tensor, bins: int = 100, batch_size: int = 64,
                   device: torch.device | str = "cpu") -> list[LayerMeasures]:
    """Every measure of every block/stage map of ``model`` on a fixed tensor of (normalised) images, exactly as
    :func:`analyze` computes them (both passes); the trainer's ``monitor`` records these per epoch. Leaves the model
    in eval mode."""
    batches = [(images[i:i + batch_size], None, 0) for i in range(0, images.shape[0], batch_size)]
    acc, _, _ = collect(model, batches, LayerSelection(model), bins, device, progress=False)
    return acc.results()


def bootstrap_layers(layers: Sequence[LayerMeasures], num_images: int, resamples: int = DEFAULT_RESAMPLES,
                     seed: int = 0) -> tuple[list[dict], dict]:
    """(per-layer intervals, description) of the percentile bootstrap over images (``resamples`` 0: disabled)."""
    if resamples < 0:
        raise UserError(f"--bootstrap must be 0 (off) or a number of resamples, got {resamples}")
    if resamples == 0:
        return [{} for _ in layers], {}
    info = {"resamples": int(resamples), "seed": int(seed), "level": CONFIDENCE_LEVEL, "method": "percentile",
            "over": "images"}
    if num_images < 2:
        info["note"] = f"no interval: the bootstrap over images needs at least 2 images, got {num_images}"
    return layer_intervals(layers, resamples, seed), info


def analyze(model: nn.Module, model_name: str, loader: Iterable, indices: Sequence[int] | None = None,
            names: Sequence[str] | None = None, bins: int = 100, device: torch.device | str = "cpu",
            progress: bool = True, settings: dict | None = None, bootstrap: int = DEFAULT_RESAMPLES,
            bootstrap_seed: int = 0) -> AnalysisResult:
    """Every measure of the chosen layers of ``model`` over the images of ``loader``, with percentile-bootstrap
    intervals over the images (``bootstrap`` resamples, 0: none) of the measures in ``CI_MEASURES``."""
    model = model.to(device)
    selection = LayerSelection(model, indices, names)
    acc, n, skipped = collect(model, loader, selection, bins, device, progress)
    layers = acc.results()
    intervals, info = bootstrap_layers(layers, n, bootstrap, bootstrap_seed)
    return AnalysisResult(model=model_name, layers=layers, layer_ids=selection.ids,
                          layer_names=selection.names, depth=selection.depth, num_images=n, skipped=skipped,
                          value_range=acc.value_range, settings=dict(settings or {}, bins=bins),
                          intervals=intervals, bootstrap=info)
