"""The cross-resolution study driver: same budget in every variant, only the intended keys differ; summaries."""
import importlib.util
import json

import pytest

from spectralkd.config import load_config
from spectralkd.config.classifier import defaults
from spectralkd.paths import REPO_ROOT


def _driver():
    spec = importlib.util.spec_from_file_location("cross_resolution", REPO_ROOT / "benchmarks" / "cross_resolution.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


study = _driver()


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_variants_share_the_budget_and_differ_only_in_the_distillation():
    cfgs = {v: _flat(load_config(REPO_ROOT / config, ["seed=1"], defaults()))
            for v, (_, config) in study.VARIANTS.items()}
    base = cfgs["none"]
    assert base["model.kwargs.patch_size"] == 8 and base["epochs"] == 8  # 4×4 student maps, the 8-epoch budget
    for v, cfg in cfgs.items():
        differ = {k for k in base if cfg[k] != base[k]}
        assert all(k.startswith("teacher.kwargs.") for k in set(cfg) - set(base)), v
        assert differ <= {"teacher.name", "teacher.checkpoint", "distill.mode", "distill.w_fft",
                          "distill.spatial_align", "distill.student_ids", "distill.teacher_ids"}, (v, differ)
    assert cfgs["logit_kd"]["distill.w_fft"] == 0.0 and cfgs["fourier"]["distill.w_fft"] == 0.2
    for v in ("logit_kd", "fourier", "interpolate"):  # the same logit KD in every distilled variant
        assert (cfgs[v]["distill.mode"], cfgs[v]["distill.alpha"], cfgs[v]["distill.tau"]) == ("soft", 0.9, 1.0)
    assert (cfgs["fourier"]["distill.spatial_align"], cfgs["interpolate"]["distill.spatial_align"]) == \
        ("fourier", "interpolate")
    assert {k: v for k, v in cfgs["fourier"].items() if k != "distill.spatial_align"} == \
        {k: v for k, v in cfgs["interpolate"].items() if k != "distill.spatial_align"}
    assert cfgs["fourier"]["teacher.checkpoint"] == "artifacts/cifar10-teacher/teacher.safetensors"
    assert [study.VARIANTS[v][0] for v in study.VARIANTS] == ["train", "distill", "distill", "distill"]


def test_run_records_and_summary(tmp_path):
    run = tmp_path / "fourier-s0"
    run.mkdir()
    (run / "config.yaml").write_text("epochs: 3\n")
    (run / "log.jsonl").write_text("".join(json.dumps({"epoch": e, "val_top1": t}) + "\n"
                                           for e, t in ((1, 40.0), (2, 47.5), (3, 46.0))))
    assert study.finished(run)
    assert study.summarise(run) == {"test_top1": 46.0, "best_top1": 47.5, "best_epoch": 2, "epochs": 3}
    runs = [{"variant": "fourier", "seed": 0, "test_top1": 46.0, "best_top1": 47.5},
            {"variant": "none", "seed": 0, "test_top1": 40.0, "best_top1": 41.0},
            {"variant": "fourier", "seed": 1, "test_top1": 48.0, "best_top1": 48.5}]
    rows = study.summary(runs)
    assert [r["variant"] for r in rows] == ["none", "fourier"]  # the study's variant order
    assert rows[1]["test_top1"]["mean"] == 47.0 and rows[1]["test_top1"]["std"] == pytest.approx(1.414, abs=1e-3)
    assert rows[0]["test_top1"]["std"] is None
    assert "| fourier | 2 | 47.00 ± 1.41 | 48.00 ± 0.71 | 46.00, 48.00 |" in study.table(rows)
