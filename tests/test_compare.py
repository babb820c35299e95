import json
import math

import numpy as np
import pytest
import torch

from spectralkd.analysis.compare.measures import compare, compare_pair, depth_matched, load_analysis
from spectralkd.runtime.checkpoint import save_weights
from spectralkd.errors import UserError
from spectralkd.features import create_model


def fake_analysis(intensity, model="m", rms=None, entropy=None, hf=None, channels=8, spectra=None):
    n = len(intensity)
    layers = [{"index": i, "shape": [channels, 4, 4], "intensity": float(intensity[i]),
               "rms": float((rms or intensity)[i]), "entropy": float((entropy or intensity)[i]),
               "svd_rank_99": 3.0, "high_freq_ratio": float((hf or intensity)[i])} for i in range(n)]
    spectra = spectra or {str(i): list(np.linspace(1.0, 0.1, channels // 2) * (i + 1)) for i in range(n)}
    return {"model": model, "num_images": 4, "layers": layers, "spectra": spectra, "recommended": {}}


def test_identical_curves_correlate_perfectly_with_zero_distance():
    a = fake_analysis([0.1, 0.3, 0.2, 0.5])
    res = compare_pair(a, a)
    for m in res["measures"].values():
        assert m["correlation"] == pytest.approx(1.0) and m["mean_distance"] == pytest.approx(0.0, abs=1e-12)
    assert all(s["correlation"] == pytest.approx(1.0) and s["mean_distance"] == 0 for s in res["spectra"])


def test_shifted_curve_has_the_shift_as_distance():
    t = fake_analysis([0.1, 0.3, 0.2, 0.5])
    s = fake_analysis([0.35, 0.55, 0.45, 0.75])  # teacher + 0.25
    res = compare_pair(t, s)["measures"]["intensity"]
    assert res["correlation"] == pytest.approx(1.0)
    assert res["mean_distance"] == pytest.approx(0.25)
    assert res["relative_distance"] == pytest.approx(0.25 / np.mean([0.1, 0.3, 0.2, 0.5]))
    flipped = fake_analysis([0.5, 0.2, 0.3, 0.1])
    assert compare_pair(t, flipped)["measures"]["intensity"]["correlation"] < 0


def test_different_depths_meet_at_relative_depth():
    # teacher: 9 layers of y = depth², student: 3 layers sampled at the same relative depths 0, 0.5, 1
    t = fake_analysis([(i / 8) ** 2 for i in range(9)])
    s = fake_analysis([0.0, 0.25, 1.0])
    res = compare_pair(t, s)
    # the student curve is resampled linearly between its 3 points; at depth 1/8 it is 0.0625, the teacher 1/64
    x = np.linspace(0, 1, 9)
    expected = np.abs(np.interp(x, [0, 0.5, 1], [0, 0.25, 1]) - x**2).mean()
    assert res["measures"]["intensity"]["mean_distance"] == pytest.approx(expected)
    assert depth_matched([0, 1, 2], list(range(9))) == [(0, 0), (1, 4), (2, 8)]


def test_aligned_and_not_aligned_layers_split():
    t = fake_analysis([1.0, 2.0, 3.0, 4.0, 5.0])
    s = fake_analysis([1.0, 9.0, 5.0])
    res = compare_pair(t, s, {"student_ids": [0, 2], "teacher_ids": [0, 4]})
    rows = {r["student_layer"]: r for r in res["layers"]}
    assert rows[0]["aligned"] and rows[0]["teacher_intensity"] == 1.0 and rows[0]["abs_diff"] == 0
    assert rows[2]["aligned"] and rows[2]["teacher_layer"] == 4 and rows[2]["abs_diff"] == 0
    # student layer 1 sits at relative depth 0.5 = teacher layer 2 (value 3.0)
    assert not rows[1]["aligned"] and rows[1]["teacher_intensity"] == 3.0 and rows[1]["abs_diff"] == 6.0
    assert res["intensity_distance"] == {"aligned": 0.0, "not_aligned": 6.0}
    assert [(p["student_layer"], p["teacher_layer"]) for p in res["spectra"]] == [(0, 0), (2, 4)]


def test_spectra_of_different_widths_are_resampled():
    # a spectrum that is a function of normalised frequency gives the same curve at 16 and 32 channels
    f16, f32 = np.arange(8) / 16, np.arange(16) / 32
    t = fake_analysis([1.0, 2.0], channels=32, spectra={"0": list(1 - f32), "1": list(1 - f32)})
    s = fake_analysis([1.0, 2.0], channels=16, spectra={"0": list(1 - f16), "1": list(2 - 2 * f16)})
    res = compare_pair(t, s)["spectra"]
    assert res[0]["correlation"] == pytest.approx(1.0) and res[0]["mean_distance"] < 0.01
    assert res[1]["correlation"] == pytest.approx(1.0) and res[1]["mean_distance"] > 0.5


def test_compare_needs_a_teacher_and_a_student(tmp_path):
    with pytest.raises(UserError, match="at least two"):
        compare([fake_analysis([1, 2])], ["t"])
    (tmp_path / "bad.json").write_text('{"layers": 3}')
    with pytest.raises(UserError, match="not an analysis.json"):
        load_analysis(tmp_path / "bad.json")


def test_cli_on_analysis_files_writes_json_and_report(tmp_path, cli):
    t, s = tmp_path / "t.json", tmp_path / "s.json"
    t.write_text(json.dumps(fake_analysis([0.1, 0.3, 0.2, 0.5], "teacher")))
    s.write_text(json.dumps(fake_analysis([0.35, 0.55, 0.45, 0.75], "student")))
    code, out, err = cli("compare", t, s, "--labels", "T", "S", "--out", tmp_path / "cmp")
    assert code == 0, err
    res = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert res["students"][0]["measures"]["intensity"]["mean_distance"] == pytest.approx(0.25)
    page = (tmp_path / "cmp" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "S" in page
    code, _, err = cli("compare", t, "--out", tmp_path / "x")
    assert code == 2 and "at least two" in err and "Traceback" not in err


def test_cli_analyses_a_run_directory(tmp_path, cli, synthetic_root):
    kwargs = dict(img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=2, num_classes=10)
    torch.manual_seed(0)
    model = create_model("deit_tiny_patch16_224", model_kwargs=kwargs)
    run = tmp_path / "run"
    card = {"model": "deit_tiny_patch16_224", "model_kwargs": kwargs, "top1": 10.0,
            "data": {"path": str(synthetic_root), "input_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3,
                     "crop_pct": 1.0},
            "config": {"teacher": {"name": "cait_xxs24_224"}, "distill": {"student_ids": [1], "teacher_ids": [3]}}}
    save_weights(run / "best.safetensors", model.state_dict(), card)
    t = tmp_path / "t.json"
    t.write_text(json.dumps(fake_analysis([0.1, 0.3, 0.2, 0.5], "teacher", channels=64)))
    code, out, err = cli("compare", t, run, "--num-images", "8", "--out", tmp_path / "cmp", "--no-progress")
    assert code == 0, err
    res = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    student = res["students"][0]
    assert student["pairs"] == {"student_ids": [1], "teacher_ids": [3]} and student["depth"] == 2
    assert [r["aligned"] for r in student["layers"]] == [False, True]
    assert math.isfinite(student["measures"]["intensity"]["mean_distance"])
    assert (tmp_path / "cmp" / "analyses" / "1-run" / "analysis.json").is_file()


def test_run_pairs_only_where_a_feature_term_was_trained():
    from spectralkd.analysis.compare.pipeline import _run_pairs

    cfg = {"teacher": {"name": "cait_xxs24_224"},
           "distill": {"mode": "soft", "beta": 1.0, "w_fft": 0.0, "student_ids": [0, 5], "teacher_ids": [0, 11]}}
    # logit KD: the trainer's card says no pairs, although the recipe lists ids for its unused feature term
    assert _run_pairs({"pairs": None, "config": cfg}) is None
    assert _run_pairs({"pairs": {"student_ids": [0, 5], "teacher_ids": [1, 11]}, "config": cfg}) == \
        {"student_ids": [0, 5], "teacher_ids": [1, 11]}
    # a card without the key (another writer): the config decides, and only with the term on
    assert _run_pairs({"config": cfg}) is None
    on = {**cfg, "distill": {**cfg["distill"], "w_fft": 0.2}}
    assert _run_pairs({"config": on}) == {"student_ids": [0, 5], "teacher_ids": [0, 11]}


def test_each_student_keeps_one_colour_across_spectra_panels(tmp_path, monkeypatch):
    from spectralkd.analysis.compare import plots as compare_plots

    figures = []
    monkeypatch.setattr(compare_plots.plt, "close", figures.append)
    t, a, b = fake_analysis([1.0, 2.0, 3.0, 4.0]), fake_analysis([1.0, 2.0]), fake_analysis([1.0, 2.0])
    # student A is matched by depth (teacher layers 0 and 3); student B only at teacher layer 1
    compare_plots.spectra_plot([t, a, b], ["T", "A", "B"], tmp_path / "s.png",
                               [None, None, {"student_ids": [0], "teacher_ids": [1]}])
    colours = {}
    for ax in figures[0].axes:
        for line in ax.get_lines():
            colours.setdefault(line.get_label().split()[0], set()).add(line.get_color())
    # B is drawn alone in its panel, yet keeps its own colour rather than taking A's
    assert colours["T"] == {"black"} and len(colours["A"]) == len(colours["B"]) == 1
    assert colours["A"] != colours["B"]


def test_cli_names_a_folder_that_is_neither_analysis_nor_run(tmp_path, cli):
    t = tmp_path / "t.json"
    t.write_text(json.dumps(fake_analysis([1.0, 2.0])))
    (tmp_path / "empty").mkdir()
    code, _, err = cli("compare", t, tmp_path / "empty", "--out", tmp_path / "cmp")
    assert code == 2 and "empty is a folder without analysis.json" in err and "Traceback" not in err
    assert not (tmp_path / "cmp" / "compare.json").exists()
