"""Bad input to train/distill/eval: one clear line, exit status 2, nothing overwritten; layer pairing rules."""
import json

import pytest
import torch
import timm
from conftest import run_cli

from spectralkd.distill.task import Renormalize, teacher_input
from spectralkd.distill.pairs import resolve_pairs, validate_pairs
from spectralkd.errors import UserError
from spectralkd.paths import REPO_ROOT

DISTILL = REPO_ROOT / "configs" / "smoke" / "distill.yaml"
QUICK = ["--set", "max_steps_per_epoch=1", "--set", "max_val_batches=1"]


def _distill(data, out, *extra):
    return run_cli("distill", "--config", DISTILL, "--data", data, "--out", out, *QUICK, *extra)


@pytest.mark.parametrize("setting, message", [
    ("teacher.kwargs.num_classes=100", "teacher cait_xxs24_224 predicts 100 classes but the data has 10"),
    ("distill.student_ids=[0,5]", "student layer index 5 is out of range; valid: 0..1"),
    ("distill.teacher_ids=[1]", "distill.student_ids has 2 ids but distill.teacher_ids has 1"),
    ("teacher.kwargs.patch_size=4", "student 0 ↔ teacher 1 cannot be aligned: student map (32, 4, 4) vs teacher map (64, 8, 8)"),
    ("distill.mode=kl", "config key 'distill.mode': 'kl' is not allowed; expected one of none, soft, hard, fft"),
    ("optim.lrr=1", "unknown config key 'optim.lrr'"),
    ("precision=fp16", "precision 'fp16' needs a CUDA device"),
    ("distill.student_ids=auto", "layer ids 'auto' need distill.analysis"),
])
def test_bad_distill_settings_fail_before_writing_anything(tmp_path, synthetic_root, setting, message):
    out = tmp_path / "run"
    code, _, err = _distill(synthetic_root, out, "--set", setting)
    assert code == 2, err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_data_and_existing_run_and_corrupt_checkpoint(tmp_path, synthetic_root):
    code, _, err = _distill(tmp_path / "nowhere", tmp_path / "x")
    assert code == 2 and "nowhere does not exist" in err
    out = tmp_path / "run"
    assert _distill(synthetic_root, out)[0] == 0
    code, _, err = _distill(synthetic_root, out)
    assert code == 2 and "already holds a run" in err
    (out / "last.pt").write_bytes(b"not a checkpoint")
    code, _, err = run_cli("distill", "--resume", out)
    assert code == 2 and "corrupt or not a PyTorch file" in err
    code, _, err = run_cli("eval", "--checkpoint", tmp_path / "missing.safetensors", "--data", synthetic_root)
    assert code == 2 and "does not exist" in err


def test_normalisation_mismatch_warns_and_converts(tmp_path, synthetic_root):
    code, _, err = _distill(synthetic_root, tmp_path / "run", "--set", "teacher.mean=[0.485,0.456,0.406]",
                            "--set", "teacher.std=[0.229,0.224,0.225]")
    assert code == 0, err
    assert "warning: teacher cait_xxs24_224 expects mean (0.485, 0.456, 0.406)" in err and "converting" in err
    # The conversion maps student-normalised pixels to exactly what the teacher's own normalisation gives.
    raw = torch.rand(2, 3, 4, 4)
    ms, ss, mt, st = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    shape = (1, 3, 1, 1)
    student_view = (raw - torch.tensor(ms).view(shape)) / torch.tensor(ss).view(shape)
    teacher_view = (raw - torch.tensor(mt).view(shape)) / torch.tensor(st).view(shape)
    conv = teacher_input((ms, ss), (mt, st), "t", warn=False)
    assert isinstance(conv, Renormalize)
    assert torch.allclose(conv(student_view), teacher_view, atol=1e-5)
    assert isinstance(teacher_input((ms, ss), (ms, ss), "t", warn=False), torch.nn.Identity)


def test_auto_pairs_from_analysis_json(tmp_path):
    analysis = tmp_path / "analysis.json"
    one = [{"index": 0, "shape": [8, 4, 4], "intensity": 1.0}]
    analysis.write_text(json.dumps({"layers": one, "recommended": {"student_ids": [0, 1, 10, 11],
                                                                   "teacher_ids": [0, 1, 22, 23]}}))
    assert resolve_pairs("auto", "auto", analysis, 12, 24) == ([0, 1, 10, 11], [0, 1, 22, 23])
    assert resolve_pairs("auto", "auto", tmp_path, 12, 24) == ([0, 1, 10, 11], [0, 1, 22, 23])  # a folder works too
    assert resolve_pairs([0, -1], [0, -1], None, 12, 24) == ([0, 11], [0, 23])
    # Recommended for a deeper student: the SpectralKD rule is re-applied to this student's depth from the scores
    # (top 4 of 8 teacher layers are 0, 1, 6, 7 → first half to the first student layers, second half to the last).
    scores = [9, 8, 1, 1, 1, 1, 7, 6]
    layers = [{"index": i, "shape": [8, 4, 4], "intensity": s} for i, s in enumerate(scores)]
    analysis.write_text(json.dumps({"layers": layers, "recommended": {"student_ids": [0, 1, 10, 11],
                                                                      "teacher_ids": [0, 1, 6, 7]}}))
    assert resolve_pairs("auto", "auto", analysis, 6, 8) == ([0, 1, 4, 5], [0, 1, 6, 7])
    analysis.write_text(json.dumps({"layers": one}))
    with pytest.raises(UserError, match="no 'recommended'"):
        resolve_pairs("auto", "auto", analysis, 12, 24)


def test_validate_pairs_reports_shapes():
    student = timm.create_model("deit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=2)
    teacher = timm.create_model("cait_xxs24_224", img_size=32, patch_size=8, depth=3, embed_dim=64, num_heads=2)
    shapes = validate_pairs(student, teacher, [0, 1], [0, 2], 32)
    assert shapes == [((32, 4, 4), (64, 4, 4)), ((32, 4, 4), (64, 4, 4))]
