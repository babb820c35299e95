"""TensorBoard scalars from run-log records, read back with TensorBoard's own event reader."""
import sys

import pytest

from spectralkd.config import load_config
from spectralkd.config.classifier import defaults as classifier_defaults
from spectralkd.config.sr import defaults as sr_defaults
from spectralkd.errors import UserError
from spectralkd.runtime.tensorboard import TensorBoardLog, flatten_scalars

EPOCHS = [  # per-epoch records as the classifier trainer writes them, one with per-epoch spectral measures
    {"epoch": 1, "loss_ce": 0.75, "loss_kd": 0.5, "loss_fft": 0.125, "train_loss": 1.375, "lr": 5e-4, "images": 640,
     "img_per_s": 123.5, "val_top1": 36.98, "val_top5": 88.24, "best_top1": 36.98, "best_epoch": 1},
    {"epoch": 2, "loss_ce": 0.5, "loss_kd": 0.25, "loss_fft": 0.0625, "train_loss": 0.8125, "lr": 1e-3, "images": 640,
     "img_per_s": 130.0, "val_top1": 49.14, "val_top5": 93.12, "best_top1": 49.14, "best_epoch": 2,
     "spectral": {"block3": {"entropy": 2.5, "low_band": 0.875}, "per_block_energy": [0.5, 0.25]},
     "weights": "model", "improved": True},
]


def _scalars(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_epoch_records_become_scalars_with_nested_names(tmp_path):
    pytest.importorskip("tensorboard")
    with TensorBoardLog(tmp_path / "tb") as tb:
        counts = [tb.write(r, "epoch") for r in EPOCHS]
    # record 1: 11 numbers besides the epoch; record 2: the same 11 + 4 spectral values (strings and bools are not scalars)
    assert counts == [11, 15]
    got = _scalars(tmp_path / "tb")
    expected_tags = {"loss_ce", "loss_kd", "loss_fft", "train_loss", "lr", "images", "img_per_s", "val_top1",
                     "val_top5", "best_top1", "best_epoch", "spectral/block3/entropy", "spectral/block3/low_band",
                     "spectral/per_block_energy/0", "spectral/per_block_energy/1"}
    assert set(got) == expected_tags
    assert [s for s, _ in got["loss_kd"]] == [1, 2]
    assert [v for _, v in got["val_top1"]] == pytest.approx([36.98, 49.14], rel=1e-6)  # stored as float32
    assert [v for _, v in got["lr"]] == pytest.approx([5e-4, 1e-3], rel=1e-6)
    assert got["spectral/block3/entropy"] == [(2, 2.5)] and got["spectral/per_block_energy/1"] == [(2, 0.25)]


def test_sr_iteration_records_and_events_without_step(tmp_path):
    pytest.importorskip("tensorboard")
    tb = TensorBoardLog(tmp_path / "tb")
    assert tb.write({"event": "start", "params": 123}, "iter") == 0  # no step → skipped
    tb.write({"iter": 50, "loss": 0.03125, "lr": 2e-4, "it_per_s": 4.5, "time_s": 11.0}, "iter")
    tb.write({"iter": 100, "val": {"Set5": {"psnr": 33.25, "ssim": 0.9125}}, "time_s": 30.0}, "iter")
    tb.close()
    tb.close()  # idempotent
    got = _scalars(tmp_path / "tb")
    assert got["val/Set5/psnr"] == [(100, pytest.approx(33.25))] and got["loss"] == [(50, 0.03125)]
    assert [s for s, _ in got["time_s"]] == [50, 100] and "params" not in got


def test_resume_with_purge_step_replaces_the_steps_logged_again(tmp_path):
    pytest.importorskip("tensorboard")
    with TensorBoardLog(tmp_path / "tb") as tb:  # the interrupted run got to epoch 3
        for epoch in (1, 2, 3):
            tb.write({"epoch": epoch, "val_top1": 10.0 * epoch})
    with TensorBoardLog(tmp_path / "tb", purge_step=3) as tb:  # resumed from last.pt of epoch 2
        for epoch in (3, 4):
            tb.write({"epoch": epoch, "val_top1": 100.0 + epoch})
    assert _scalars(tmp_path / "tb")["val_top1"] == [(1, 10.0), (2, 20.0), (3, 103.0), (4, 104.0)]


def test_flatten_handles_the_logs_spelling_of_non_finite_values():
    flat = flatten_scalars({"epoch": 3, "loss": "nan", "note": "diverged", "x": {"y": [1, True, None]}}, skip=("epoch",))
    assert set(flat) == {"loss", "x/y/0"} and flat["loss"] != flat["loss"] and flat["x/y/0"] == 1.0


def test_off_by_default_and_disabled_writes_nothing(tmp_path, monkeypatch):
    assert classifier_defaults()["log"] == {"tensorboard": False} and sr_defaults()["log"] == {"tensorboard": False}
    cfg = load_config(None, ["log.tensorboard=true"], defaults=classifier_defaults())
    assert cfg["log"]["tensorboard"] is True
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # even without the package
    tb = TensorBoardLog(tmp_path / "tb", enabled=False)
    assert tb.write(EPOCHS[0]) == 0 and not tb.enabled
    tb.close()
    assert not (tmp_path / "tb").exists()


def test_missing_package_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import now raises ImportError
    with pytest.raises(UserError) as info:
        TensorBoardLog(tmp_path / "tb")
    message = str(info.value)
    assert "\n" not in message and "spectralkd[tensorboard]" in message and "log.tensorboard" in message


def test_trainer_writes_tensorboard_scalars_per_epoch(tmp_path, synthetic_root):
    from conftest import run_cli
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from spectralkd.paths import REPO_ROOT
    from spectralkd.runtime.runlog import read_jsonl

    out = tmp_path / "run"
    code, _, err = run_cli("distill", "--config", REPO_ROOT / "configs" / "smoke" / "distill.yaml", "--data",
                           synthetic_root, "--out", out, "--set", "epochs=2", "--set", "max_steps_per_epoch=2",
                           "--set", "log.tensorboard=true")
    assert code == 0, err
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    log = read_jsonl(out / "log.jsonl")
    for tag in ("train_loss", "loss_fft", "val_top1", "lr", "img_per_s"):
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [1, 2]
        assert [e.value for e in events] == pytest.approx([r[tag] for r in log], rel=1e-6)
