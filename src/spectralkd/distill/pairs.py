"""Student ↔ teacher layer pairs: resolved (explicit ids or ``auto``) and validated before the first step.

``auto`` reads the ``"recommended": {"student_ids": [...], "teacher_ids": [...]}`` entry of an ``analysis.json``
written by ``spectralkd analyze`` (run on the teacher with ``--student-depth`` set to the student's depth).
Validation runs one tiny forward of both models and checks that every pair has equal H×W (or, with spatial
alignment ``fourier``/``interpolate``, that both maps are at least 1×1), so a bad pairing fails with one line before
any training time is spent.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn

from spectralkd.errors import UserError
from spectralkd.analysis.outputs import load_analysis
from spectralkd.analysis.recommend import pairs_from_analysis
from spectralkd.distill.losses import check_spatial
from spectralkd.features import is_module_names, resolve_indices, take_maps


def _as_ids(value, what: str) -> list[int] | list[str]:
    """Block/stage indices, or module names (``[layer2, layer3]``: maps taken by forward hooks)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, str):
        parts = value.replace(",", " ").split()
        try:
            return [int(p) for p in parts]
        except ValueError:
            if parts and all(not p.lstrip("-").isdigit() for p in parts):
                return parts  # module names
            raise UserError(f"{what} '{value}' must be a list of integers, of module names, or 'auto'") from None
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return list(value)
    raise UserError(f"{what} {value!r} must be a list of integers, of module names, or 'auto'")


def read_recommendation(path: str | Path) -> tuple[list[int], list[int]]:
    """(student ids, teacher ids) from the ``recommended`` entry of an ``analysis.json``."""

    if not path:
        raise UserError("layer ids 'auto' need distill.analysis: the analysis.json written by "
                        "`spectralkd analyze --model TEACHER --student-depth D --out DIR`")
    data = load_analysis(path)
    rec = data.get("recommended")
    if not isinstance(rec, dict) or "student_ids" not in rec or "teacher_ids" not in rec:
        raise UserError(f"analysis file {path} has no 'recommended': {{'student_ids': [...], 'teacher_ids': [...]}} entry")
    return _as_ids(rec["student_ids"], f"{path} recommended student_ids"), _as_ids(rec["teacher_ids"], f"{path} recommended teacher_ids")


def resolve_pairs(student_ids, teacher_ids, analysis: str | Path | None,
                  student_depth: int, teacher_depth: int) -> tuple[list, list]:
    """Absolute ids (negative ones count from the end), same count on both sides, in range; module names (any
    ``nn.Module`` sub-module, e.g. ``layer3.1`` of a ResNet) pass through and are checked by ``validate_pairs``."""
    if student_ids == "auto" or teacher_ids == "auto":
        rec_s, rec_t = read_recommendation(analysis)
        if max(rec_s, default=0) >= student_depth:
            # analysed for a deeper student: apply the same rule to this student's depth

            print(f"spectralkd: {analysis} recommends student layers {rec_s}, beyond this student's {student_depth} "
                  "blocks; re-deriving the pairs for this depth", file=sys.stderr)
            rec_s, rec_t = pairs_from_analysis(analysis, student_depth)
        student_ids = rec_s if student_ids == "auto" else student_ids
        teacher_ids = rec_t if teacher_ids == "auto" else teacher_ids
    if student_ids is None or teacher_ids is None:
        raise UserError("feature distillation needs distill.student_ids and distill.teacher_ids (lists of block ids, "
                        "or 'auto' with distill.analysis)")
    s = _as_ids(student_ids, "distill.student_ids")
    t = _as_ids(teacher_ids, "distill.teacher_ids")
    if len(s) != len(t):
        raise UserError(f"distill.student_ids has {len(s)} ids but distill.teacher_ids has {len(t)}; pair them one to one")
    if not s:
        raise UserError("distill.student_ids is empty; give at least one layer pair")
    s = s if is_module_names(s) else resolve_indices(s, student_depth, what="student layer")
    t = t if is_module_names(t) else resolve_indices(t, teacher_depth, what="teacher layer")
    return s, t


def validate_pairs(student: nn.Module, teacher: nn.Module, student_ids: Sequence[int], teacher_ids: Sequence[int],
                   input_size: int, device: torch.device | str = "cpu",
                   spatial: str = "strict") -> list[tuple[tuple, tuple]]:
    """One 1-image forward of both models; every pair must have equal H×W (``spatial="strict"``) or, with
    ``fourier``/``interpolate``, B×C×H×W maps of at least 1×1 on both sides. Returns the (student, teacher) shapes."""
    check_spatial(spatial)
    x = torch.zeros(1, 3, input_size, input_size, device=device)
    was_training = student.training
    student.eval()
    try:
        with torch.no_grad():
            sm = take_maps(student, x, student_ids)
            tm = take_maps(teacher, x, teacher_ids)
    finally:
        student.train(was_training)
    shapes = []
    for si, ti, a, b in zip(student_ids, teacher_ids, sm, tm):
        if a.dim() != 4 or b.dim() != 4 or min(a.shape[-2:]) < 1 or min(b.shape[-2:]) < 1:
            raise UserError(f"layer pair student {si} ↔ teacher {ti} cannot be aligned: student map "
                            f"{tuple(a.shape[1:])} vs teacher map {tuple(b.shape[1:])} are not both C×H×W maps of at "
                            "least 1×1")
        if a.shape[-2:] != b.shape[-2:] and spatial == "strict":
            raise UserError(f"layer pair student {si} ↔ teacher {ti} cannot be aligned: student map "
                            f"{tuple(a.shape[1:])} vs teacher map {tuple(b.shape[1:])} (C×H×W) differ in H×W; "
                            "set distill.spatial_align: fourier to compare them on their common frequencies")
        shapes.append((tuple(a.shape[1:]), tuple(b.shape[1:])))
    return shapes
