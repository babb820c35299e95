"""`spectralkd robustness`: attacks (torchattacks) and corruptions (imagecorruptions) on a tiny trained model."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("torchattacks")
pytest.importorskip("imagecorruptions")

from spectralkd.analysis.robustness import (  # noqa: E402
    ALL_CORRUPTIONS, COMMON_CORRUPTIONS, Normalized, attack_images, cached_corrupt_images, corrupt_images, measure,
    paired_summary,
    parse_attacks, parse_corruptions, parse_eps, parse_severities,
)
from spectralkd.errors import UserError  # noqa: E402

MODEL = "test_resnet"
KWARGS = {"num_classes": 10}
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _tensors(root, split):
    from spectralkd.data import ImageFiles, labelled_split
    from torchvision.transforms import ToTensor

    items, _, _ = labelled_split(root, split)
    ds = ImageFiles(items, ToTensor())
    xs, ys = zip(*[ds[i] for i in range(len(ds))])
    return torch.stack(xs), torch.tensor(ys)


@pytest.fixture(scope="module")
def trained(synthetic_root):
    """A timm test_resnet trained for a few steps on the generated gratings; (pixel model, val images, labels)."""
    from spectralkd.features import create_model

    torch.manual_seed(0)
    xt, yt = _tensors(synthetic_root, "train")
    xv, yv = _tensors(synthetic_root, "val")
    net = create_model(MODEL, model_kwargs=KWARGS)
    model = Normalized(net, MEAN, STD)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        idx = torch.randint(0, len(xt), (50,), generator=g)
        loss = F.cross_entropy(model.train()(xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model, xv, yv


def test_model_learned_something(trained):
    model, x, y = trained
    with torch.no_grad():
        acc = model(x).argmax(1).eq(y).float().mean().item()
    assert acc > 0.3  # chance is 0.1: the attack tests below need a model that is right on many images


def test_fgsm_at_eps_zero_is_clean_accuracy(trained):
    model, x, y = trained
    assert torch.equal(attack_images(model, x, y, "fgsm", 0.0), x)
    r = measure(model, [(x, y)], ["fgsm"], [("0", 0.0)])
    assert r["attacks"]["fgsm"]["0"] == r["clean"]


def test_fgsm_is_the_signed_gradient_step(trained):
    """Independent FGSM: x + ε·sign(∇x CE), clipped to [0, 1]."""
    model, x, y = trained
    eps = 3 / 255
    xr = x.clone().requires_grad_(True)
    F.cross_entropy(model(xr), y).backward()
    expected = (x + eps * xr.grad.sign()).clamp(0, 1)
    assert torch.allclose(attack_images(model, x, y, "fgsm", eps), expected, atol=1e-6)


def test_pgd_le_fgsm_le_clean_and_stays_in_the_ball(trained):
    model, x, y = trained
    labels = [("2/255", 2 / 255), ("8/255", 8 / 255)]
    r = measure(model, [(x, y)], ["fgsm", "pgd"], labels, pgd_steps=10)
    n = len(y)
    for key, _ in labels:
        assert r["attacks"]["fgsm"][key] <= r["clean"]
        assert r["attacks"]["pgd"][key] <= r["attacks"]["fgsm"][key] + 100.0 / n  # one image of noise
    assert r["attacks"]["pgd"]["8/255"] < r["clean"] - 10  # the attack really bites
    for name in ("fgsm", "pgd"):
        adv = attack_images(model, x, y, name, 8 / 255, steps=5)
        assert (adv - x).abs().max() <= 8 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1


def test_pgd_is_seeded_and_leaves_the_global_rng_alone(trained):
    model, x, y = trained
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = attack_images(model, x[:8], y[:8], "pgd", 4 / 255, steps=3, seed=7)
    after = torch.rand(3)
    b = attack_images(model, x[:8], y[:8], "pgd", 4 / 255, steps=3, seed=7)
    c = attack_images(model, x[:8], y[:8], "pgd", 4 / 255, steps=3, seed=8)
    assert torch.equal(before, after) and torch.equal(a, b) and not torch.equal(a, c)


def test_corruption_severity_zero_is_identity_and_severity_grows(trained):
    _, x, _ = trained
    x8 = (x[:10] * 255).round() / 255  # on the uint8 grid, as loaded images are
    for name in ALL_CORRUPTIONS:
        assert torch.equal(corrupt_images(x8, name, 0), x8)
    for name in ("gaussian_noise", "contrast", "defocus_blur", "pixelate"):
        dist = [(corrupt_images(x8, name, s, seed=0) - x8).abs().mean().item() for s in range(1, 6)]
        assert dist[0] > 0 and all(a <= b + 1e-4 for a, b in zip(dist, dist[1:])), (name, dist)


def test_every_corruption_runs_on_32px_and_is_seeded(trained):
    _, x, _ = trained
    for name in ALL_CORRUPTIONS:
        out = corrupt_images(x[:2], name, 3, seed=1)
        assert out.shape == x[:2].shape and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
    state = np.random.get_state()[1].copy()
    a, b = corrupt_images(x[:4], "shot_noise", 2, seed=5), corrupt_images(x[:4], "shot_noise", 2, seed=5)
    assert torch.equal(a, b) and np.array_equal(state, np.random.get_state()[1])


def test_corruption_cache_returns_the_uncached_result_and_corrupts_each_input_once(trained, tmp_path, monkeypatch):
    import spectralkd.analysis.robustness as rob

    _, x, y = trained
    x8 = (x[:6] * 255).round() / 255
    want = corrupt_images(x8, "gaussian_noise", 3, seed=7)
    calls = []
    real = rob.corrupt_images
    monkeypatch.setattr(rob, "corrupt_images", lambda *a, **k: calls.append(a[1:]) or real(*a, **k))
    first = cached_corrupt_images(x8, "gaussian_noise", 3, seed=7, cache_dir=tmp_path)
    again = cached_corrupt_images(x8, "gaussian_noise", 3, seed=7, cache_dir=tmp_path)
    assert torch.equal(first, want) and torch.equal(again, want) and len(calls) == 1
    # any change of input pixels, severity or seed is a different entry, never a stale hit
    other = x8.clone()
    other[0, 0, 0, 0] = 1.0 - other[0, 0, 0, 0]
    cached_corrupt_images(other, "gaussian_noise", 3, seed=7, cache_dir=tmp_path)
    cached_corrupt_images(x8, "gaussian_noise", 4, seed=7, cache_dir=tmp_path)
    cached_corrupt_images(x8, "gaussian_noise", 3, seed=8, cache_dir=tmp_path)
    assert len(calls) == 4 and len(list(tmp_path.glob("*.safetensors"))) == 4
    # a damaged entry is recomputed, not trusted
    for f in tmp_path.glob("*.safetensors"):
        f.write_bytes(b"damaged")
    assert torch.equal(cached_corrupt_images(x8, "gaussian_noise", 3, seed=7, cache_dir=tmp_path), want)
    assert len(calls) == 5
    # measure() with a cache gives the numbers it gives without one
    model = trained[0]
    batches = [(x8[:3], y[:3]), (x8[3:], y[3:6])]
    kw = dict(attacks=[], eps=[], corruptions=["contrast", "gaussian_noise"], severities=[1, 5], seed=2)
    assert measure(model, batches, **kw, corruption_cache=tmp_path / "m") == measure(model, batches, **kw)


def test_parsers():
    assert parse_eps("1/255, 0.5") == [("1/255", 1 / 255), ("0.5", 0.5)]
    for bad in ("0", "1.5", "-1/255", "x", "1/0", ""):
        with pytest.raises(UserError, match="eps"):
            parse_eps(bad)
    assert parse_attacks("PGD,fgsm") == ["pgd", "fgsm"] and parse_attacks("none") == []
    with pytest.raises(UserError, match="unknown attack 'cw'; allowed: fgsm, pgd"):
        parse_attacks("fgsm,cw")
    assert parse_corruptions("all") == list(ALL_CORRUPTIONS) and len(parse_corruptions("common")) == 15
    assert parse_corruptions("fog,fog,contrast") == ["fog", "contrast"]
    with pytest.raises(UserError, match="unknown corruption 'rain'"):
        parse_corruptions("rain")
    assert parse_severities("1-3,5") == [1, 2, 3, 5]
    for bad in ("0-5", "6", "a"):
        with pytest.raises(UserError, match="severities"):
            parse_severities(bad)
    assert COMMON_CORRUPTIONS[-1] == "jpeg_compression"


def test_paired_summary_t_interval():
    s = paired_summary([1.0, 2.0, 3.0])
    # mean 2, sd 1, t(0.975, 2) = 4.302653 → half-width 4.302653 / sqrt(3) = 2.484138
    assert s["mean"] == 2.0 and s["ci95"][0] == pytest.approx(2 - 2.484138, abs=1e-5)
    assert paired_summary([0.5])["ci95"] == [None, None] and paired_summary([])["n"] == 0


@pytest.fixture(scope="module")
def checkpoint(trained, tmp_path_factory):
    from spectralkd.runtime.checkpoint import save_weights

    model, _, _ = trained
    path = tmp_path_factory.mktemp("ckpt") / "best.safetensors"
    card = {"model": MODEL, "model_kwargs": KWARGS, "data": {"input_size": 32, "mean": list(MEAN), "std": list(STD)}}
    save_weights(path, model.model.state_dict(), card)
    return path


def test_cli_end_to_end_clean_matches_eval(cli, checkpoint, synthetic_root, tmp_path):
    code, out, err = cli("robustness", "--checkpoint", checkpoint, "--data", synthetic_root, "--num-images", "0",
                         "--attacks", "fgsm", "--eps", "2/255", "--corruptions", "gaussian_noise,contrast",
                         "--severities", "1,5", "--device", "cpu", "--out", tmp_path)
    assert code == 0, err
    r = json.loads((tmp_path / "robustness.json").read_text())
    assert r["images"] == 50 and set(r["attacks"]["fgsm"]) == {"2/255"}
    assert set(r["corruptions"]) == {"gaussian_noise", "contrast"} and set(r["corruptions"]["contrast"]) == {"1", "5"}
    assert r["corruption_mean"] == pytest.approx(np.mean([v for d in r["corruptions"].values() for v in d.values()]))
    assert (tmp_path / "report.md").is_file() and (tmp_path / "robustness.png").stat().st_size > 1000
    # shipped files name no absolute path (the checkpoint and data were given as absolute paths)
    assert Path(str(checkpoint)).is_absolute() and not Path(r["checkpoint"]).is_absolute()
    assert not Path(r["data"]).is_absolute() and str(tmp_path) not in (tmp_path / "report.md").read_text()
    code, out, err = cli("eval", "--checkpoint", checkpoint, "--data", synthetic_root, "--device", "cpu",
                         "--num-workers", "0", "--json")
    assert code == 0, err
    assert json.loads(out)["top1"] == pytest.approx(r["clean"])  # same model card preprocessing as `eval`


def _one_line_error(result, *needles):
    code, out, err = result
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err


def test_cli_bad_input(cli, checkpoint, synthetic_root, tmp_path, monkeypatch):
    from spectralkd.runtime.checkpoint import atomic_torch_save, load_weights

    base = ["robustness", "--data", synthetic_root, "--num-images", "4", "--device", "cpu", "--out", tmp_path]
    bare = tmp_path / "bare.pth"
    atomic_torch_save(load_weights(checkpoint)[0], bare)
    _one_line_error(cli(*base, "--checkpoint", bare), "has no model card", "--model")
    _one_line_error(cli(*base, "--checkpoint", checkpoint, "--eps", "0"), "outside (0, 1]")
    _one_line_error(cli(*base, "--checkpoint", checkpoint, "--eps", "8"), "outside (0, 1]")
    _one_line_error(cli(*base, "--checkpoint", checkpoint, "--attacks", "deepfool"), "unknown attack 'deepfool'")
    _one_line_error(cli(*base, "--checkpoint", checkpoint, "--corruptions", "rain"), "unknown corruption 'rain'")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    _one_line_error(cli(*base, "--checkpoint", checkpoint, "--attacks", "none", "--corruptions", "fog",
                        "--corruption-cache", blocker / "cache"), "--corruption-cache", "cannot use it as a folder")
    monkeypatch.setitem(sys.modules, "torchattacks", None)
    _one_line_error(cli(*base, "--checkpoint", checkpoint), "torchattacks", "spectralkd[robustness]")
    monkeypatch.setitem(sys.modules, "imagecorruptions", None)
    _one_line_error(cli(*base, "--checkpoint", checkpoint, "--attacks", "none", "--corruptions", "fog"),
                    "imagecorruptions", "spectralkd[robustness]")


def test_study_script_discovers_runs_and_pairs_by_seed(tmp_path):
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import robustness_study as study

    def student(folder, epochs_done=3):
        folder.mkdir(parents=True)
        (folder / "best.safetensors").write_bytes(b"x")
        (folder / "config.yaml").write_text("epochs: 3\n")
        (folder / "log.jsonl").write_text("".join(json.dumps({"epoch": e}) + "\n" for e in range(1, epochs_done + 1)))

    for key in ("spectralkd-s0", "spectralkd-s1", "logit_kd-s0", "logit_kd-s1", "none-s0", "spectral_only-s0"):
        student(tmp_path / key)
    (tmp_path / "feature_mse-s0").mkdir()  # no weights: skipped
    found = study.discover(tmp_path, list(study.VARIANTS))
    assert [(v, s) for v, s, _ in found] == [("none", 0), ("logit_kd", 0), ("logit_kd", 1), ("spectralkd", 0),
                                             ("spectralkd", 1)]
    v2 = tmp_path / "v2"  # the study v2 layout: cohorts seed<S>/<variant>/, students alone seed<S>-<variant>/
    for key in ("seed0/spectralkd", "seed0/logit_kd", "seed0/band_low", "seed0-none", "seed1/none", "seed1/feature_mse",
                "seed1/magnitude"):
        student(v2 / key)
    (v2 / "seed1" / "spectralkd").mkdir()  # no weights yet: skipped
    student(v2 / "seed2" / "logit_kd", epochs_done=1)  # still training (weights of epoch 1): skipped
    found = study.discover(v2, list(study.VARIANTS))
    assert [(v, s, w.parent.name) for v, s, w in found] == [
        ("none", 0, "seed0-none"), ("none", 1, "none"), ("logit_kd", 0, "logit_kd"), ("spectralkd", 0, "spectralkd"),
        ("feature_mse", 1, "feature_mse")]
    mk = lambda v, s, c, p: {"variant": v, "seed": s, "clean": c, "fgsm": {"1/255": c - 10}, "pgd": {"1/255": p},  # noqa: E731
                             "corruption_mean": c - 20}
    rows = [mk("teacher", None, 70, 1), mk("spectralkd", 0, 60, 5), mk("spectralkd", 1, 62, 6),
            mk("logit_kd", 0, 59, 3), mk("logit_kd", 1, 60, 5), mk("none", 0, 50, 2)]
    p = study.paired(rows)
    d = p["spectralkd - logit_kd"]
    assert d["seeds"] == [0, 1] and d["clean"]["diffs"] == [1, 2] and d["clean"]["mean"] == 1.5
    assert d["pgd@1/255"]["diffs"] == [2, 1] and d["clean"]["ci95"][0] < 1.5 < d["clean"]["ci95"][1]
    assert p["spectralkd - none"]["seeds"] == [0] and "feature_mse - logit_kd" not in p


def test_study_tables_show_every_run_and_the_paired_intervals():
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import robustness_study as study

    eps = ("1/255", "2/255", "4/255")
    mk = lambda v, s, c: {"variant": v, "seed": s, "clean": c, "fgsm": {e: c / 2 for e in eps},  # noqa: E731
                          "pgd": {e: c / 4 for e in eps}, "corruption_mean": c - 20}
    rows = [mk("teacher", None, 70.0), mk("spectralkd", 0, 60.0), mk("spectralkd", 1, 62.0), mk("logit_kd", 0, 59.0),
            mk("logit_kd", 1, 60.0)]
    text = study.tables({"runs": rows, "paired": study.paired(rows)})
    lines = text.splitlines()
    assert "| teacher | — | 70.0 | 35.0 | 35.0 | 35.0 | 17.5 | 17.5 | 17.5 | 50.00 |" in lines
    paired_row = next(line for line in lines if line.startswith("| spectralkd − logit_kd | 2 |"))
    # clean differences 1 and 2: mean +1.50, t(1) interval 1.5 ± 12.706 · 0.7071 / √2 = 1.5 ± 6.35
    assert "+1.50 [−4.85, +7.85] (0 of 2 < 0)" in paired_row
