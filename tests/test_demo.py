import json

from spectralkd.demo import run_demo


def test_demo_runs_the_whole_loop_on_generated_data(tmp_path, synthetic_root):
    report = run_demo(str(synthetic_root), tmp_path / "demo", steps=2, num_images=16, seed=0, device="cpu")
    assert report.is_file() and report.read_text().count("data:image/png;base64,") == 2
    summary = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert set(summary["students"]) == {"student-nokd", "student-spectralkd"}
    # the committed CIFAR-10 teacher is not used on the generated gratings (same class count, other classes): a
    # teacher is trained on them here
    assert (tmp_path / "demo" / "teacher" / "best.safetensors").is_file()
    recommended = json.loads((tmp_path / "demo" / "teacher-analysis" / "analysis.json").read_text())["recommended"]
    compared = json.loads((tmp_path / "demo" / "compare" / "compare.json").read_text())
    no_kd, spectral = compared["students"]
    # the distilled student aligned exactly the pairs the teacher analysis recommended; the baseline aligned none
    ids = {k: recommended[k] for k in ("student_ids", "teacher_ids")}
    assert spectral["pairs"] == ids and no_kd["pairs"] is None
    assert recommended["rule"] == "blocks" and len(recommended["teacher_shapes"]) == len(ids["teacher_ids"])
    aligned = [r["student_layer"] for r in spectral["layers"] if r["aligned"]]
    assert aligned == recommended["student_ids"]


def test_demo_schedule_gives_the_requested_steps_on_small_data():
    from spectralkd.demo import _schedule

    assert _schedule(300, 50000) == (1, 300)  # the shared CIFAR-10: one capped epoch
    assert _schedule(300, 1000) == (43, 7)  # the generated set: 7 full batches of 128 per epoch → 301 steps
    assert _schedule(2, 1000) == (1, 2)
    assert _schedule(10, 100) == (10, 1)  # fewer images than a batch: one (partial) batch per epoch
    for steps, images in ((300, 1000), (50, 640), (7, 896), (1, 5000)):
        epochs, per_epoch = _schedule(steps, images)
        assert per_epoch <= max(1, images // 128) and steps <= epochs * per_epoch < steps + epochs
