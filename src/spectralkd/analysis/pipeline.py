"""The whole analysis of one model into a folder: measures, recommended pairs, JSON/CSV, plots, report.

Used by ``spectralkd analyze``, by ``spectralkd compare`` for run directories, and by the demo.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch.nn as nn

from spectralkd.analysis.outputs import analysis_dict, write_outputs
from spectralkd.analysis.plots import write_plots
from spectralkd.analysis.recommend import recommend_from_layers
from spectralkd.analysis.report import write_report
from spectralkd.analysis.measures import AnalysisResult, analyze, make_loader
from spectralkd.features import block_maps, num_block_maps
from spectralkd.spectral.bootstrap import DEFAULT_RESAMPLES


def student_map_shapes(student: nn.Module, input_size: int) -> list[list[int]]:
    """C×H×W of every block/stage map of ``student`` for one ``input_size``² image (a single forward)."""
    import torch

    was = student.training
    student.eval()
    try:
        with torch.no_grad():
            maps = block_maps(student, torch.zeros(1, 3, input_size, input_size), list(range(num_block_maps(student))))
    finally:
        student.train(was)
    return [list(m.shape[1:]) for m in maps]


@dataclass
class AnalysisOutput:
    """What :func:`analyze_to_dir` computed and wrote."""
    result: AnalysisResult
    recommended: dict
    analysis: dict  # the analysis.json content
    files: dict[str, Path]
    report: Path


def analyze_to_dir(model: nn.Module, model_name: str, data, out: str | Path, *, num_images: int | None = 256,
                   batch_size: int = 32, input_size: int | None = None, data_overrides: dict | None = None,
                   indices: Sequence[int] | None = None, names: Sequence[str] | None = None,
                   student_depth: int | None = None, num_pairs: int | None = None, bins: int = 100,
                   student_shapes: Sequence[Sequence[int]] | None = None,
                   device="cpu", progress: bool = True, skip_bad: bool = False, workers: int = 0,
                   split: str = "val", holdout: tuple[int, int] | None = None,
                   settings: dict | None = None, bootstrap: int = DEFAULT_RESAMPLES,
                   bootstrap_seed: int = 0) -> AnalysisOutput:
    """Analyse ``model`` on ``num_images`` images of ``data`` and write every output file into ``out``.

    ``student_shapes`` (C×H×W of each of the student's maps, e.g. from :func:`student_map_shapes`) lets the
    recommendation pair across architectures and show the sizes of both sides. ``bootstrap`` resamples (0: none)
    with ``bootstrap_seed`` give the percentile-bootstrap intervals over the images (see spectral.bootstrap)."""
    overrides = {k: v for k, v in (data_overrides or {}).items() if v is not None}
    loader, cfg, n_files = make_loader(model, data, num_images, batch_size, input_size, skip_bad, workers, split,
                                       holdout, **overrides)
    info = {"data": str(data), "split": f"train, held out ({holdout[0]} images, seed {holdout[1]})" if holdout else split, "images_requested": num_images, "files_used": n_files,
            "input_size": list(cfg["input_size"]), "mean": list(cfg["mean"]), "std": list(cfg["std"]),
            "interpolation": cfg.get("interpolation"), "crop_pct": cfg.get("crop_pct"),
            "crop_mode": cfg.get("crop_mode"), "batch_size": batch_size, "device": str(device),
            "high_freq_cutoff": 0.5, "energy_levels": [0.8, 0.9, 0.95, 0.99], "rank_percentile": 99,
            "bootstrap": bootstrap, "bootstrap_seed": bootstrap_seed, **(settings or {})}
    result = analyze(model, model_name, loader, indices=indices, names=names, bins=bins, device=device,
                     progress=progress, settings=info, bootstrap=bootstrap, bootstrap_seed=bootstrap_seed)
    if student_shapes is not None and student_depth is None:
        student_depth = len(student_shapes)
    depth = student_depth if student_depth is not None else result.depth
    recommended = recommend_from_layers([{"index": m.index, "shape": m.shape, "intensity": m.intensity}
                                         for m in result.layers], depth, num_pairs, teacher_depth=result.depth,
                                        student_shapes=student_shapes)
    files = write_outputs(result, recommended, out)
    plots = write_plots(result, out, recommended["teacher_ids"])
    report = write_report(result, recommended, plots, out)
    return AnalysisOutput(result, recommended, analysis_dict(result, recommended), {**files, **plots}, report)
