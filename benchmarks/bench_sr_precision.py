"""bf16 against fp32 on the shipped MDBN x2: PSNR of the bf16 output against the fp32 output (the uint8 RGB images
`sr upscale` writes, whole image; and the float outputs), per set, plus each precision's PSNR-Y against HR.

    .venv/bin/python benchmarks/bench_sr_precision.py [--weights artifacts/sr/mdbn_x2_cpu.safetensors] \
        [--data ../shared/data/sr/Set5 ../shared/data/sr/Set14] [--threads 1]

Both precisions run through `InferenceUpscaler` (the `sr upscale` path: inference mode, channels-last).
Writes benchmarks/results/bench_sr_precision.json (``--json``): machine, versions, command, date, the printed
lines and every figure per set. ``--quick``: the first 2 images of each set.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from spectralkd.paths import REPO_ROOT, shared_data_dir
from spectralkd.sr.datasets import PairedSet, to_tensor, to_uint8_image
from spectralkd.sr.inference import InferenceUpscaler
from spectralkd.sr.loading import load_sr_model
from spectralkd.sr.metrics import psnr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results  # noqa: E402  (machine/versions header and the JSON file shared by the benchmarks)

SHIPPED = REPO_ROOT / "artifacts" / "sr" / "mdbn_x2_cpu.safetensors"


def float_psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (peak 1) of two float images clamped to [0, 1]."""
    mse = float((a.clamp(0, 1).double() - b.clamp(0, 1).double()).pow(2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def main() -> None:
    shared = shared_data_dir()
    p = argparse.ArgumentParser()
    p.add_argument("--weights", default=str(SHIPPED))
    p.add_argument("--data", nargs="+", default=[str(shared / "sr" / s) for s in ("Set5", "Set14")] if shared else None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="the first 2 images of each set only")
    p.add_argument("--json", type=Path, default=_results.RESULTS / "bench_sr_precision.json", help="result file")
    args = p.parse_args()
    head, say = _results.header(args.threads), _results.Recorder()
    sets = []
    torch.set_num_threads(args.threads)
    model = load_sr_model(args.weights)
    scale = model.upscale
    fp32 = InferenceUpscaler(model, precision="fp32")
    bf16 = InferenceUpscaler(model, precision="bf16")
    say(f"torch {torch.__version__}, {args.threads} thread(s), {Path(args.weights).name} (x{scale})")
    say("\n| set | images | bf16 vs fp32 PSNR, uint8 RGB: min / mean dB | float: min dB | max abs diff (float) "
          "| max uint8 diff | PSNR-Y vs HR fp32 / bf16 | seconds fp32 / bf16 |")
    say("|---|---|---|---|---|---|---|---|")
    for root in args.data:
        ds = PairedSet(root, scale)
        rows = []
        for i in range(min(len(ds), 2) if args.quick else len(ds)):
            _, lr, hr = ds[i]
            x = to_tensor(lr)[None]
            t = time.perf_counter()
            a = fp32(x)[0]
            t1 = time.perf_counter()
            b = bf16(x)[0]
            t2 = time.perf_counter()
            ua, ub = to_uint8_image(a), to_uint8_image(b)
            rows.append({"rgb": psnr(ub, ua, 0, y_channel=False), "float": float_psnr(b, a),
                         "diff": float((b - a).abs().max()),
                         "u8": int(np.abs(ua.astype(int) - ub.astype(int)).max()),
                         "y32": psnr(ua, hr, scale), "y16": psnr(ub, hr, scale), "t32": t1 - t, "t16": t2 - t1})
        col = {k: [r[k] for r in rows] for k in rows[0]}
        sets.append({"set": ds.name, "images": len(rows), "rgb_psnr_min": min(col['rgb']),
                     "rgb_psnr_mean": float(np.mean(col['rgb'])), "float_psnr_min": min(col['float']),
                     "max_abs_diff_float": max(col['diff']), "max_uint8_diff": max(col['u8']),
                     "psnr_y_fp32": float(np.mean(col['y32'])), "psnr_y_bf16": float(np.mean(col['y16'])),
                     "seconds_fp32": sum(col['t32']), "seconds_bf16": sum(col['t16']), "per_image": rows})
        say(f"| {ds.name} | {len(rows)} | {min(col['rgb']):.2f} / {np.mean(col['rgb']):.2f} | "
              f"{min(col['float']):.2f} | {max(col['diff']):.2e} | {max(col['u8'])} | "
              f"{np.mean(col['y32']):.3f} / {np.mean(col['y16']):.3f} | {sum(col['t32']):.0f} / {sum(col['t16']):.0f} |")
    settings = {"weights": Path(args.weights).name, "scale": scale, "data": [Path(d).name for d in args.data],
                "threads": args.threads, "quick": args.quick}
    _results.merge(args.json, "bench_sr_precision",
                   {"main": _results.section(head, settings, {"sets": sets, "target_min_psnr_db": 40.0}, say.lines)})


if __name__ == "__main__":
    main()
