"""Cohorts of students on one data stream and one teacher pass: the same students as solo runs, resumable,
shared settings enforced, and the teacher run once per batch."""
import pytest
import torch
from conftest import run_cli

from spectralkd.distill import task as task_module
from spectralkd.paths import REPO_ROOT
from spectralkd.runtime.runlog import read_jsonl

DISTILL = REPO_ROOT / "configs" / "smoke" / "distill.yaml"
# fp32 for the equality check; drop-path on, so each student's own RNG stream is exercised; EMA on.
BASE = ["--set", "precision=fp32", "--set", "epochs=2", "--set", "max_steps_per_epoch=3", "--set",
        "max_val_batches=1", "--set", "model.drop_path=0.1", "--set", "ema.enabled=true", "--set", "ema.decay=0.9"]
MEMBERS = {"spec": {"distill": {"feature_loss": "spectral"}},
           "mse": {"distill": {"feature_loss": "feature_mse", "student_ids": [1], "teacher_ids": [2]}},
           "logit": {"distill": {"w_fft": 0.0}, "optim": {"lr": 5.0e-4}}}


def _cohort_file(tmp_path, members=MEMBERS):
    import yaml

    path = tmp_path / "cohort.yaml"
    path.write_text(yaml.safe_dump({"cohort": [{"name": n, **o} for n, o in members.items()]}))
    return path


def _overrides(o: dict, prefix="") -> list[str]:
    out = []
    for k, v in o.items():
        if isinstance(v, dict):
            out += _overrides(v, f"{prefix}{k}.")
        else:
            out += ["--set", f"{prefix}{k}={v}"]
    return out


def _weights(run_dir):
    return torch.load(run_dir / "last.pt", weights_only=True)


def test_cohort_members_equal_solo_runs_and_resume(tmp_path, synthetic_root, monkeypatch):
    teacher_calls = {"n": 0}
    original = task_module.TeacherForward.forward

    def counting(self, x):
        teacher_calls["n"] += 1
        return original(self, x)

    monkeypatch.setattr(task_module.TeacherForward, "forward", counting)
    cohort = tmp_path / "cohort"
    code, _, err = run_cli("distill", "--config", DISTILL, "--data", synthetic_root, "--cohort",
                           _cohort_file(tmp_path), "--out", cohort, *BASE, "--set", "stop_after_epoch=1")
    assert code == 0, err
    assert teacher_calls["n"] == 3  # one teacher pass per batch for the three students (3 steps)
    assert (cohort / "cohort.yaml").is_file() and all((cohort / n / "last.pt").is_file() for n in MEMBERS)
    code, _, err = run_cli("distill", "--resume", cohort, "--set", "stop_after_epoch=null")
    assert code == 0, err
    for name, member in MEMBERS.items():
        solo = tmp_path / f"solo-{name}"
        code, _, err = run_cli("distill", "--config", DISTILL, "--data", synthetic_root, "--out", solo, *BASE,
                               *_overrides(member))
        assert code == 0, err
        a, b = _weights(cohort / name), _weights(solo)
        assert a["epoch"] == b["epoch"] == 2
        for part in ("model", "ema"):
            worst = max((a[part][k] - b[part][k]).abs().max().item() for k in a[part])
            assert worst <= 1e-5, (name, part, worst)
        log = read_jsonl(cohort / name / "log.jsonl")
        assert [r["epoch"] for r in log] == [1, 2]
    assert "loss_fft" not in read_jsonl(cohort / "logit" / "log.jsonl")[0] or \
        read_jsonl(cohort / "logit" / "log.jsonl")[0]["loss_fft"] == 0.0


@pytest.mark.parametrize("members, message", [
    ({"a": {}, "b": {"seed": 3}}, "cohort student 'b' sets seed=3 but 'a' has 0"),
    ({"a": {}, "b": {"data": {"batch_size": 8}}}, "sets data.batch_size=8"),
    ({"a": {}, "a2": {"distill": {"nosuch": 1}}}, "cohort student 'a2': unknown config key 'distill.nosuch'"),
    ({"a/b": {}}, "student name 'a/b' must be"),
])
def test_bad_cohorts_are_refused_before_anything_is_written(tmp_path, synthetic_root, members, message):
    out = tmp_path / "c"
    code, _, err = run_cli("distill", "--config", DISTILL, "--data", synthetic_root, "--cohort",
                           _cohort_file(tmp_path, members), "--out", out, *BASE)
    assert code == 2 and message in err, err
    assert not out.exists()


def test_duplicate_names_and_empty_cohort(tmp_path, synthetic_root):
    path = tmp_path / "dup.yaml"
    path.write_text("cohort:\n  - {name: a}\n  - {name: a}\n")
    code, _, err = run_cli("distill", "--config", DISTILL, "--cohort", path, "--out", tmp_path / "o")
    assert code == 2 and "student name 'a' appears more than once" in err
    path.write_text("cohort: []\n")
    code, _, err = run_cli("distill", "--config", DISTILL, "--cohort", path, "--out", tmp_path / "o")
    assert code == 2 and "needs 'cohort:' with a list of students" in err


def test_a_no_kd_member_is_a_control_that_trains_like_spectralkd_train(tmp_path, synthetic_root):
    """In a cohort, a student in distill.mode none (CE only) sees the cohort's batches and trains exactly as
    `spectralkd train` does with the same settings; a cohort with no student that distils is refused."""
    base = [*BASE, "--set", "ema.enabled=false", "--set", "model.drop_path=0.0"]
    cohort = tmp_path / "cohort"
    members = {"none": {"distill": {"mode": "none"}}, "spec": {}}
    code, _, err = run_cli("distill", "--config", DISTILL, "--data", synthetic_root, "--cohort",
                           _cohort_file(tmp_path, members), "--out", cohort, *base)
    assert code == 0, err
    solo = tmp_path / "solo"
    code, _, err = run_cli("train", "--config", REPO_ROOT / "configs" / "smoke" / "train.yaml", "--data",
                           synthetic_root, "--out", solo, *base)
    assert code == 0, err
    a, b = _weights(cohort / "none"), _weights(solo)
    worst = max((a["model"][k] - b["model"][k]).abs().max().item() for k in a["model"])
    assert worst <= 1e-5, worst
    assert "loss_kd" not in read_jsonl(cohort / "none" / "log.jsonl")[0] or \
        read_jsonl(cohort / "none" / "log.jsonl")[0]["loss_kd"] == 0.0
    code, _, err = run_cli("distill", "--config", DISTILL, "--data", synthetic_root, "--cohort",
                           _cohort_file(tmp_path, {"a": {"distill": {"mode": "none"}}}), "--out", tmp_path / "x", *base)
    assert code == 2 and "distill.mode 'none' trains without a teacher" in err, err
