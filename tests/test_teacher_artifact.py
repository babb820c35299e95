"""The committed CIFAR-10 teacher: its card agrees with its log, its weights load, and the CLI reproduces its accuracy."""
import json
import tarfile

import pytest
import torch

from spectralkd.runtime.checkpoint import load_weights
from spectralkd.runtime.runlog import read_jsonl
from spectralkd.paths import REPO_ROOT

TEACHER = REPO_ROOT / "artifacts" / "cifar10-teacher"
WEIGHTS = TEACHER / "teacher.safetensors"
pytestmark = pytest.mark.skipif(not WEIGHTS.is_file(), reason="no committed teacher in this checkout")


def test_card_matches_the_training_log_and_the_size_limit():
    _, card = load_weights(WEIGHTS)
    log = read_jsonl(TEACHER / "log.jsonl")
    best = max(log, key=lambda r: r["val_top1"])
    assert (card["top1"], card["epoch"]) == (best["val_top1"], best["epoch"])
    assert card["status"] == "finished" and card["epochs_done"] == card["epochs_planned"] == log[-1]["epoch"]
    assert card["last_epoch"]["val_top1"] == log[-1]["val_top1"]
    assert WEIGHTS.stat().st_size < 20 * 2**20  # the brief's limit for committed artifacts


def test_weights_build_the_carded_model():
    from spectralkd.features import create_model

    _, card = load_weights(WEIGHTS)
    # the local-file route users take without a hub: timm model from the card, weights loaded strictly
    model = create_model(card["model"], checkpoint=WEIGHTS, model_kwargs=card["model_kwargs"], strict=True)
    n_params = sum(p.numel() for p in model.parameters())
    assert 1.5e6 < n_params < 1.7e6  # the documented 1.58M-parameter CaiT
    with torch.no_grad():
        logits = model.eval()(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


def _val_subset(archive, dest, per_class):
    """The first ``per_class`` validation images of every class, streamed out of the CIFAR-10 tarball."""
    counts = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) < 4 or parts[-3] != "val":
                continue
            cls = parts[-2]
            if counts.get(cls, 0) >= per_class:
                continue
            counts[cls] = counts.get(cls, 0) + 1
            out = dest / "val" / cls / parts[-1]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(tar.extractfile(member).read())
            if len(counts) == 10 and all(v >= per_class for v in counts.values()):
                break
    return counts


def test_cli_eval_reproduces_the_card_accuracy(cli, shared_data, tmp_path):
    counts = _val_subset(shared_data / "cifar10-jpg.tar.gz", tmp_path / "cifar", per_class=30)
    assert len(counts) == 10
    code, out, err = cli("eval", "--checkpoint", WEIGHTS, "--data", tmp_path / "cifar", "--json")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    top1 = result["top1"]
    # card: 71.97 % on all 10,000 images; on 300 images the binomial standard error is ~2.6 points
    assert 60.0 <= top1 <= 84.0, result
