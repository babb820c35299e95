"""Distillation dynamics: overlay a teacher and its students layer by layer, with similarity numbers.

The first analysis is the reference (the teacher). Every per-layer curve is placed at relative depth
``i / (L − 1)`` so models of different depth line up; each student's curve is compared with the teacher's after both
are resampled to a common grid (:mod:`spectralkd.spectral.similarity`): Pearson correlation of the shapes and mean
absolute distance of the values. When the student was distilled (a run directory or an analysis carrying
``pairs``), its layers are split into *aligned* (they had a loss term against a teacher layer) and *not aligned*,
and each layer is compared with its teacher counterpart — the paired teacher layer, or the teacher curve at the
same relative depth — to show whether the student mirrors the teacher beyond the layers it was told to match.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from spectralkd.analysis.outputs import load_analysis  # noqa: F401  (re-exported)
from spectralkd.errors import UserError
from spectralkd.spectral.similarity import curve_correlation, mean_layer_distance, relative_depth

MEASURES = ("intensity", "rms", "entropy", "high_freq_ratio")
SPECTRUM_POINTS = 64


def curve(analysis: dict, measure: str) -> list[float]:
    values = [layer.get(measure) for layer in analysis["layers"]]
    if any(v is None for v in values):
        raise UserError(f"analysis of {analysis.get('model')} has no '{measure}' for every layer")
    return [float(v) for v in values]


def depth_matched(student_ids: Sequence[int], teacher_ids: Sequence[int]) -> list[tuple[int, int]]:
    """Each student layer with the teacher layer nearest its relative depth."""
    s_pos, t_pos = relative_depth(len(student_ids)), relative_depth(len(teacher_ids))
    return [(int(s), int(teacher_ids[int(np.argmin(np.abs(t_pos - p)))])) for s, p in zip(student_ids, s_pos)]


def spectra_on_common_grid(a: Sequence[float], b: Sequence[float], points: int = SPECTRUM_POINTS):
    """Two channel spectra (first C/2 bins, bin k at frequency k/C) linearly resampled to ``points`` normalised
    frequencies spanning the range both cover, 0 .. 0.5 − 1/min(C)."""
    va, vb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    fa, fb = np.arange(va.size) / (2 * va.size), np.arange(vb.size) / (2 * vb.size)
    grid = np.linspace(0.0, min(fa[-1], fb[-1]), points)
    return np.interp(grid, fa, va), np.interp(grid, fb, vb)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    xs, ys = x - x.mean(), y - y.mean()
    denom = math.sqrt(float((xs**2).sum() * (ys**2).sum()))
    return float((xs * ys).sum() / denom) if denom > 0 else math.nan


def _finite(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def compare_pair(teacher: dict, student: dict, pairs: dict | None = None) -> dict:
    """Similarity of one student to the teacher: per measure, per layer, and per aligned spectrum."""
    out: dict = {"model": student.get("model"), "depth": len(student["layers"]), "measures": {}}
    for name in MEASURES:
        t, s = curve(teacher, name), curve(student, name)
        dist = mean_layer_distance(s, t)
        scale = float(np.mean(np.abs(t))) or 1.0
        out["measures"][name] = {"correlation": _finite(curve_correlation(s, t)), "mean_distance": dist,
                                 "relative_distance": dist / scale}
    t_ids = [int(x["index"]) for x in teacher["layers"]]
    s_ids = [int(x["index"]) for x in student["layers"]]
    explicit = bool(pairs and pairs.get("student_ids"))
    paired = dict(zip(map(int, pairs["student_ids"]), map(int, pairs["teacher_ids"]))) if explicit else {}
    nearest = dict(depth_matched(s_ids, t_ids))
    t_int = curve(teacher, "intensity")
    t_pos = relative_depth(len(t_ids))
    rows = []
    for s_id, pos, s_val in zip(s_ids, relative_depth(len(s_ids)), curve(student, "intensity")):
        aligned = s_id in paired
        ref = t_int[t_ids.index(paired[s_id])] if aligned and paired[s_id] in t_ids else float(np.interp(pos, t_pos, t_int))
        rows.append({"student_layer": s_id, "relative_depth": float(pos), "aligned": aligned,
                     "teacher_layer": paired.get(s_id) if aligned else None, "intensity": s_val,
                     "teacher_intensity": ref, "abs_diff": abs(s_val - ref)})
    out["layers"] = rows
    groups = {"aligned": [r["abs_diff"] for r in rows if r["aligned"]],
              "not_aligned": [r["abs_diff"] for r in rows if not r["aligned"]]}
    out["intensity_distance"] = {k: (float(np.mean(v)) if v else None) for k, v in groups.items()}
    out["pairs_source"] = "distillation pairs" if explicit else "nearest relative depth"
    spectra = []
    for s_id, t_id in (sorted(paired.items()) if explicit else sorted(nearest.items())):
        s_spec, t_spec = student["spectra"].get(str(s_id)), teacher["spectra"].get(str(t_id))
        if not s_spec or not t_spec:
            continue
        a, b = spectra_on_common_grid(s_spec, t_spec)
        spectra.append({"student_layer": s_id, "teacher_layer": t_id, "correlation": _finite(_pearson(a, b)),
                        "mean_distance": float(np.abs(a - b).mean())})
    out["spectra"] = spectra
    return out


def compare(analyses: Sequence[dict], labels: Sequence[str], pairs: Sequence[dict | None] | None = None) -> dict:
    """``compare.json`` content: the first analysis is the teacher, the others are compared with it."""
    if len(analyses) < 2:
        raise UserError("compare needs at least two analyses: the teacher first, then one or more students")
    if len(labels) != len(analyses):
        raise UserError(f"--labels gives {len(labels)} names for {len(analyses)} inputs")
    pairs = list(pairs or [None] * len(analyses))
    students = []
    for label, analysis, p in zip(labels[1:], analyses[1:], pairs[1:]):
        students.append({"label": label, **compare_pair(analyses[0], analysis, p), "pairs": p})
    return {"teacher": {"label": labels[0], "model": analyses[0].get("model"), "depth": len(analyses[0]["layers"])},
            "students": students}
