"""MDBN benchmarks: params/FLOPs per scale, CPU time per 256×256 LR image, tuned vs eager inference, and peak
memory of tiled vs untiled inference on a large LR image (each measured in its own subprocess: VmHWM, else ru_maxrss).

    .venv/bin/python benchmarks/bench_sr.py [--threads 1] [--mem-size 2048] [--tile 256] [--compile] [--skip-mem]

Prints one table per part; ratios are measured side by side in this run. Writes the sections it ran ("sizes",
"tuned", "memory_<mem-size>") into benchmarks/results/bench_sr.json (``--json``), keeping the others, each with its
machine, versions, command, date, printed lines and numbers. ``--quick``: LR 64², 1 repeat, memory at 256² with
128 px tiles (a smoke run of this script).
"""
from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from spectralkd.sr.inference import InferenceUpscaler
from spectralkd.sr.mdbn import MDBN, count_params, receptive_radius
from spectralkd.sr.tiling import upscale

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results  # noqa: E402  (machine/versions header and the JSON file shared by the benchmarks)


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


def peak_rss_mib() -> float:
    """This process's peak RSS in MiB: the kernel's VmHWM (Linux), else ru_maxrss. (ru_maxrss alone is inherited
    from the parent across fork+exec on Linux, so a big parent would hide the worker's own peak.)"""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_worker(args) -> None:
    """Run once (untiled or tiled) and print the process's peak RSS in MiB as JSON."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = MDBN(upscale=2).eval()
    lr = torch.rand(1, 3, args.mem_size, args.mem_size)
    base = peak_rss_mib()
    t = time.perf_counter()
    with torch.inference_mode():
        out = upscale(model, lr, tile=args.tile if args.worker == "tiled" else None)
    elapsed = time.perf_counter() - t
    peak = peak_rss_mib()
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
    p.add_argument("--quick", action="store_true", help="smoke run: LR 64², 1 repeat, memory at 256², 128 px tiles")
    p.add_argument("--json", type=Path, default=_results.RESULTS / "bench_sr.json", help="result file")
    p.add_argument("--worker", choices=("untiled", "tiled"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return memory_worker(args)
    if args.quick:
        args.size, args.repeat, args.mem_size, args.tile = 64, 1, 256, 128
    torch.set_num_threads(args.threads)
    settings = {k: getattr(args, k) for k in ("threads", "repeat", "size", "mem_size", "tile", "compile", "quick")}
    sections = {}
    head, say = _results.header(args.threads), _results.Recorder()
    say(f"torch {torch.__version__}, {args.threads} thread(s), LR {args.size}×{args.size}")

    if not args.skip_speed:
        say(f"\n| scale | params | GFLOPs / {args.size}² LR | GMACs / 720p HR | eager s / image | receptive radius |")
        say("|---|---|---|---|---|---|")
        x = torch.rand(1, 3, args.size, args.size)
        rows = []
        for s in (2, 3, 4):
            torch.manual_seed(0)
            m = MDBN(upscale=s).eval()
            g = flops(m, args.size, args.size) / 1e9
            macs720 = flops(m, 720 // s, 1280 // s) / 2e9
            with torch.inference_mode():
                t = best_time(m, x, args.repeat)
            rows.append({"scale": s, "params": count_params(m), "gflops_lr": g, "gmacs_720p_hr": macs720,
                         "eager_seconds": t, "receptive_radius": receptive_radius(m)})
            say(f"| x{s} | {count_params(m):,} | {g:.1f} | {macs720:.1f} | {t:.3f} | {receptive_radius(m)} |")
        sections["sizes"] = _results.section(head, settings, {"lr_size": args.size, "rows": rows}, say.lines)
        head, say = _results.header(args.threads), _results.Recorder()

        say(f"\n| x2, LR {args.size}² | seconds | speed-up vs eager | max abs diff vs eager |")
        say("|---|---|---|---|")
        torch.manual_seed(0)
        m = MDBN(upscale=2).eval()

        def eager(inp):
            with torch.no_grad():
                return m(inp)

        ref = eager(x)
        te = best_time(eager, x, args.repeat)
        say(f"| eager fp32 (no_grad, NCHW) | {te:.3f} | 1.00× | 0 |")
        paths = [{"path": "eager", "label": "eager fp32 (no_grad, NCHW)", "seconds": te, "speedup": 1.0,
                  "max_abs_diff": 0.0}]
        variants = [("tuned_fp32", "tuned fp32 (inference_mode, channels_last)", {}),
                    ("tuned_bf16", "tuned bf16", {"precision": "bf16"})]
        if args.compile:
            variants.append(("tuned_fp32_compile", "tuned fp32 + torch.compile", {"compile": True}))
        for key, name, kw in variants:
            tuned = InferenceUpscaler(copy.deepcopy(m), **kw)
            t = best_time(tuned, x, args.repeat)
            diff = (tuned(x) - ref).abs().max().item()
            paths.append({"path": key, "label": name, "seconds": t, "speedup": te / t, "max_abs_diff": diff})
            say(f"| {name} | {t:.3f} | {te / t:.2f}× | {diff:.2e} |")
        sections["tuned"] = _results.section(head, settings, {"scale": 2, "lr_size": args.size, "paths": paths,
                                                              "target_speedup": 1.3, "target_max_abs_diff": 1e-4},
                                             say.lines)
        head, say = _results.header(args.threads), _results.Recorder()

    if not args.skip_mem:
        say(f"\nPeak RSS, MDBN x2 on a {args.mem_size}×{args.mem_size} LR image (fresh process each):")
        say("| mode | peak RSS MiB | RSS before MiB | seconds |")
        say("|---|---|---|---|")
        results = {}
        for mode in ("tiled", "untiled"):
            cmd = [sys.executable, __file__, "--worker", mode, "--threads", str(args.threads),
                   "--mem-size", str(args.mem_size), "--tile", str(args.tile)]
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
            results[mode] = r
            label = f"tiled ({args.tile} px tiles, overlap {receptive_radius(MDBN())})" if mode == "tiled" else "untiled"
            say(f"| {label} | {r['peak_mib']:.0f} | {r['before_mib']:.0f} | {r['seconds']:.0f} |")
        ratio = results['untiled']['peak_mib'] / results['tiled']['peak_mib']
        say(f"untiled / tiled peak: {ratio:.1f}×; "
            f"output checksums {results['tiled']['checksum']:.6g} vs {results['untiled']['checksum']:.6g}")
        sections[f"memory_{args.mem_size}"] = _results.section(
            head, settings, {"scale": 2, "lr_size": args.mem_size, "tile": args.tile,
                             "overlap": receptive_radius(MDBN()), "modes": results, "untiled_over_tiled_peak": ratio},
            say.lines)
    if sections:
        _results.merge(args.json, "bench_sr", sections)


if __name__ == "__main__":
    main()
