"""compile: true (torch.compile with inductor on the CPU) trains the same first epoch as eager, within 1e-3."""
import pytest
import torch
from conftest import run_cli

from spectralkd.paths import REPO_ROOT
from spectralkd.runtime.runlog import read_jsonl

DISTILL = REPO_ROOT / "configs" / "smoke" / "distill.yaml"
SETTINGS = ["--set", "precision=fp32", "--set", "max_steps_per_epoch=3", "--set", "max_val_batches=1"]


@pytest.mark.slow
def test_compiled_first_epoch_equals_eager(tmp_path, synthetic_root):
    runs = {}
    for name, extra in (("eager", []), ("compiled", ["--set", "compile=true"])):
        code, _, err = run_cli("distill", "--config", DISTILL, "--data", synthetic_root, "--out", tmp_path / name,
                               *SETTINGS, *extra)
        assert code == 0, err
        runs[name] = read_jsonl(tmp_path / name / "log.jsonl")[0]
    for key in ("train_loss", "loss_ce", "loss_kd", "loss_fft", "val_loss"):
        assert runs["compiled"][key] == pytest.approx(runs["eager"][key], rel=1e-3), key
    a = torch.load(tmp_path / "eager" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "compiled" / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()  # saved without torch.compile's _orig_mod prefixes
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4
