"""`spectralkd export`: the folder loads back through timm's own local-dir / hf-hub loaders with identical logits."""
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from spectralkd.paths import REPO_ROOT
from spectralkd.runtime.checkpoint import save_weights

_NEW_TIMM = "data_config" in inspect.signature(timm.models._hub.save_config_for_hf).parameters
needs_export_timm = pytest.mark.skipif(not _NEW_TIMM, reason="spectralkd export needs timm>=1.0.31")

CLASSES = ["cat", "dog", "eel", "owl"]
KWARGS = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2, "num_classes": 4,
          "drop_path_rate": 0.1}


def _tiny_run(tmp_path: Path, teacher: str | None = None) -> tuple[Path, dict]:
    """best.safetensors + card as the trainer writes them, for a tiny ViT with trained-looking (random) weights."""
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", **KWARGS)
    with torch.no_grad():  # move every tensor away from its initialisation so that a silent re-init would show
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    card = {"model": "vit_tiny_patch16_224", "model_kwargs": KWARGS, "weights": "ema", "top1": 61.25, "top5": 97.5,
            "epoch": 3, "seed": 7, "command": "spectralkd distill --config tiny.yaml" if teacher else "spectralkd train",
            "data": {"path": "/data/tiny", "classes": CLASSES, "input_size": 32, "mean": [0.25, 0.5, 0.75],
                     "std": [0.2, 0.3, 0.4], "interpolation": "bilinear", "crop_pct": 0.9, "num_train": 80,
                     "num_val": 20},
            "pairs": None,
            "config": {"epochs": 3, "seed": 7, "precision": "bf16", "data": {"batch_size": 16},
                       "teacher": {"name": teacher, "kwargs": {}, "pretrained": False, "checkpoint": "t.safetensors"},
                       "distill": {"mode": "fft", "alpha": 0.9, "tau": 1.0, "w_fft": 0.2},
                       "optim": {"opt": "adamw", "lr": 5e-4, "weight_decay": 0.05},
                       "sched": {"sched": "cosine", "warmup_epochs": 1}, "aug": {"smoothing": 0.1}}}
    run = tmp_path / "run"
    run.mkdir()
    save_weights(run / "best.safetensors", model.state_dict(), card)
    return run / "best.safetensors", model.state_dict()


def _reference(state: dict) -> torch.nn.Module:
    """The model rebuilt by hand from the known kwargs and state (independent of the exporter)."""
    model = timm.create_model("vit_tiny_patch16_224", **KWARGS)
    model.load_state_dict(state)
    return model.eval()


@needs_export_timm
def test_export_loads_back_through_timm_local_dir_with_identical_logits(cli, tmp_path):
    weights, state = _tiny_run(tmp_path, teacher="deit_small_patch16_224")
    out = tmp_path / "export"
    code, stdout, err = cli("export", "--checkpoint", weights, "--out", out)
    assert code == 0, err
    assert "max |Δlogit| 0" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]

    loaded = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded(x), _reference(state)(x))

    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "vit_tiny_patch16_224" and config["num_classes"] == 4
    assert config["label_names"] == CLASSES
    assert {k: config["model_args"][k] for k in ("patch_size", "embed_dim", "depth", "num_heads")} == \
        {"patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}
    assert "drop_path_rate" not in config["model_args"]  # training-only regularisation is not part of the export
    pcfg = config["pretrained_cfg"]
    assert pcfg["input_size"] == [3, 32, 32] and pcfg["crop_pct"] == 0.9 and pcfg["interpolation"] == "bilinear"
    assert pcfg["mean"] == [0.25, 0.5, 0.75] and pcfg["std"] == [0.2, 0.3, 0.4]
    assert "tag" not in pcfg and "license" not in pcfg  # the architecture's original weights' tag/licence are not ours
    # what a timm user gets from the loaded model: our preprocessing and class names
    data_cfg = timm.data.resolve_data_config({}, model=loaded)
    assert tuple(data_cfg["mean"]) == (0.25, 0.5, 0.75) and tuple(data_cfg["input_size"]) == (3, 32, 32)
    assert data_cfg["crop_pct"] == 0.9 and loaded.pretrained_cfg["label_names"] == CLASSES

    readme = (out / "README.md").read_text()
    assert readme.startswith("---\nlibrary_name: timm\n")
    for fact in ("deit_small_patch16_224", "t.safetensors", "61.25 %", "97.50 %", "spectralkd distill --config tiny.yaml",
                 "w_fft 0.2", "80 training / 20 validation", "epoch 3"):
        assert fact in readme, fact


@needs_export_timm
def test_export_loads_through_hf_hub_from_an_offline_cache(cli, tmp_path):
    """The same folder, laid out as a downloaded Hub snapshot, loads with ``hf-hub:`` (no network)."""
    weights, state = _tiny_run(tmp_path)
    snap = tmp_path / "hub" / "models--someone--tiny-vit" / "snapshots" / "0123abcd"
    code, _, err = cli("export", "--checkpoint", weights, "--out", snap, "--no-verify")
    assert code == 0, err
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text("0123abcd")
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    torch.save(x, tmp_path / "x.pt")
    script = ("import sys, timm, torch; m = timm.create_model('hf-hub:someone/tiny-vit', pretrained=True, "
              "cache_dir=sys.argv[1]).eval(); x = torch.load(sys.argv[2]); "
              "torch.save(m(x).detach(), sys.argv[3]); print(m.pretrained_cfg['label_names'])")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "hub"), str(tmp_path / "x.pt"),
                           str(tmp_path / "y.pt")], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == str(CLASSES)
    with torch.no_grad():
        assert torch.equal(torch.load(tmp_path / "y.pt"), _reference(state)(x))


@needs_export_timm
def test_file_without_card_asks_for_model_and_kwargs(cli, tmp_path):
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=3).eval()  # BatchNorm: running stats must travel too
    with torch.no_grad():
        for buf in model.buffers():
            if buf.dtype.is_floating_point:
                buf.add_(torch.rand_like(buf))
    bare = tmp_path / "bare.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(bare))
    out = tmp_path / "out"
    code, _, err = cli("export", "--checkpoint", bare, "--out", out)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--model" in err and "--model-kwargs" in err and "Traceback" not in err
    assert not out.exists()

    code, _, err = cli("export", "--checkpoint", bare, "--out", out, "--model", "test_resnet",
                       "--model-kwargs", '{"num_classes": 3}')
    assert code == 0, err
    loaded = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert "Not recorded (the checkpoint had no spectralkd model card)" in (out / "README.md").read_text()


def test_bad_paths_give_one_line(cli, tmp_path):
    weights, _ = _tiny_run(tmp_path)
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    cases = [(("--checkpoint", weights, "--out", a_file), "is a file"),
             (("--checkpoint", weights.parent, "--out", tmp_path / "o1"), "is a folder"),
             (("--checkpoint", tmp_path / "missing.safetensors", "--out", tmp_path / "o2"), "does not exist"),
             (("--checkpoint", weights, "--out", tmp_path / "o3", "--model-kwargs", '{"depth": 3}'), "does not fit")]
    for args, phrase in cases:
        code, _, err = cli("export", *args)
        assert code == 2 and len(err.strip().splitlines()) == 1 and phrase in err, (args, err)
    assert a_file.read_text() == "x"


TEACHER = REPO_ROOT / "artifacts" / "cifar10-teacher" / "teacher.safetensors"


@needs_export_timm
@pytest.mark.skipif(not TEACHER.is_file(), reason="no committed teacher in this checkout")
def test_committed_teacher_exports(cli, tmp_path):
    from spectralkd.features import create_model
    from spectralkd.runtime.checkpoint import load_weights

    out = tmp_path / "cifar10-cait"
    code, _, err = cli("export", "--checkpoint", TEACHER, "--out", out)
    assert code == 0, err
    _, card = load_weights(TEACHER)
    reference = create_model(card["model"], checkpoint=TEACHER, model_kwargs=card["model_kwargs"]).eval()
    loaded = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.equal(loaded(x), reference(x))
    assert loaded.pretrained_cfg["label_names"][:3] == ["airplane", "automobile", "bird"]
    assert list(loaded.pretrained_cfg["mean"]) == [0.4914, 0.4822, 0.4465]
    readme = (out / "README.md").read_text()
    assert "71.97 %" in readme and "None: trained from labels only" in readme


def test_old_timm_config_writer_is_one_line(cli, tmp_path, monkeypatch):
    from timm.models import _hub

    def old_writer(model, config_path, model_config=None, model_args=None):  # timm <= 1.0.30's signature
        raise AssertionError("must not be called")

    monkeypatch.setattr(_hub, "save_config_for_hf", old_writer)
    weights, _ = _tiny_run(tmp_path)
    code, _, err = cli("export", "--checkpoint", weights, "--out", tmp_path / "o")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "timm>=1.0.31" in err
