"""MDBN benchmarks: params/FLOPs per scale, CPU time per 256×256 LR image, tuned vs eager inference, and peak
memory of tiled vs untiled inference on a large LR image (each measured in its own subprocess via ru_maxrss).

    .venv/bin/python benchmarks/bench_sr.py [--threads 1] [--mem-size 2048] [--tile 256] [--compile] [--skip-mem]

Prints one table per part; ratios are measured side by side in this run.
"""
from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from spectralkd.sr.inference import InferenceUpscaler
from spectralkd.sr.mdbn import MDBN, count_params, receptive_radius
from spectralkd.sr.tiling import upscale


def best_times(fns: dict, x, repeat: int) -> dict:
    """Best of ``repeat`` seconds for each named callable on ``x``, after one warm-up each. The callables take
    turns (round-robin), so load from other jobs on a shared machine hits every one of them alike."""
    for fn in fns.values():
        fn(x)  # warm-up
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn(x)
            times[name].append(time.perf_counter() - t)
    return {name: min(ts) for name, ts in times.items()}


def best_time(fn, x, repeat: int) -> float:
    return best_times({"fn": fn}, x, repeat)["fn"]


def flops(model, h, w) -> int:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, h, w))
    return counter.get_total_flops()


def memory_worker(args) -> None:
    """Run once (untiled or tiled) and print the process's peak RSS in MiB as JSON."""
    import resource

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = MDBN(upscale=2).eval()
    lr = torch.rand(1, 3, args.mem_size, args.mem_size)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    with torch.inference_mode():
        out = upscale(model, lr, tile=args.tile if args.worker == "tiled" else None)
    elapsed = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": args.worker, "peak_mib": peak, "before_mib": base, "seconds": elapsed,
                      "out": list(out.shape), "checksum": float(out.double().sum())}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--size", type=int, default=256, help="LR side for timing")
    p.add_argument("--mem-size", type=int, default=2048, help="LR side for the memory comparison")
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--compile", action="store_true", help="also time torch.compile (slow first call)")
    p.add_argument("--skip-mem", action="store_true")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--worker", choices=("untiled", "tiled"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return memory_worker(args)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), LR {args.size}×{args.size}")

    if not args.skip_speed:
        print("\n| scale | params | GFLOPs / 256² LR | GMACs / 720p HR | eager s / image | receptive radius |")
        print("|---|---|---|---|---|---|")
        x = torch.rand(1, 3, args.size, args.size)
        for s in (2, 3, 4):
            torch.manual_seed(0)
            m = MDBN(upscale=s).eval()
            g = flops(m, args.size, args.size) / 1e9
            macs720 = flops(m, 720 // s, 1280 // s) / 2e9
            with torch.inference_mode():
                t = best_time(m, x, args.repeat)
            print(f"| x{s} | {count_params(m):,} | {g:.1f} | {macs720:.1f} | {t:.3f} | {receptive_radius(m)} |")

        print("\n| x2, LR 256² | seconds | speed-up vs eager | max abs diff vs eager |")
        print("|---|---|---|---|")
        torch.manual_seed(0)
        m = MDBN(upscale=2).eval()

        def eager(inp):
            with torch.no_grad():
                return m(inp)

        ref = eager(x)
        te = best_time(eager, x, args.repeat)
        print(f"| eager fp32 (no_grad, NCHW) | {te:.3f} | 1.00× | 0 |")
        variants = [("tuned fp32 (inference_mode, channels_last)", {}), ("tuned bf16", {"precision": "bf16"})]
        if args.compile:
            variants.append(("tuned fp32 + torch.compile", {"compile": True}))
        for name, kw in variants:
            tuned = InferenceUpscaler(copy.deepcopy(m), **kw)
            t = best_time(tuned, x, args.repeat)
            diff = (tuned(x) - ref).abs().max().item()
            print(f"| {name} | {t:.3f} | {te / t:.2f}× | {diff:.2e} |")

    if not args.skip_mem:
        print(f"\nPeak RSS, MDBN x2 on a {args.mem_size}×{args.mem_size} LR image (fresh process each):")
        print("| mode | peak RSS MiB | RSS before MiB | seconds |")
        print("|---|---|---|---|")
        results = {}
        for mode in ("tiled", "untiled"):
            cmd = [sys.executable, __file__, "--worker", mode, "--threads", str(args.threads),
                   "--mem-size", str(args.mem_size), "--tile", str(args.tile)]
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
            results[mode] = r
            label = f"tiled ({args.tile} px tiles, overlap {receptive_radius(MDBN())})" if mode == "tiled" else "untiled"
            print(f"| {label} | {r['peak_mib']:.0f} | {r['before_mib']:.0f} | {r['seconds']:.0f} |")
        print(f"untiled / tiled peak: {results['untiled']['peak_mib'] / results['tiled']['peak_mib']:.1f}×; "
              f"output checksums {results['tiled']['checksum']:.6g} vs {results['untiled']['checksum']:.6g}")


if __name__ == "__main__":
    main()
