"""Layer-pair recommendation: the published CaiT-S24 → DeiT-Tiny pairing, stage models, validation."""
import json

import pytest

from spectralkd.analysis.recommend import (
    default_num_pairs, pairs_from_analysis, recommend_from_layers, recommend_pairs, stage_pairs,
)
from spectralkd.errors import UserError


def cait_like_scores():
    # 24 layers; the top 8 are 0, 1 and 18..23 (others lower, with a bump in the middle that must not win)
    scores = [0.5] * 24
    scores[0], scores[1] = 2.0, 1.9
    for i in range(18, 24):
        scores[i] = 1.0 + 0.1 * (i - 18)
    scores[12] = 0.9
    return scores


def test_published_pairing_deit_tiny_from_cait_s24():
    student, teacher = recommend_pairs(cait_like_scores(), student_depth=12, k=8)
    assert student == [0, 1, 6, 7, 8, 9, 10, 11]
    assert teacher == [0, 1, 18, 19, 20, 21, 22, 23]
    assert default_num_pairs(12, 24) == 8
    assert recommend_pairs(cait_like_scores(), 12) == (student, teacher)


def test_halves_split_and_ties():
    # top 3 of 6 layers: 2 (first half), 3 and 5 (second half) -> student 0 and the last two of 4
    assert recommend_pairs([0, 1, 5, 4, 0, 4.5], 4, 3) == ([0, 2, 3], [2, 3, 5])
    # equal scores prefer lower layer ids
    assert recommend_pairs([1, 1, 1, 1], 2, 2) == ([0, 1], [0, 1])
    # only some teacher layers scored: {id: score} with the teacher's depth
    assert recommend_pairs({0: 3.0, 10: 2.0, 11: 1.0}, 6, 2, teacher_depth=12) == ([0, 5], [0, 10])


def test_stage_models_pair_stage_by_stage():
    assert stage_pairs(4, 4) == ([0, 1, 2, 3], [0, 1, 2, 3])
    layers = [{"index": i, "shape": (96 * 2 ** i, 56 // 2 ** i, 56 // 2 ** i), "intensity": float(i)} for i in range(4)]
    rec = recommend_from_layers(layers, 4)
    assert (rec["student_ids"], rec["teacher_ids"], rec["rule"]) == ([0, 1, 2, 3], [0, 1, 2, 3], "stages")


def test_bad_requests():
    with pytest.raises(UserError, match="between 1 and 12"):
        recommend_pairs(cait_like_scores(), 12, 13)
    with pytest.raises(UserError, match="student depth"):
        recommend_pairs(cait_like_scores(), 0, 1)
    with pytest.raises(UserError, match="no teacher layer scores"):
        recommend_pairs([], 4, 1)


def test_pairs_from_analysis_file(tmp_path):
    layers = [{"index": i, "shape": [384, 14, 14], "intensity": s} for i, s in enumerate(cait_like_scores())]
    (tmp_path / "analysis.json").write_text(json.dumps({"model": "cait_s24_224", "layers": layers}))
    assert pairs_from_analysis(tmp_path, 12, 8) == ([0, 1, 6, 7, 8, 9, 10, 11], [0, 1, 18, 19, 20, 21, 22, 23])
    assert pairs_from_analysis(tmp_path / "analysis.json", 6, 4) == ([0, 1, 4, 5], [0, 1, 22, 23])
    # only layers 0..11 of a 24-layer teacher analysed: layer 10 is in the teacher's first half only if the
    # depth (24, from details.json) is known; without it the depth would be taken as 12
    part = [dict(layer, intensity=3.0) if layer["index"] == 10 else layer for layer in layers[:12]]
    (tmp_path / "analysis.json").write_text(json.dumps({"model": "cait_s24_224", "layers": part}))
    assert pairs_from_analysis(tmp_path, 6, 3) == ([0, 1, 5], [0, 1, 10])
    (tmp_path / "details.json").write_text(json.dumps({"teacher_depth": 24}))
    assert pairs_from_analysis(tmp_path, 6, 3) == ([0, 1, 2], [0, 1, 10])
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UserError, match="bad.json"):
        pairs_from_analysis(tmp_path / "bad.json", 12)
