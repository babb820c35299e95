"""`spectralkd train` / `distill` / `eval` end to end on the smoke recipes (generated images, tiny models)."""
import json
import math

import torch
import yaml
from conftest import run_cli

from spectralkd.runtime.checkpoint import load_weights
from spectralkd.runtime.runlog import read_jsonl
from spectralkd.paths import REPO_ROOT

TRAIN = REPO_ROOT / "configs" / "smoke" / "train.yaml"
DISTILL = REPO_ROOT / "configs" / "smoke" / "distill.yaml"


def test_train_smoke_writes_run_and_eval_reproduces_accuracy(tmp_path, synthetic_root):
    run = tmp_path / "run"
    code, _, err = run_cli("train", "--config", TRAIN, "--data", synthetic_root, "--out", run)
    assert code == 0, err
    assert "last epoch 1" in err and "best epoch 1" in err
    for name in ("config.yaml", "log.jsonl", "last.pt", "best.safetensors", "best.safetensors.json"):
        assert (run / name).is_file(), name
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["path"] == str(synthetic_root) and saved["model"]["name"] == "deit_tiny_patch16_224"

    (record,) = read_jsonl(run / "log.jsonl")
    for key in ("epoch", "lr", "train_loss", "loss_ce", "img_per_s", "val_top1", "val_top5"):
        assert key in record, key
    assert record["epoch"] == 1 and record["images"] == 6 * 16  # max_steps_per_epoch × batch_size
    assert 0 <= record["val_top1"] <= record["val_top5"] <= 100 and record["img_per_s"] > 0

    state = torch.load(run / "last.pt", weights_only=True)  # no pickled code needed
    assert state["epoch"] == 1 and set(state) >= {"model", "ema", "optimizer", "scheduler", "scaler", "rng"}
    weights, card = load_weights(run / "best.safetensors")
    assert all(torch.equal(weights[k], state["model"][k]) for k in weights)
    assert card["top1"] == record["val_top1"] and card["epoch"] == 1 and card["seed"] == 0
    assert card["command"].startswith("spectralkd train --config") and card["data"]["classes"][0] == "grating0"
    assert card["model_kwargs"]["num_classes"] == 10 and card["data"]["mean"] == [0.5, 0.5, 0.5]

    # An independent path (weights + model card → fresh model, transform, loader) gives the logged accuracy.
    code, out, err = run_cli("eval", "--checkpoint", run / "best.safetensors", "--data", synthetic_root,
                             "--precision", "bf16", "--num-workers", "0", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["images"] == 50
    assert math.isclose(result["top1"], record["val_top1"]) and math.isclose(result["top5"], record["val_top5"])


def test_distill_smoke_logs_components_that_sum_to_the_loss(tmp_path, synthetic_root):
    run = tmp_path / "run"
    code, _, err = run_cli("distill", "--config", DISTILL, "--data", synthetic_root, "--out", run)
    assert code == 0, err
    assert "pairs student [0, 1] ↔ teacher [1, 3]" in err
    (record,) = read_jsonl(run / "log.jsonl")
    parts = record["loss_ce"] + record["loss_kd"] + record["loss_fft"]
    assert math.isclose(record["train_loss"], parts, rel_tol=1e-6)
    assert record["loss_fft"] > 0 and record["loss_kd"] > 0


def test_distill_fft_mode_and_feature_variants_run(tmp_path, synthetic_root):
    code, _, err = run_cli("distill", "--config", DISTILL, "--data", synthetic_root, "--out", tmp_path / "fft",
                           "--set", "distill.mode=fft", "--set", "distill.feature_loss=band",
                           "--set", "max_steps_per_epoch=2", "--set", "max_val_batches=1")
    assert code == 0, err
    (record,) = read_jsonl(tmp_path / "fft" / "log.jsonl")
    assert "loss_kd" not in record
    assert math.isclose(record["train_loss"], record["loss_ce"] + record["loss_fft"], rel_tol=1e-6)


def test_training_learns_the_generated_set(tmp_path, synthetic_root):
    """Three short epochs of the engine take a small ViT from chance (10 %) to well above it."""
    from spectralkd.data import synthetic_imagefolder

    data = synthetic_imagefolder(train_per_class=100, val_per_class=10)
    code, _, err = run_cli("train", "--config", TRAIN, "--data", data, "--out", tmp_path / "run",
                           "--set", "epochs=3", "--set", "max_steps_per_epoch=null", "--set", "data.batch_size=32",
                           "--set", "optim.lr=3e-3", "--set", "aug.auto_augment=null", "--set", "aug.scale=[0.8,1.0]",
                           "--set", "model.kwargs={img_size: 32, patch_size: 4, depth: 2, embed_dim: 48, num_heads: 2}")
    assert code == 0, err
    log = read_jsonl(tmp_path / "run" / "log.jsonl")
    assert log[-1]["train_loss"] < log[0]["train_loss"] - 0.3
    assert max(r["val_top1"] for r in log) > 50.0


def test_capped_validation_sees_every_class():
    from spectralkd.distill.data_setup import interleaved_by_class

    labels = [0] * 4 + [1] * 4 + [2] * 4  # an ImageFolder lists val images class by class
    order = interleaved_by_class(labels)
    assert sorted(order) == list(range(12))
    assert [labels[i] for i in order[:6]] == [0, 1, 2, 0, 1, 2]


def test_holdout_protocol_validates_on_held_out_train_images_and_tests_once(tmp_path, synthetic_root):
    from conftest import run_cli

    out = tmp_path / "run"
    code, _, err = run_cli("distill", "--config", REPO_ROOT / "configs" / "smoke" / "distill.yaml", "--data",
                           synthetic_root, "--out", out, "--set", "epochs=2", "--set", "max_steps_per_epoch=2",
                           "--set", "data.holdout=30")
    assert code == 0, err
    assert "170 train / 30 held-out val / 50 test images" in err
    log = read_jsonl(out / "log.jsonl")
    assert "test_top1" not in log[0] and log[1]["test_images"] == 50  # the test split, once, after the last epoch
    assert 0 <= log[1]["test_top1"] <= 100 and log[1]["test_weights"] == "model"
    _, card = load_weights(out / "best.safetensors")
    assert card["data"]["num_train"] == 170 and card["data"]["num_val"] == 30 and card["data"]["holdout"] == 30
