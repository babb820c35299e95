"""Benchmark: spectralkd's spectral measures vs a straightforward numpy implementation of the same definitions.

CaiT-S24-shaped features by default (24 layers × 32 images × 384 channels × 14×14, float32). Each side runs in
its own process (same generated features, same thread count) so that the peak memory of one does not hide the
other's; the parent prints times per measure and for the full set, ratios, the peak RSS above the input features
(kernel VmHWM, reset after a warm-up), and the largest relative difference of every value.

    .venv/bin/python benchmarks/bench_spectral.py                 # full size, 1 thread each
    .venv/bin/python benchmarks/bench_spectral.py --layers 4      # quicker
    .venv/bin/python benchmarks/bench_spectral.py --quick         # smoke run: 2 layers × 4 images, 1 repeat

Writes benchmarks/results/bench_spectral.json (``--json``): machine, versions, command, date, the printed lines and
every figure (times, ratios, memory, differences).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _results  # noqa: E402  (machine/versions header and the JSON file shared by the benchmarks)

LABELS = {"spectrum": "channel spectrum + intensity", "entropy": "channel entropy", "svd_rank": "SVD energy ranks",
          "spatial": "spatial spectra", "all": "full measure set (+RMS, range)"}


def make_features(layers: int, images: int, channels: int, size: int, seed: int = 0):
    """float32 numpy maps with per-layer scale, channel offsets, a low-rank part and heavy-ish tails."""
    rng = np.random.default_rng(seed)
    maps = []
    for layer in range(layers):
        scale = 0.5 + 2.5 * layer / max(layers - 1, 1)
        x = rng.standard_normal((images, channels, size, size), dtype=np.float32)
        x += 0.3 * rng.standard_normal((1, channels, 1, 1), dtype=np.float32)
        basis = rng.standard_normal((8, channels), dtype=np.float32)
        coef = rng.standard_normal((images, size * size, 8), dtype=np.float32) * 2
        x += (coef @ basis).transpose(0, 2, 1).reshape(images, channels, size, size)
        x[rng.random(x.shape) < 1e-3] *= 6  # a few outliers stretch the global range, as real activations do
        maps.append((scale * x).astype(np.float32))
    return maps


def _reset_peak() -> int:
    """Reset the kernel's peak-RSS counter (Linux) and return the current RSS in bytes."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status("VmRSS")


def _status(key: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _timed(fn, *args) -> np.ndarray:
    """(wall seconds, CPU seconds of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return np.array([time.perf_counter() - wall, time.process_time() - cpu])


def _median(values):
    return sorted(values, key=lambda v: v[0])[len(values) // 2].tolist()


def memory_worker(impl: str, args, out_path: str) -> None:
    """Peak RSS above the inputs of one full measure set (run with a fixed glibc mmap threshold, see main)."""
    maps_np = make_features(args.layers, args.images, args.channels, args.size)
    if impl == "ours":
        import torch

        torch.set_num_threads(args.threads)
        from spectralkd.spectral import measure_all

        maps = [torch.from_numpy(m) for m in maps_np]
        measure_all([m[:2] for m in maps[:2]], bins=args.bins)
        base = _reset_peak()
        measure_all(maps, bins=args.bins)
    else:
        sys.path.insert(0, str(HERE))
        import spectral_reference as ref

        ref.all_measures([m[:2] for m in maps_np[:2]], bins=args.bins)
        base = _reset_peak()
        ref.all_measures(maps_np, bins=args.bins)
    Path(out_path).write_text(json.dumps({"peak_bytes": _status("VmHWM") - base}))


def worker(impl: str, args, out_path: str) -> None:
    if impl.endswith("-mem"):
        return memory_worker(impl[:-4], args, out_path)
    maps_np = make_features(args.layers, args.images, args.channels, args.size)
    if impl == "ours":
        import torch

        torch.set_num_threads(args.threads)
        from spectralkd.spectral import channel_entropy, channel_spectrum, energy_ranks, measure_all
        from spectralkd.spectral.spatial import spatial_energy

        maps = [torch.from_numpy(m) for m in maps_np]
        measure_all([m[:2] for m in maps[:2]], bins=args.bins)  # warm-up
        parts = {"spectrum": [], "entropy": [], "svd_rank": [], "spatial": [], "all": []}
        layers = [None]
        for _ in range(args.repeat):
            parts["spectrum"].append(sum(_timed(channel_spectrum, m) for m in maps))
            parts["entropy"].append(_timed(channel_entropy, maps, args.bins))
            parts["svd_rank"].append(sum(_timed(energy_ranks, m) for m in maps))
            parts["spatial"].append(sum(_timed(spatial_energy, m) for m in maps))
            parts["all"].append(_timed(lambda: layers.__setitem__(0, measure_all(maps, bins=args.bins))))
        layers = layers[0]
        values = [{"intensity": r.intensity, "entropy": r.entropy, "rms": r.rms, "svd_rank_99": r.svd_ranks[0.99],
                   "high_freq_ratio": r.high_freq_ratio, "spectrum": r.spectrum.tolist(),
                   "radial_power": r.radial_power.tolist()} for r in layers]
        times = {k: _median(v) for k, v in parts.items()}
    else:
        sys.path.insert(0, str(HERE))
        import spectral_reference as ref

        ref.all_measures([m[:2] for m in maps_np[:2]], bins=args.bins)
        times = {"spectrum": sum(_timed(ref.channel_spectrum, m) for m in maps_np).tolist(),
                 "entropy": _timed(ref.channel_entropy, maps_np, args.bins).tolist(),
                 "svd_rank": sum(_timed(ref.svd_rank, m) for m in maps_np).tolist(),
                 "spatial": sum(_timed(ref.radial_spectrum, m) for m in maps_np).tolist()}
        layers = [None]
        times["all"] = _timed(lambda: layers.__setitem__(0, ref.all_measures(maps_np, bins=args.bins))).tolist()
        layers = layers[0]
        values = [{k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in r.items()} for r in layers]
    Path(out_path).write_text(json.dumps({"times": times, "values": values}))


def max_rel_diff(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=24)
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--channels", type=int, default=384)
    p.add_argument("--size", type=int, default=14)
    p.add_argument("--bins", type=int, default=100)
    p.add_argument("--threads", type=int, default=1, help="threads for both sides (torch, BLAS/LAPACK, FFT)")
    p.add_argument("--repeat", type=int, default=3, help="runs of ours (median reported); numpy runs once")
    p.add_argument("--worker", choices=["ours", "numpy", "ours-mem", "numpy-mem"], help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="smoke run: 2 layers × 4 images, 1 repeat")
    p.add_argument("--json", type=Path, default=_results.RESULTS / "bench_spectral.json", help="result file")
    args = p.parse_args()
    if args.worker:
        worker(args.worker, args, args.out)
        return 0
    if args.quick:
        args.layers, args.images, args.repeat = 2, 4, 1
    head, say = _results.header(args.threads), _results.Recorder()

    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[key] = str(args.threads)
    # Memory is measured in separate runs with a fixed glibc mmap threshold: otherwise freed multi-MB buffers stay
    # in the heap and RSS shows allocator caching rather than live memory. (Not for the timed runs: returning
    # every buffer to the OS costs page faults.)
    mem_env = dict(env, MALLOC_MMAP_THRESHOLD_="131072")
    shape = f"{args.layers} layers × {args.images} images × {args.channels} ch × {args.size}×{args.size}"
    say(f"features: {shape} float32 ({args.layers * args.images * args.channels * args.size ** 2 * 4 / 2**20:.0f} MiB), "
          f"bins={args.bins}, threads={args.threads}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for impl in ("ours", "numpy", "ours-mem", "numpy-mem"):
            out = os.path.join(tmp, f"{impl}.json")
            cmd = [sys.executable, __file__, "--worker", impl, "--out", out] + [
                f"--{k}={getattr(args, k)}" for k in ("layers", "images", "channels", "size", "bins", "threads", "repeat")]
            subprocess.run(cmd, env=mem_env if impl.endswith("-mem") else env, check=True)
            results[impl] = json.loads(Path(out).read_text())
    ours, ref = results["ours"], results["numpy"]
    say(f"{'':34}{'wall time [s]':^33}{'CPU time of the process [s]':^33}")
    say(f"{'':34}" + f"{'spectralkd':>12}{'numpy':>12}{'ratio':>9}" * 2)
    measures = {}
    for key, label in LABELS.items():
        line = f"{label:34}"
        row = {}
        for i, kind in enumerate(("wall", "cpu")):
            a, b = ours["times"][key][i], ref["times"][key][i]
            line += f"{a:12.3f}{b:12.3f}{b / a:8.1f}×"
            row[kind] = {"spectralkd_s": a, "numpy_s": b, "ratio": b / a}
        measures[key] = row
        say(line)
    mib = 2 ** 20
    memory = {"spectralkd_mib": results['ours-mem']['peak_bytes'] / mib,
              "numpy_mib": results['numpy-mem']['peak_bytes'] / mib}
    say(f"{'peak memory above inputs [MiB]':34}{memory['spectralkd_mib']:12.1f}{memory['numpy_mib']:12.1f}")
    if hasattr(os, "getloadavg"):
        say(f"load average during the run: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} CPUs)")
    worst = {}
    for a, b in zip(ours["values"], ref["values"]):
        for key in a:
            worst[key] = max(worst.get(key, 0.0), max_rel_diff(a[key], b[key]))
    say("max relative difference: " + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))
    ok = all(v <= 1e-5 for v in worst.values())
    say("values equal within 1e-5 relative" if ok else "VALUES DIFFER beyond 1e-5 relative")
    # The measure set without the SVD ranks: the sum of the other parts (what the docs quote beside the full set).
    no_svd = {kind: {side: sum(measures[k][kind][side] for k in ("spectrum", "entropy", "spatial"))
                     for side in ("spectralkd_s", "numpy_s")} for kind in ("wall", "cpu")}
    for row in no_svd.values():
        row["ratio"] = row["numpy_s"] / row["spectralkd_s"]
    settings = {k: getattr(args, k) for k in ("layers", "images", "channels", "size", "bins", "threads", "repeat",
                                              "quick")}
    settings["feature_mib"] = args.layers * args.images * args.channels * args.size ** 2 * 4 / 2 ** 20
    res = {"measures": measures, "without_svd_ranks": no_svd, "peak_memory_above_inputs": memory,
           "max_relative_difference": worst, "values_equal_within_1e-5": ok,
           "targets": {"entropy_ratio": 20.0, "full_set_ratio": 10.0}}
    _results.merge(args.json, "bench_spectral", {"main": _results.section(head, settings, res, say.lines)})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
