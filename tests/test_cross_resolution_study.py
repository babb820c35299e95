"""The cross-resolution study driver: one cohort per seed on one base; the members share the budget and differ only
in the distillation keys they name; each solo config equals the base with its member's overrides; result rows."""
import json

import pytest

from conftest import load_benchmark
from spectralkd.config import load_config, merge_config, read_yaml
from spectralkd.config.classifier import defaults
from spectralkd.paths import REPO_ROOT


study = load_benchmark("cross_resolution")
SOLO = {"none": "xres_student_baseline.yaml", "logit_kd": "xres_student_kd.yaml",
        "fourier": "xres_student_fourier.yaml", "interpolate": "xres_student_interpolate.yaml",
        "fourier_centered": "xres_student_fourier_centered.yaml"}


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _members():
    base = load_config(REPO_ROOT / study.BASE, ["seed=1"], defaults())
    return base, {m["name"]: merge_config(base, {k: v for k, v in m.items() if k != "name"}, defaults())
                  for m in read_yaml(REPO_ROOT / study.COHORT)["cohort"]}


def test_members_share_the_budget_and_differ_only_in_the_distillation():
    base, members = _members()
    assert list(members) == ["none", "logit_kd", "fourier", "interpolate", "fourier_centered"] == study.members()
    flat = {v: _flat(c) for v, c in members.items()}
    b = _flat(base)
    assert b["model.kwargs.patch_size"] == 8 and b["epochs"] == 8  # 4×4 student maps, the 8-epoch budget
    assert (b["data.holdout"], b["data.holdout_seed"]) == (5000, 0)  # the validation split chooses, test once
    for v, cfg in flat.items():
        differ = {k for k in b if cfg[k] != b[k]}
        assert differ <= {"distill.mode", "distill.w_fft", "distill.spatial_align"}, (v, differ)
    assert (flat["none"]["distill.mode"], flat["logit_kd"]["distill.w_fft"], flat["fourier"]["distill.w_fft"]) == \
        ("none", 0.0, 0.2)
    for v in ("logit_kd", "fourier", "interpolate"):  # the same logit KD in every distilled variant
        assert (flat[v]["distill.mode"], flat[v]["distill.alpha"], flat[v]["distill.tau"]) == ("soft", 0.9, 1.0)
    assert (flat["fourier"]["distill.spatial_align"], flat["interpolate"]["distill.spatial_align"],
            flat["fourier_centered"]["distill.spatial_align"]) == ("fourier", "interpolate", "fourier_centered")
    assert flat["fourier"]["teacher.checkpoint"] == "artifacts/cifar10-teacher/teacher.safetensors"


@pytest.mark.parametrize("variant", list(SOLO))
def test_each_solo_config_trains_what_its_cohort_member_trains(variant):
    """The solo configs (one command per variant, docs/distill.md) are the cohort members written out."""
    _, members = _members()
    solo = _flat(load_config(REPO_ROOT / "configs" / "cifar10" / SOLO[variant], ["seed=1"], defaults()))
    member = _flat(members[variant])
    if variant == "none":  # `spectralkd train` (no teacher) against the member in mode none: the rest is equal
        solo, member = ({k: v for k, v in d.items() if not k.startswith(("distill.", "teacher."))}
                        for d in (solo, member))
        assert _flat(members[variant])["distill.mode"] == "none"
    assert solo == member


def test_result_rows_and_paired_differences(tmp_path, monkeypatch):
    monkeypatch.setattr(study.Study, "__init__", lambda self, smoke: None)
    s = study.Study(False)
    s.committed = tmp_path
    for seed, (none, fourier) in enumerate(((40.0, 44.0), (41.0, 46.0))):
        for name, top1 in (("none", none), ("fourier", fourier)):
            d = tmp_path / f"seed{seed}" / name
            d.mkdir(parents=True)
            (d / "config.yaml").write_text("epochs: 2\n")
            (d / "log.jsonl").write_text(
                json.dumps({"epoch": 1, "val_top1": 30.0, "train_time_s": 60}) + "\n"
                + json.dumps({"epoch": 2, "val_top1": 35.0, "train_time_s": 60, "test_top1": top1, "test_top5": 90.0})
                + "\n")
    unfinished = tmp_path / "seed0" / "logit_kd"
    unfinished.mkdir()
    (unfinished / "log.jsonl").write_text(json.dumps({"epoch": 1, "val_top1": 30.0}) + "\n")
    assert s.finished(0, "logit_kd") is None  # no test evaluation yet
    import cifar10_kd_v2  # the study v2 driver's rows, shared by this driver

    monkeypatch.setattr(cifar10_kd_v2, "ROOT", tmp_path)
    rows = [study.run_row(seed, name, s.finished(seed, name)) for seed in (0, 1) for name in ("none", "fourier")]
    assert rows[1]["test_top1"] == 44.0 and rows[1]["best_val_epoch"] == 2 and rows[1]["train_minutes"] == 2.0
    p = study.paired(rows, "fourier", "none")
    assert (p["n"], p["mean"], p["diffs"]) == (2, 4.5, [4.0, 5.0])
    half = 12.706 * 0.7071068 / 2 ** 0.5  # t(0.975, 1) · sd / √n, sd of (4, 5)
    assert p["ci95"] == pytest.approx([4.5 - half, 4.5 + half], abs=1e-3)
    summary = study.summarise_variants(rows)
    assert [(r["variant"], r["test_top1_mean"]) for r in summary] == [("none", 40.5), ("fourier", 45.0)]
    assert "| fourier − none | 2 | +4.50 |" in study.table({"summary": summary, "paired": [p]})


def test_paired_plot_is_written(tmp_path):
    rows = [{"variant": v, "seed": s, "test_top1": t} for v, s, t in
            (("a", 0, 50.0), ("b", 0, 49.0), ("a", 1, 52.0), ("b", 1, 50.5), ("a", 2, 51.0))]
    p = study.paired(rows, "a", "b")
    assert p["seeds"] == [0, 1] and p["diffs"] == [1.0, 1.5]  # seed 2 has no b: left out of the pair
    import cifar10_kd_v2

    cifar10_kd_v2.plot_paired({"paired": [p], "runs": rows}, tmp_path / "paired.png")
    assert (tmp_path / "paired.png").stat().st_size > 5000


def test_committed_records_name_no_absolute_path(tmp_path, monkeypatch):
    """Train logs and commands name the repository's files relative to it and the shared data as ../shared/."""
    root = tmp_path / "work" / "repo"
    monkeypatch.setattr(study, "ROOT", root)
    shared = tmp_path / "work" / "shared" / "data" / "c.tar.gz"
    cmd = f"spectralkd distill --data {shared} --out {root}/runs/x --set seed=0"
    assert study.repo_relative(cmd) == "spectralkd distill --data ../shared/data/c.tar.gz --out runs/x --set seed=0"
    d = root / "benchmarks" / "results" / "cross_resolution" / "seed0"
    d.mkdir(parents=True)
    (d / "train.log").write_text(f"distilling on {shared} (45000 train)\n")
    (d / "weights.bin").write_bytes(str(shared).encode())  # not a text record: left alone
    study.make_portable(d)
    assert (d / "train.log").read_text() == "distilling on ../shared/data/c.tar.gz (45000 train)\n"
    assert (d / "weights.bin").read_bytes() == str(shared).encode()


def test_a_started_cohort_keeps_its_own_members(tmp_path, monkeypatch):
    """Seeds 0-1 ran before fourier_centered joined the cohort file: their cohort's four students are complete."""
    monkeypatch.setattr(study.Study, "__init__", lambda self, smoke: None)
    s = study.Study(False)
    s.runs, s.committed = tmp_path / "runs", tmp_path / "committed"
    (s.runs / "seed0").mkdir(parents=True)
    (s.runs / "seed0" / "cohort.yaml").write_text("cohort:\n  - {name: none}\n  - {name: fourier}\n")
    assert s.members(0) == ["none", "fourier"]
    assert s.members(2) == study.members()  # not started: the cohort file's students


def test_tables_show_last_and_best_epoch_and_the_targets():
    result = {"runs": [{"variant": "fourier", "seed": 1, "test_top1": 57.0, "last_val_top1": 57.5, "epochs": 8,
                        "best_val_epoch": 7, "best_val_top1": 57.6},
                       {"variant": "none", "seed": 0, "test_top1": 53.2, "last_val_top1": 53.8, "epochs": 8,
                        "best_val_epoch": 8, "best_val_top1": 53.8}],
              "targets": {"images": 10, "split": "held-out", "layers": [
                  {"teacher_layer": 0, "dropped_ac_energy": 0.4, "bilinear_vs_ideal": 0.6, "centered_vs_ideal": 0.61,
                   "bilinear_vs_centered": 0.3}]}}
    rows = study.runs_table(result).splitlines()
    assert rows[2] == "| none | 0 | 53.20 | 53.80 (epoch 8) | 8 (53.80) |"  # cohort order, not input order
    assert rows[3] == "| fourier | 1 | 57.00 | 57.50 (epoch 8) | 7 (57.60) |"
    assert study.targets_table(result).splitlines()[-1] == "| 0 | 0.400 | 0.600 | 0.610 | 0.300 |"
    assert study.targets_table({"runs": []}) == ""
