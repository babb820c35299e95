"""The run object both trainers share (spectralkd.runtime.run): restart after a failure before the first
checkpoint, the folder lock, clean-up after a kill, consistent model cards, the non-finite stop, and the SR CLI's
--resume RUN_DIR. Plus: `spectralkd --help` stays light (no torch import)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import run_cli

from spectralkd.distill import losses
from spectralkd.errors import UserError
from spectralkd.paths import REPO_ROOT
from spectralkd.runtime.checkpoint import card_path, load_weights, save_weights
from spectralkd.runtime.distributed import DistEnv
from spectralkd.runtime.run import NonFiniteLoss, Run, RunLock, changed_keys
from spectralkd.runtime.runlog import read_jsonl

DISTILL = REPO_ROOT / "configs" / "smoke" / "distill.yaml"
FAST = ["--set", "max_steps_per_epoch=2", "--set", "max_val_batches=1"]


def _distill(data, out, *extra):
    return run_cli("distill", "--config", DISTILL, "--data", data, "--out", out, *FAST, *extra)


def _poison_after(monkeypatch, calls_ok: int):
    """Make the loss NaN after ``calls_ok`` forward calls."""
    calls = {"n": 0}
    original = losses.SpectralKDLoss.forward

    def poisoned(self, *args, **kwargs):
        calls["n"] += 1
        total, parts = original(self, *args, **kwargs)
        return (total * float("nan") if calls["n"] > calls_ok else total), parts

    monkeypatch.setattr(losses.SpectralKDLoss, "forward", poisoned)
    return original


def test_run_that_failed_before_its_first_checkpoint_is_restartable(tmp_path, synthetic_root, monkeypatch):
    run_dir = tmp_path / "run"
    original = _poison_after(monkeypatch, 0)  # the very first step fails: no checkpoint is ever written
    code, _, err = _distill(synthetic_root, run_dir)
    assert code == 2 and "non-finite" in err.strip().splitlines()[-1]
    assert (run_dir / "config.yaml").is_file() and not (run_dir / "last.pt").exists()
    monkeypatch.setattr(losses.SpectralKDLoss, "forward", original)
    # the same command starts it again ...
    code, _, err = _distill(synthetic_root, run_dir)
    assert code == 0, err
    assert [r["epoch"] for r in read_jsonl(run_dir / "log.jsonl")] == [1]
    # ... and --resume of such a folder starts it from scratch with its saved config
    second = tmp_path / "second"
    _poison_after(monkeypatch, 0)
    assert _distill(synthetic_root, second)[0] == 2
    monkeypatch.setattr(losses.SpectralKDLoss, "forward", original)
    code, _, err = run_cli("distill", "--resume", second)
    assert code == 0, err
    assert "stopped before its first checkpoint; starting it again" in err
    assert torch.load(second / "last.pt", weights_only=True)["epoch"] == 1


def test_a_finished_epoch_is_never_lost_and_a_run_with_a_checkpoint_is_not_restarted(tmp_path, synthetic_root):
    run_dir = tmp_path / "run"
    assert _distill(synthetic_root, run_dir)[0] == 0
    before = (run_dir / "last.pt").read_bytes()
    code, _, err = _distill(synthetic_root, run_dir)
    assert code == 2 and "already holds a run" in err and "--resume" in err
    assert (run_dir / "last.pt").read_bytes() == before


def _hold_lock(folder):
    """A separate process that takes the run folder's lock and sleeps."""
    code = ("import sys, time; from pathlib import Path; from spectralkd.runtime.run import RunLock; "
            "lock = RunLock(Path(sys.argv[1])); lock.acquire(); print('locked', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")})
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_process_on_the_same_run_folder_is_refused_and_a_killed_holder_is_taken_over(tmp_path, synthetic_root):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = _hold_lock(run_dir)
    try:
        code, _, err = _distill(synthetic_root, run_dir)
        assert code == 2
        line = err.strip().splitlines()[-1]
        assert f"is in use by process {holder.pid}" in line and "Traceback" not in err
        assert not (run_dir / "last.pt").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kernel released the killed process's lock: the stale lock file is taken over
    assert json.loads((run_dir / ".lock").read_text())["pid"] == holder.pid
    code, _, err = _distill(synthetic_root, run_dir)
    assert code == 0, err
    assert json.loads((run_dir / ".lock").read_text())["pid"] == os.getpid()


def test_lock_is_exclusive_within_one_process_too(tmp_path):
    first, second = RunLock(tmp_path), RunLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(UserError, match=f"in use by process {os.getpid()}"):
            second.acquire()
    finally:
        first.release()
    second.acquire()
    second.release()


def test_temp_files_of_a_kill_are_removed_and_the_card_sidecar_is_repaired_on_resume(tmp_path, synthetic_root):
    run_dir = tmp_path / "run"
    assert _distill(synthetic_root, run_dir)[0] == 0
    # what a kill during the atomic writes leaves behind
    (run_dir / ".last.pt.abc123.tmp").write_bytes(b"partial")
    (run_dir / ".log.jsonl.x9.tmp").write_text("{")
    # a kill between the weights file and its sidecar: the sidecar is one step behind
    _, card = load_weights(run_dir / "best.safetensors")
    card_path(run_dir / "best.safetensors").write_text(json.dumps({**card, "epoch": 0, "top1": -1.0}))
    state, loaded = load_weights(run_dir / "best.safetensors")
    assert loaded == card  # the embedded card, written with the weights, is the one trusted
    code, _, err = run_cli("distill", "--resume", run_dir, "--set", "epochs=2")
    assert code == 0, err
    assert not list(run_dir.glob(".*.tmp"))
    assert json.loads(card_path(run_dir / "best.safetensors").read_text()) == load_weights(run_dir / "best.safetensors")[1]


def test_load_weights_trusts_the_embedded_card_over_a_stale_sidecar(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(path, {"a": torch.ones(2)}, {"epoch": 3})
    card_path(path).write_text(json.dumps({"epoch": 2}))
    assert load_weights(path)[1] == {"epoch": 3}
    # weights written by another tool, without an embedded card: the sidecar is read
    from safetensors.torch import save_file
    save_file({"a": torch.ones(2)}, str(tmp_path / "other.safetensors"))
    card_path(tmp_path / "other.safetensors").write_text(json.dumps({"model": "x"}))
    assert load_weights(tmp_path / "other.safetensors")[1] == {"model": "x"}


def test_non_finite_check_names_where_and_what(tmp_path):
    run = Run(tmp_path, {}, DistEnv(), None, "iter")
    run.check_finite(torch.tensor(1.0), "iteration 1")
    with pytest.raises(NonFiniteLoss, match=r"non-finite \(nan; loss_l1=0.5\) at iteration 7; run stopped"):
        run.check_finite(torch.tensor(float("nan")), "iteration 7", {"loss": 1.0, "loss_l1": 0.5})


def test_changed_keys_flattens_but_keeps_kwargs_whole():
    saved = {"epochs": 2, "model": {"kwargs": {"depth": 2}}, "optim": {"lr": 1.0}}
    assert changed_keys(saved, {"epochs": 3, "model": {"kwargs": {"depth": 2}}, "optim": {"lr": 1.0}}, ("epochs",)) == []
    assert changed_keys(saved, {"epochs": 2, "model": {"kwargs": {"depth": 3}}, "optim": {"lr": 2.0}}, ()) == [
        ("model.kwargs", {"depth": 2}, {"depth": 3}), ("optim.lr", 1.0, 2.0)]


def test_sr_train_resume_takes_the_run_directory(tmp_path, cli):
    from test_sr_train import _sets, make_sr_data

    (tmp_path / "data").mkdir()
    data, out = make_sr_data(tmp_path / "data"), tmp_path / "sr"
    code, stdout, err = cli("sr", "train", *[a for s in _sets(data, out, stop_iter=6) for a in ("--set", s)])
    assert code == 0, err
    code, stdout, err = cli("sr", "train", "--resume", out, "--set", "stop_iter=null")
    assert code == 0, err
    assert "12/12 iterations" in stdout
    code, _, err = cli("sr", "train", "--resume", out, "--set", "optim.lr=0.1")
    assert code == 2 and "config key 'optim.lr' differs from the saved run" in err


def test_help_does_not_import_torch():
    code = "import sys; from spectralkd.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}).stdout.strip()
    assert out == "False", f"the CLI parser imported torch ({time.perf_counter() - start:.1f} s)"
