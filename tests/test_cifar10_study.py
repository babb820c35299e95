"""The CIFAR-10 study driver: every variant's overrides load into a valid recipe; the seed summary is right."""
import json

import pytest

from conftest import load_benchmark
from spectralkd.config import load_config
from spectralkd.config.classifier import defaults
from spectralkd.paths import REPO_ROOT


study = load_benchmark("cifar10_kd")
REC, PAPER = ([0, 2, 4, 5], [0, 8, 10, 11]), ([0, 3, 4, 5], [0, 9, 10, 11])


@pytest.mark.parametrize("variant", study.VARIANTS)
def test_variant_overrides_give_a_valid_recipe(variant):
    command, config, sets = study.variant_sets(variant, REC, PAPER)
    cfg = load_config(REPO_ROOT / config, [*sets, "epochs=3", "sched.warmup_epochs=1", "seed=1"], defaults())
    assert (cfg["epochs"], cfg["sched"]["warmup_epochs"], cfg["seed"]) == (3, 1, 1)
    assert command == ("train" if variant == "none" else "distill")
    d = cfg["distill"]
    if variant in ("spectralkd", "feature_mse", "spectral_only"):
        assert (d["student_ids"], d["teacher_ids"]) == REC
    if variant == "spectralkd_paper_rule":
        assert (d["student_ids"], d["teacher_ids"]) == PAPER
    expected = {"spectralkd": ("spectral", "soft", 0.9), "feature_mse": ("feature_mse", "soft", 0.9),
                "spectral_only": ("spectral", "fft", 0.0)}
    if variant in expected:
        assert (d["feature_loss"], d["mode"], d["alpha"]) == expected[variant]
    if variant != "none":  # every distilled variant reads the committed teacher
        assert cfg["teacher"]["checkpoint"] == "artifacts/cifar10-teacher/teacher.safetensors"


def test_summary_mean_and_sample_std_over_seeds():
    runs = [{"variant": "none", "seed": 0, "best_top1": 50.0, "last_top1": 49.0, "wall_seconds": 600},
            {"variant": "spectralkd", "seed": 0, "best_top1": 55.5, "last_top1": 55.0, "wall_seconds": 900},
            {"variant": "none", "seed": 1, "best_top1": 53.0, "last_top1": 52.0, "wall_seconds": 660}]
    rows = study.summary(runs)
    assert [r["variant"] for r in rows] == ["none", "spectralkd"]  # the study's variant order
    none = rows[0]
    assert none["best_top1"]["mean"] == 51.5 and none["best_top1"]["std"] == pytest.approx(2.121, abs=1e-3)
    assert none["wall_seconds_mean"] == 630.0 and rows[1]["best_top1"]["std"] is None
    table = study.table(rows)
    assert "| none | 2 | 51.50 ± 2.12 | 50.50 ± 2.12 | 50.00 / 49.00, 53.00 / 52.00 | 10.5 |" in table
    assert "| spectralkd | 1 | 55.50 | 55.00 |" in table


def test_finished_reads_the_configured_epochs(tmp_path):
    (tmp_path / "config.yaml").write_text("epochs: 2\n")
    (tmp_path / "log.jsonl").write_text(json.dumps({"epoch": 1, "val_top1": 10.0}) + "\n")
    assert not study.finished(tmp_path)
    with (tmp_path / "log.jsonl").open("a") as fh:
        fh.write(json.dumps({"epoch": 2, "val_top1": 12.0}) + "\n")
    assert study.finished(tmp_path)
    assert study.summarise(tmp_path) == {"best_top1": 12.0, "best_epoch": 2, "last_top1": 12.0, "epochs": 2}


def test_dynamics_table_splits_layers_by_the_aligned_set():
    def student(label, diffs, aligned):
        m = {"correlation": 0.5, "mean_distance": sum(diffs) / len(diffs)}
        return {"label": label, "measures": {k: m for k in ("intensity", "rms", "entropy", "high_freq_ratio")},
                "layers": [{"student_layer": i, "aligned": i in aligned, "abs_diff": d} for i, d in enumerate(diffs)]}

    cmp = {"students": [student("no KD", [0.1, 0.2, 0.3], []), student("SpectralKD", [0.01, 0.04, 0.02], [0, 2])]}
    rows = study.dynamics_table(cmp).splitlines()
    assert "layers [0, 2]" in rows[0]
    assert rows[2].endswith("| 0.2000 | 0.2000 |")  # no KD: mean of layers 0 and 2, then layer 1
    assert rows[3].endswith("| 0.0150 | 0.0400 |")


def _finished_run(d, epochs, top1):
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(f"epochs: {epochs}\n")
    (d / "log.jsonl").write_text("".join(json.dumps({"epoch": e + 1, "val_top1": top1}) + "\n" for e in range(epochs)))


def test_finished_runs_are_found_in_runs_or_in_their_committed_copy(tmp_path, monkeypatch):
    monkeypatch.setattr(study, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(study, "RESULTS", tmp_path / "results")
    _finished_run(tmp_path / "results" / "cifar10_kd" / "none-s0", 3, 50.0)  # a new checkout: committed copy only
    assert study.run_record("none-s0") == tmp_path / "results" / "cifar10_kd" / "none-s0"
    _finished_run(tmp_path / "runs" / "none-s0", 3, 51.0)  # this machine's run wins
    assert study.run_record("none-s0") == tmp_path / "runs" / "none-s0"
    (tmp_path / "runs" / "logit_kd-s0").mkdir()  # started, nothing finished: not a result
    assert study.run_record("logit_kd-s0") is None and study.run_record("spectralkd-s0") is None


def test_commands_keep_every_session_and_put_this_one_last(monkeypatch):
    monkeypatch.setattr(study.sys, "argv", ["cifar10_kd.py", "--seeds", "0", "1", "2"])
    this = "python benchmarks/cifar10_kd.py --seeds 0 1 2"
    assert study.commands({"command": "python benchmarks/cifar10_kd.py --seeds 0 1"}) == [
        "python benchmarks/cifar10_kd.py --seeds 0 1", this]
    assert study.commands({"commands": [this, "b"]}) == ["b", this]
    assert study.commands({}) == [this]


def _v2():
    return load_benchmark("cifar10_kd_v2")


def test_v2_paired_difference_and_t_interval_by_hand():
    v2 = _v2()
    rows = [{"variant": v, "seed": s, "test_top1": x} for v, s, x in [
        ("a", 0, 60.0), ("b", 0, 59.0), ("a", 1, 61.0), ("b", 1, 59.0), ("a", 2, 60.5), ("b", 2, 60.5),
        ("b", 3, 50.0)]]  # seed 3 has no 'a': not paired
    p = v2.paired(rows, "a", "b")
    # diffs 1, 2, 0: mean 1, sd 1, n 3 → half-width t(0.975, 2)·1/√3 = 4.303/1.732 = 2.484
    assert p["n"] == 3 and p["diffs"] == [1.0, 2.0, 0.0] and p["mean"] == 1.0 and p["sd"] == 1.0
    assert p["ci95"] == [round(1 - 4.303 / 3 ** 0.5, 3), round(1 + 4.303 / 3 ** 0.5, 3)] and p["a_wins"] == 2
    assert v2.paired(rows[:2], "a", "b") is None  # one seed: no interval


def test_v2_cohorts_load_into_valid_recipes():
    from spectralkd.config import merge_config
    from spectralkd.distill.cohort import read_cohort

    base = load_config(v2_base := _v2().BASE, [], defaults())
    assert base["data"]["holdout"] == 5000 and base["epochs"] == 3 and v2_base.is_file()
    for path in _v2().COHORTS.values():
        for member in read_cohort(path):
            cfg = merge_config(base, {k: v for k, v in member.items() if k != "name"}, defaults())
            assert cfg["distill"]["student_ids"] == [0, 1, 4, 5] and cfg["distill"]["teacher_ids"] == [0, 1, 10, 11]
    names = [m["name"] for m in read_cohort(_v2().COHORTS["full"])]
    assert names == ["none", "logit_kd", "spectralkd", "feature_mse", "feature_mse_matched", "magnitude", "band_low",
                     "band_high"]
    assert [m["name"] for m in read_cohort(_v2().COHORTS["core"])] == ["none", "logit_kd", "spectralkd", "feature_mse"]
    none = merge_config(base, {k: v for k, v in read_cohort(_v2().COHORTS["core"])[0].items() if k != "name"},
                        defaults())
    assert none["distill"]["mode"] == "none" and base["monitor"] == {"every": 1, "probe_images": 64}
