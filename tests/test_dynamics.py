"""Spectral dynamics over training: `monitor` records the student's per-layer measures on a fixed probe batch into
dynamics.jsonl (epoch 0 = the initial weights), resuming neither repeats nor loses records, monitoring does not change
training, and `compare` on run directories turns the records into per-epoch similarity numbers and a figure."""
import json
import math

import numpy as np
import pytest
import timm
import torch
import yaml
from conftest import run_cli
from PIL import Image

from spectralkd.data import holdout_split, labelled_split
from spectralkd.paths import REPO_ROOT
from spectralkd.runtime.runlog import read_jsonl
from spectralkd.spectral import channel_entropy, high_frequency_ratio

DISTILL = REPO_ROOT / "configs" / "smoke" / "distill.yaml"
STUDENT = dict(img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=2)
# fp32 so that a resumed run's measures equal the uninterrupted run's to the last digit.
BASE = ["--set", "precision=fp32", "--set", "epochs=3", "--set", "max_steps_per_epoch=2", "--set",
        "max_val_batches=1", "--set", "data.holdout=30"]
MONITOR = ["--set", "monitor.every=2", "--set", "monitor.probe_images=12"]
TIMING = {"img_per_s", "train_time_s", "measure_s"}


def _distill(data, out, *extra):
    code, _, err = run_cli("distill", "--config", DISTILL, "--data", data, "--out", out, *BASE, *extra)
    assert code == 0, err
    return err


def _untimed(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, synthetic_root):
    """A monitored run straight through, the same run stopped after epoch 2 and resumed, and an unmonitored run."""
    root = tmp_path_factory.mktemp("dyn")
    _distill(synthetic_root, root / "straight", *MONITOR)
    _distill(synthetic_root, root / "split", *MONITOR, "--set", "stop_after_epoch=2")
    _distill(synthetic_root, root / "plain")
    return root


def test_records_at_the_cadence_with_every_block(runs):
    records = read_jsonl(runs / "straight" / "dynamics.jsonl")
    assert [r["epoch"] for r in records] == [0, 2, 3]  # epoch 0, every 2nd, and the last
    for r in records:
        assert r["split"] == "holdout" and r["holdout"] == 30 and r["holdout_seed"] == 0
        assert r["probe_images"] == 12 and r["weights"] == "model" and r["aligned_layers"] == [0, 1]
        assert [x["index"] for x in r["layers"]] == [0, 1]  # every block of the 2-block student
        assert all(x["shape"] == [32, 4, 4] for x in r["layers"])
    # training moves the weights: the curves of epoch 0 and epoch 3 differ
    assert records[0]["layers"][0]["intensity"] != records[-1]["layers"][0]["intensity"]


def _probe(data, count=12):
    """The probe batch by hand: the 30 held-out training images, first of each class in turn, as normalised tensors
    (the images are 32 px, so the evaluation resize/crop to 32 px leaves them as they are)."""
    train, _, _ = labelled_split(data, "train")
    _, held = holdout_split(train, 30, 0)
    seen, keyed = {}, []
    for i, (_, label) in enumerate(held):
        keyed.append(((seen.get(label, 0), label), i))
        seen[label] = seen.get(label, 0) + 1
    chosen = [held[i][0] for _, i in sorted(keyed)[:count]]
    arrays = [np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255.0 for p in chosen]
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return (x - 0.5) / 0.25


def test_epoch_zero_equals_an_independent_measurement_of_the_initial_weights(runs, synthetic_root):
    torch.manual_seed(0)  # the trainer seeds with the config's seed (0) right before creating the student
    model = timm.create_model("deit_tiny_patch16_224", num_classes=10, **STUDENT).eval()
    with torch.no_grad():
        maps = model.forward_intermediates(_probe(synthetic_root), indices=[0, 1], output_fmt="NCHW",
                                           intermediates_only=True)
    entropies = channel_entropy(maps, bins=100)  # one histogram range over both layers, as analyze uses
    (first, *_) = read_jsonl(runs / "straight" / "dynamics.jsonl")
    assert first["epoch"] == 0
    for layer, x, entropy in zip(first["layers"], maps, entropies):
        a = x.double().numpy()
        intensity = (np.abs(np.fft.fft(a, axis=1)) / a.shape[1]).mean()  # mean over k, b, h, w of |FFT_C| / C
        assert layer["intensity"] == pytest.approx(intensity, rel=1e-5)
        assert layer["rms"] == pytest.approx(math.sqrt((a ** 2).mean()), rel=1e-5)
        assert layer["entropy"] == pytest.approx(float(entropy), rel=1e-5)
        assert layer["high_freq_ratio"] == pytest.approx(high_frequency_ratio(x), rel=1e-5)


def test_resume_neither_repeats_nor_loses_records_and_monitoring_changes_no_training(runs, synthetic_root):
    split = runs / "split"
    assert [r["epoch"] for r in read_jsonl(split / "dynamics.jsonl")] == [0, 2]
    # A kill after epoch 3's record was written but before its checkpoint: the resume must drop it and re-measure.
    bogus = dict(read_jsonl(split / "dynamics.jsonl")[-1], epoch=3)
    with (split / "dynamics.jsonl").open("a") as handle:
        handle.write(json.dumps(bogus) + "\n")
    code, _, err = run_cli("distill", "--resume", split, "--set", "stop_after_epoch=null")
    assert code == 0, err
    resumed, straight = read_jsonl(split / "dynamics.jsonl"), read_jsonl(runs / "straight" / "dynamics.jsonl")
    assert [r["epoch"] for r in resumed] == [0, 2, 3]
    assert _untimed(resumed) == _untimed(straight)
    # Measuring draws no random numbers and leaves the model as it was: the unmonitored run trains the same.
    assert _untimed(read_jsonl(runs / "plain" / "log.jsonl")) == _untimed(read_jsonl(runs / "straight" / "log.jsonl"))
    assert not (runs / "plain" / "dynamics.jsonl").exists()


def test_monitor_every_may_change_on_resume_but_not_the_probe(runs, tmp_path):
    code, _, err = run_cli("distill", "--resume", runs / "straight", "--set", "monitor.probe_images=8")
    assert code == 2 and "config key 'monitor.probe_images' differs from the saved run (12 → 8)" in err, err
    code, _, err = run_cli("distill", "--resume", runs / "straight", "--set", "monitor.every=1")
    assert code == 0 and "already finished 3 of 3 epochs" in err, err


@pytest.mark.parametrize("setting, message", [
    ("monitor.every=-1", "config key 'monitor.every': -1 is not allowed; expected an integer ≥ 0"),
    ("monitor.every=1.5", "config key 'monitor.every': 1.5 is not allowed; expected an integer ≥ 0"),
    ("monitor.probe_images=0", "config key 'monitor.probe_images': 0 is not allowed; expected an integer ≥ 1"),
    ("monitor=5", "config key 'monitor': 5 is not allowed; expected a mapping with keys every, probe_images"),
])
def test_a_bad_monitor_value_is_one_line(tmp_path, synthetic_root, setting, message):
    code, _, err = run_cli("distill", "--config", DISTILL, "--data", synthetic_root, "--out", tmp_path / "r",
                           "--set", setting)
    assert code == 2 and err.strip().splitlines() == [f"spectralkd distill: error: {message}"], err
    assert not (tmp_path / "r").exists()


def test_cohort_students_each_record_their_own_dynamics(tmp_path, synthetic_root):
    cohort = tmp_path / "cohort.yaml"
    cohort.write_text(yaml.safe_dump({"cohort": [{"name": "spec"},
                                                 {"name": "logit", "distill": {"w_fft": 0.0}}]}))
    code, _, err = run_cli("distill", "--config", DISTILL, "--data", synthetic_root, "--cohort", cohort, "--out",
                           tmp_path / "c", *BASE, "--set", "epochs=1", "--set", "monitor.every=1")
    assert code == 0, err
    spec, logit = (read_jsonl(tmp_path / "c" / n / "dynamics.jsonl") for n in ("spec", "logit"))
    assert [r["epoch"] for r in spec] == [r["epoch"] for r in logit] == [0, 1]
    assert spec[0]["layers"] == logit[0]["layers"]  # same seed, same initial student, same probe
    assert spec[1]["layers"] != logit[1]["layers"]  # different objectives moved them differently
    assert spec[0]["aligned_layers"] == [0, 1] and logit[0]["aligned_layers"] is None


def _expected_similarity(student: list[float], teacher: list[float]) -> tuple[float, float]:
    """(Pearson correlation, mean |difference| / teacher mean) on a grid of as many relative depths as the longer."""
    n = max(len(student), len(teacher))
    grid = np.linspace(0, 1, n)
    s = np.interp(grid, np.linspace(0, 1, len(student)), student)
    t = np.interp(grid, np.linspace(0, 1, len(teacher)), teacher)
    return float(np.corrcoef(s, t)[0, 1]), float(np.abs(s - t).mean() / np.abs(t).mean())


def test_compare_on_run_directories_gives_per_epoch_numbers_and_a_figure(runs, tmp_path, cli):
    teacher = {"model": "teacher", "num_images": 4, "spectra": {}, "recommended": {},
               "layers": [{"index": i, "shape": [64, 4, 4], "intensity": v, "rms": 1.0 + v, "entropy": 3.0 + v,
                           "svd_rank_99": 3.0, "high_freq_ratio": 0.5 + v}
                          for i, v in enumerate([0.02, 0.05, 0.04, 0.08])]}
    (tmp_path / "t.json").write_text(json.dumps(teacher))
    out = tmp_path / "cmp"
    code, stdout, err = cli("compare", tmp_path / "t.json", runs / "straight", runs / "plain", "--num-images", "8",
                            "--out", out, "--no-progress")
    assert code == 0, err
    assert "straight: over training (3 recorded epochs), relative intensity distance" in stdout
    res = json.loads((out / "compare.json").read_text())
    with_dyn, without = res["students"]
    assert "dynamics" not in without  # no monitor, no dynamics
    dyn = with_dyn["dynamics"]
    assert dyn["split"] == "holdout" and dyn["probe_images"] == 12 and dyn["depth"] == 2
    assert [e["epoch"] for e in dyn["epochs"]] == [0, 2, 3]
    t_int = [x["intensity"] for x in teacher["layers"]]
    for e, record in zip(dyn["epochs"], read_jsonl(runs / "straight" / "dynamics.jsonl")):
        s_int = [x["intensity"] for x in record["layers"]]
        corr, rel = _expected_similarity(s_int, t_int)
        assert e["measures"]["intensity"]["correlation"] == pytest.approx(corr, abs=1e-9)
        assert e["measures"]["intensity"]["relative_distance"] == pytest.approx(rel, rel=1e-9)
        # layers 0 and 1 were aligned with teacher layers 1 and 3 (the run's pairs)
        aligned = np.mean([abs(s_int[0] - t_int[1]), abs(s_int[1] - t_int[3])])
        assert e["intensity_distance"]["aligned"] == pytest.approx(aligned, rel=1e-9)
    png = out / "dynamics.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.html").read_text()
    assert "<h2>Over training</h2>" in report and "students over training epochs (dynamics.jsonl)" in report


def test_a_damaged_dynamics_file_is_one_line(runs, tmp_path, cli):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(runs / "plain", run)
    (run / "dynamics.jsonl").write_text(json.dumps({"epoch": 0, "layers": [{"index": 0, "intensity": "x"}]}) + "\n")
    teacher = tmp_path / "t.json"
    teacher.write_text(json.dumps({"model": "t", "layers": [{"index": i, "shape": [8, 4, 4], "intensity": 0.1 * i,
                                                             "rms": 1.0, "entropy": 2.0 + i, "high_freq_ratio": 0.5}
                                                            for i in range(3)]}))
    code, _, err = cli("compare", teacher, run, "--num-images", "4", "--out", tmp_path / "cmp", "--no-progress")
    assert code == 2 and "dynamics.jsonl: record 1 is not a dynamics record" in err and "Traceback" not in err, err
