"""`torchrun --nproc_per_node=2 -m spectralkd distill` on CPU (gloo): one log, rank-0 checkpoints, summed counts."""
import os
import socket
import subprocess
import sys

import torch

from spectralkd.runtime.checkpoint import load_weights
from spectralkd.runtime.runlog import read_jsonl
from spectralkd.paths import REPO_ROOT

DISTILL = REPO_ROOT / "configs" / "smoke" / "distill.yaml"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_distill_on_cpu(tmp_path, synthetic_root):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT / "src"), os.environ.get("SKD_TEST_EXTRA_PATH")]))}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "-m", "spectralkd", "distill", "--config", str(DISTILL),
           "--data", str(synthetic_root), "--out", str(out), "--set", "epochs=2", "--set", "max_steps_per_epoch=3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert proc.returncode == 0, "\n".join(l for l in proc.stderr.splitlines() if "spectralkd" in l or "Error" in l)[-3000:]
    assert "2 process(es)" in proc.stderr
    assert proc.stderr.count("spectralkd distill: done.") == 1  # rank 0 reports

    log = read_jsonl(out / "log.jsonl")
    assert [r["epoch"] for r in log] == [1, 2]  # rank 0 writes once per epoch
    assert all(r["images"] == 2 * 3 * 16 for r in log)  # both processes' images are counted
    # Validation shards are disjoint and summed: accuracy is a multiple of 1/50 of the 50 validation images.
    assert all(abs(r["val_top1"] * 50 / 100 - round(r["val_top1"] * 50 / 100)) < 1e-6 for r in log)
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["epoch"] == 2 and not any(k.startswith("module.") for k in state["model"])
    weights, card = load_weights(out / "best.safetensors")
    assert card["config"]["data"]["batch_size"] == 16 and set(weights) == set(state["model"])
