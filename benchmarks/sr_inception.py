"""MDBN vs a GoogLeNet-like block: train the inception net with configs/sr/inception_x2_cpu.yaml (the budget, seed,
data and schedule of mdbn_x2_cpu / plain_x2_cpu) and test it on Set5/Set14. Run from the repository root:

    nohup python benchmarks/sr_inception.py > runs/sr/inception_x2_cpu.log 2>&1 &
    python benchmarks/sr_inception.py --bench   # params, FLOPs, CPU s per 256² LR image: MDBN, plain, inception

Training is ``spectralkd sr train --config configs/sr/inception_x2_cpu.yaml`` (model.arch inception).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
os.chdir(ROOT)


def bench(size: int = 256, repeat: int = 3) -> dict:
    """Params, GFLOPs and best-of-``repeat`` CPU seconds (1 thread, fp32, inference_mode) per size² LR image at x2
    for MDBN, the plain net and the inception net (random weights); → benchmarks/results/sr/inception_x2_cpu/."""
    import json
    import time

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from spectralkd.sr.inception import InceptionSRNet
    from spectralkd.sr.mdbn import MDBN, count_params
    from spectralkd.sr.plainnet import PlainResNet

    torch.set_num_threads(1)
    x = torch.rand(1, 3, size, size)
    rows = []
    for name, cls in (("mdbn", MDBN), ("plain", PlainResNet), ("inception", InceptionSRNet)):
        torch.manual_seed(0)
        model = cls(upscale=2).eval()
        with torch.inference_mode(), FlopCounterMode(display=False) as fc:
            model(x)
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            with torch.inference_mode():
                model(x)
            times.append(time.perf_counter() - t)
        rows.append({"arch": name, "params": count_params(model), "gflops": fc.get_total_flops() / 1e9,
                     "seconds": min(times)})
        print(json.dumps(rows[-1]), flush=True)
    out = {"lr_size": size, "scale": 2, "threads": 1, "repeat": repeat, "torch": torch.__version__,
           "loadavg_at_end": os.getloadavg(), "rows": rows}
    path = Path("benchmarks/results/sr/inception_x2_cpu/bench_256.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    return out


def main() -> int:
    from spectralkd.cli import main as cli

    if "--bench" in sys.argv[1:]:
        bench()
        return 0
    from spectralkd.paths import shared_path

    out = Path("runs/sr/inception_x2_cpu")
    sets = [str(shared_path("sr", "Set5")), str(shared_path("sr", "Set14"))]
    args = ["sr", "train", "--config", "configs/sr/inception_x2_cpu.yaml", "--set", "progress=false"]
    if (out / "last.pt").exists():
        args = ["sr", "train", "--resume", str(out), "--set", "progress=false"]
    rc = cli(args)
    if rc:
        return rc
    for w in ("best", "last"):
        rc = cli(["sr", "test", "--model", "mdbn", "--weights", str(out / f"{w}.safetensors"), "--scale", "2",
                  "--data", *sets, "--out", str(out / f"test_{w}.json")])
        if rc:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
