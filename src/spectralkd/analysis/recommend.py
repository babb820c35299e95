"""Which teacher layers to distil into which student layers, from the teacher's per-layer spectral scores.

SpectralKD's rule: take the k teacher layers with the highest frequency intensity; those in the first half of the
teacher, in order, go to the student's first layers, those in the second half to the student's last layers. For a
24-layer CaiT-S24 whose top 8 layers are 0, 1, 18..23 and a 12-layer DeiT-Tiny this gives
student 0 1 6 7 8 9 10 11 ↔ teacher 0 1 18 19 20 21 22 23 (the published pairing). Stage models (Swin, ConvNeXt:
the maps change resolution from stage to stage) pair stage by stage instead: 0↔0, 1↔1, ...

Across architectures (a stage teacher — ResNet, RegNet, ConvNeXt, Swin — and a block student such as DeiT, or the
other way round, or two stage models with different numbers of stages) the k highest-intensity teacher layers go
to the student layer at the same relative depth: teacher layer t of T ↔ student layer ``round((t+1)·S/T) − 1`` of S
(RegNetY's stem, s1..s4 ↔ DeiT-Tiny's blocks 1, 4, 6, 9, 11); when two teacher layers land on the same student
layer the higher-scoring one keeps it. Such pairs differ in H×W and need ``distill.spatial_align: fourier``
(``fourier_centered`` between token grids of different patch sizes).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from spectralkd.errors import UserError
from spectralkd.analysis.outputs import load_analysis


def default_num_pairs(student_depth: int, teacher_depth: int) -> int:
    """Two thirds of the shallower model (8 of 12 for DeiT-Tiny ← CaiT-S24), at least 1."""
    return max(1, (2 * min(student_depth, teacher_depth)) // 3)


def _checked(teacher_scores, student_depth: int, k: int | None, teacher_depth: int | None) -> tuple:
    """(scores by layer id, teacher depth, student depth, number of pairs), checked: one line on bad input."""
    scores = dict(teacher_scores) if isinstance(teacher_scores, Mapping) else dict(enumerate(teacher_scores))
    if not scores:
        raise UserError("no teacher layer scores to recommend pairs from")
    depth = int(teacher_depth) if teacher_depth is not None else max(scores) + 1
    if any(not 0 <= int(i) < depth for i in scores):
        raise UserError(f"teacher layer ids {sorted(scores)} must lie in 0..{depth - 1}")
    student_depth = int(student_depth)
    if student_depth < 1:
        raise UserError(f"student depth must be at least 1, got {student_depth}")
    k = default_num_pairs(student_depth, len(scores)) if k is None else int(k)
    if not 1 <= k <= min(student_depth, len(scores)):
        raise UserError(f"number of layer pairs {k} must be between 1 and {min(student_depth, len(scores))} "
                        f"(student depth {student_depth}, {len(scores)} teacher layers scored)")
    return scores, depth, student_depth, k


def recommend_pairs(teacher_scores: Sequence[float] | Mapping[int, float], student_depth: int, k: int | None = None,
                    teacher_depth: int | None = None) -> tuple[list[int], list[int]]:
    """(student ids, teacher ids) by SpectralKD's rule (module docstring).

    ``teacher_scores`` is one score per teacher layer (list), or ``{layer id: score}`` when only some layers were
    analysed (then ``teacher_depth`` says how deep the teacher is; default: highest id + 1). Ties prefer the
    lower layer id. ``k`` defaults to :func:`default_num_pairs`.
    """
    scores, depth, student_depth, k = _checked(teacher_scores, student_depth, k, teacher_depth)
    top = sorted(sorted(scores, key=lambda i: (-float(scores[i]), int(i)))[:k])
    first = [i for i in top if i < depth / 2]
    second = [i for i in top if i >= depth / 2]
    student = list(range(len(first))) + list(range(student_depth - len(second), student_depth))
    return student, [int(i) for i in first + second]


def stage_pairs(teacher_stages: int, student_stages: int) -> tuple[list[int], list[int]]:
    """Stage models pair stage by stage: 0↔0, 1↔1, ... up to the shallower model."""
    n = min(int(teacher_stages), int(student_stages))
    if n < 1:
        raise UserError(f"stage pairing needs at least one stage on each side (teacher {teacher_stages}, "
                        f"student {student_stages})")
    return list(range(n)), list(range(n))


def is_stage_model(shapes: Sequence[Sequence[int]]) -> bool:
    """Maps that change C×H×W from layer to layer come from a hierarchical (stage) model."""
    return len({tuple(s) for s in shapes}) > 1


def relative_depth(teacher_id: int, teacher_depth: int, student_depth: int) -> int:
    """The student layer at the same relative depth as ``teacher_id``: round((t+1)·S/T) − 1, in 0..S−1."""
    return min(student_depth - 1, max(0, int((teacher_id + 1) * student_depth / teacher_depth + 0.5) - 1))


def depth_matched_pairs(teacher_scores: Sequence[float] | Mapping[int, float], student_depth: int,
                        k: int | None = None, teacher_depth: int | None = None) -> tuple[list[int], list[int]]:
    """(student ids, teacher ids) across architectures: the k best teacher layers at their relative depth.

    Teacher layers are taken in order of falling score (ties: lower id); each claims the student layer at its
    relative depth unless a better one already has it, until k pairs are found (fewer when the scored layers
    cannot reach k different student layers). Pairs are returned in student order.
    """
    scores, depth, student_depth, k = _checked(teacher_scores, student_depth, k, teacher_depth)
    chosen: dict[int, int] = {}
    for t in sorted(scores, key=lambda i: (-float(scores[i]), int(i))):
        chosen.setdefault(relative_depth(int(t), depth, student_depth), int(t))
        if len(chosen) == k:
            break
    order = sorted(chosen)
    return order, [chosen[i] for i in order]


def choose_rule(teacher_shapes: Sequence[Sequence[int]], student_depth: int,
                student_shapes: Sequence[Sequence[int]] | None = None) -> str:
    """``blocks`` (SpectralKD's rule), ``stages`` (stage by stage) or ``relative_depth`` (across architectures).

    Without the student's shapes a stage teacher is paired stage by stage with a student of as many maps and by
    relative depth with any other student; a block teacher uses SpectralKD's rule.
    """
    teacher_stage = is_stage_model(teacher_shapes)
    if student_shapes is None:
        if not teacher_stage:
            return "blocks"
        return "stages" if int(student_depth) == len(teacher_shapes) else "relative_depth"
    student_stage = is_stage_model(student_shapes)
    if teacher_stage and student_stage and len(student_shapes) == len(teacher_shapes):
        return "stages"
    if not teacher_stage and not student_stage:
        return "blocks"
    return "relative_depth"


def recommend_from_layers(layers: Sequence[Mapping], student_depth: int, k: int | None = None,
                          teacher_depth: int | None = None, score: str = "intensity",
                          student_shapes: Sequence[Sequence[int]] | None = None) -> dict:
    """``{"student_ids", "teacher_ids", "rule", "teacher_shapes"[, "student_shapes"]}`` from analysis layer entries
    (``index``, ``shape``, ``intensity``, ...). ``student_shapes`` (C×H×W of every student map, when known) lets
    the rule tell a block student from a stage student; the shapes of the paired layers are returned with the ids."""
    if not layers:
        raise UserError("no analysed layers to recommend pairs from")
    if student_shapes is not None and len(student_shapes) != int(student_depth):
        raise UserError(f"{len(student_shapes)} student map shapes given for a student of depth {student_depth}")
    rule = choose_rule([layer["shape"] for layer in layers], student_depth, student_shapes)
    if rule == "stages":
        ids = [int(layer["index"]) for layer in layers]
        s, t = stage_pairs(len(ids), student_depth)
        t = [ids[i] for i in t]
    else:
        for layer in layers:
            if layer.get(score) is None:
                raise UserError(f"layer {layer.get('index')} has no '{score}' score")
        scores = {int(layer["index"]): float(layer[score]) for layer in layers}
        pick = recommend_pairs if rule == "blocks" else depth_matched_pairs
        s, t = pick(scores, student_depth, k, teacher_depth)
    shape_of = {int(layer["index"]): [int(v) for v in layer["shape"]] for layer in layers}
    rec = {"student_ids": s, "teacher_ids": t, "rule": rule, "teacher_shapes": [shape_of[i] for i in t]}
    if student_shapes is not None:
        rec["student_shapes"] = [[int(v) for v in student_shapes[i]] for i in s]
    return rec


def describe_pairs(rec: Mapping) -> str:
    """``student 4 (192×14×14) <- teacher 1 (224×56×56), ...`` (sizes where known)."""
    def size(shapes, j):
        return f" ({'×'.join(map(str, shapes[j]))})" if shapes and j < len(shapes) else ""

    return ", ".join(f"{s}{size(rec.get('student_shapes'), j)} <- {t}{size(rec.get('teacher_shapes'), j)}"
                     for j, (s, t) in enumerate(zip(rec.get("student_ids", []), rec.get("teacher_ids", []))))


def pairs_from_analysis(path: str | Path, student_depth: int, k: int | None = None,
                        score: str = "intensity") -> tuple[list[int], list[int]]:
    """(student ids, teacher ids) recomputed from a teacher's ``analysis.json`` for a student of any depth.

    The teacher's full depth comes from ``details.json`` beside it when present (only some layers may have been
    analysed), else from the highest analysed index."""

    data = load_analysis(path)
    rec = recommend_from_layers(data["layers"], student_depth, k, data.get("depth"), score)
    return rec["student_ids"], rec["teacher_ids"]


def paper_rule_pairs(teacher_depth: int, student_depth: int) -> tuple[list[int], list[int]]:
    """The paper's fixed DeiT-Tiny ← CaiT-S24 pairing (first 2 + last 6 of 24 teacher blocks ↔ student 0 1 6..11),
    scaled to other depths: the first ``round(2·T/24)`` and last ``round(6·T/24)`` teacher blocks (at least one
    each), to the student's first and last blocks. 12 ↔ 6 gives student 0 3 4 5 ↔ teacher 0 9 10 11."""
    t, s = int(teacher_depth), int(student_depth)
    if t < 2 or s < 2:
        raise UserError(f"the paper rule needs at least 2 teacher and 2 student blocks (got {t} and {s})")
    first = max(1, round(2 * t / 24))
    last = max(1, round(6 * t / 24))
    while first + last > s:
        last = last - 1 if last > first else last
        first = first - 1 if first + last > s and first > 1 else first
    return (list(range(first)) + list(range(s - last, s)),
            list(range(first)) + list(range(t - last, t)))
