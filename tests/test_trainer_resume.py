"""A run interrupted and resumed equals the uninterrupted run; resume can extend epochs; NaN keeps the checkpoint."""
import pytest
import torch
from conftest import run_cli

from spectralkd.distill import losses
from spectralkd.runtime.runlog import read_jsonl
from spectralkd.paths import REPO_ROOT

DISTILL = REPO_ROOT / "configs" / "smoke" / "distill.yaml"
# EMA and Mixup on, so their state and randomness are covered too; warmup + cosine span both epochs.
SETTINGS = ["--set", "epochs=2", "--set", "max_steps_per_epoch=4", "--set", "max_val_batches=1",
            "--set", "ema.enabled=true", "--set", "ema.decay=0.9", "--set", "aug.mixup=0.2",
            "--set", "aug.cutmix=0.5", "--set", "sched.warmup_epochs=1"]
TIMING = {"img_per_s", "train_time_s"}


def _nested_equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_nested_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_nested_equal(x, y) for x, y in zip(a, b))
    return a == b


def _args(data, out, *extra):
    return ("distill", "--config", DISTILL, "--data", data, "--out", out, *SETTINGS, *extra)


def test_resume_reproduces_uninterrupted_run_and_extends(tmp_path, synthetic_root):
    straight, split = tmp_path / "straight", tmp_path / "split"
    code, _, err = run_cli(*_args(synthetic_root, straight))
    assert code == 0, err
    code, _, err = run_cli(*_args(synthetic_root, split, "--set", "stop_after_epoch=1"))
    assert code == 0, err
    assert "stopped after epoch 1 of 2" in err
    assert torch.load(split / "last.pt", weights_only=True)["epoch"] == 1
    code, _, err = run_cli("distill", "--resume", split, "--set", "stop_after_epoch=null")
    assert code == 0, err

    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(split / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for key in ("model", "ema", "optimizer", "scaler", "best"):
        assert _nested_equal(a[key], b[key]), key
    log_a, log_b = read_jsonl(straight / "log.jsonl"), read_jsonl(split / "log.jsonl")
    assert [r["epoch"] for r in log_b] == [1, 2]
    for ra, rb in zip(log_a, log_b):
        assert {k: v for k, v in ra.items() if k not in TIMING} == {k: v for k, v in rb.items() if k not in TIMING}
    assert "ema_val_top1" in log_a[0]

    # Extending a finished run: one more epoch, a new cosine horizon, the log continues without repeats.
    code, _, err = run_cli("distill", "--resume", straight, "--set", "epochs=3")
    assert code == 0, err
    assert [r["epoch"] for r in read_jsonl(straight / "log.jsonl")] == [1, 2, 3]
    code, _, err = run_cli("distill", "--resume", straight)
    assert code == 0 and "already finished 3 of 3 epochs" in err


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, synthetic_root, monkeypatch):
    calls = {"n": 0}
    original = losses.SpectralKDLoss.forward

    def poisoned(self, *args, **kwargs):
        calls["n"] += 1
        total, parts = original(self, *args, **kwargs)
        if calls["n"] > 4:  # epoch 2 (4 steps per epoch)
            total = total * float("nan")
        return total, parts

    monkeypatch.setattr(losses.SpectralKDLoss, "forward", poisoned)
    run = tmp_path / "run"
    code, _, err = run_cli(*_args(synthetic_root, run))
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert "non-finite" in line and "epoch 2 step 1" in line and "Traceback" not in err
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values())
    assert [r["epoch"] for r in read_jsonl(run / "log.jsonl")] == [1]
    monkeypatch.setattr(losses.SpectralKDLoss, "forward", original)
    code, _, err = run_cli("distill", "--resume", run)  # the intact checkpoint continues
    assert code == 0, err
    assert [r["epoch"] for r in read_jsonl(run / "log.jsonl")] == [1, 2]


@pytest.mark.parametrize("change, message", [
    ("model.kwargs.depth=3", "config key 'model.kwargs' differs from the saved run"),
    ("distill.teacher_ids=[0,3]", "config key 'distill.teacher_ids' differs"),
])
def test_resume_with_incompatible_config_is_refused_and_changes_nothing(tmp_path, synthetic_root, change, message):
    run = tmp_path / "run"
    code, _, err = run_cli(*_args(synthetic_root, run, "--set", "epochs=1"))
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    code, _, err = run_cli("distill", "--resume", run, "--set", change)
    assert code == 2 and message in err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
