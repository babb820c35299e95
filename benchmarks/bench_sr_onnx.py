"""onnxruntime CPU against our torch paths, MDBN x2 fp32, same inputs and thread count, best of N, one run:
plain eager (`no_grad`, NCHW), `InferenceUpscaler` (inference mode, channels-last) and onnxruntime (the model
written by `spectralkd sr export`, CPUExecutionProvider, default graph optimisations, intra-op threads = --threads).
The paths are timed in turn (round-robin), so load from other jobs hits each of them alike.

    .venv/bin/python benchmarks/bench_sr_onnx.py [--weights artifacts/sr/mdbn_x2_cpu.safetensors] \
        [--sizes 128 256] [--threads 1] [--repeat 5] [--quick]

Needs the [onnx] extra (onnx, onnxscript, onnxruntime). Writes benchmarks/results/bench_sr_onnx.json (``--json``):
machine, versions, command, date, the printed lines and every row.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results  # noqa: E402  (machine/versions header and the JSON file shared by the benchmarks)
from bench_sr import best_times  # noqa: E402  (the timing helper shared by the SR benchmarks)

from spectralkd.paths import REPO_ROOT  # noqa: E402
from spectralkd.sr.export import export_onnx, onnx_session, run_onnx  # noqa: E402
from spectralkd.sr.inference import InferenceUpscaler  # noqa: E402
from spectralkd.sr.loading import load_sr_model  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--weights", default=str(REPO_ROOT / "artifacts" / "sr" / "mdbn_x2_cpu.safetensors"))
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="square LR sides")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="smoke run: LR 64² only, 1 repeat")
    p.add_argument("--json", type=Path, default=_results.RESULTS / "bench_sr_onnx.json", help="result file")
    args = p.parse_args()
    if args.quick:
        args.sizes, args.repeat = [64], 1
    torch.set_num_threads(args.threads)
    import onnxruntime

    head, say = _results.header(args.threads), _results.Recorder()
    rows = []

    eager_model = load_sr_model(args.weights)
    tuned = InferenceUpscaler(load_sr_model(args.weights))
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(load_sr_model(args.weights), Path(tmp) / "model.onnx")
        session = onnx_session(path, threads=args.threads)

        def eager(x):
            with torch.no_grad():
                return eager_model(x)

        paths = {"eager fp32 (no_grad, NCHW)": eager, "InferenceUpscaler fp32 (inference_mode, channels_last)": tuned,
                 f"onnxruntime {onnxruntime.__version__} fp32 (CPU EP)": lambda x: run_onnx(session, x)}
        keys = dict(zip(paths, ("eager", "inference_upscaler", "onnxruntime")))
        say(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {args.threads} thread(s), "
              f"{Path(args.weights).name}, best of {args.repeat} after one warm-up, paths timed in turn")
        say("\n| LR size | path | seconds | speed vs eager | speed vs InferenceUpscaler | max abs diff vs eager |")
        say("|---|---|---|---|---|---|")
        for size in args.sizes:
            x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(size))
            ref = eager(x)
            times = best_times(paths, x, args.repeat)  # round-robin: load hits all paths alike
            t_eager, t_tuned = times["eager fp32 (no_grad, NCHW)"], times[list(paths)[1]]
            for name, fn in paths.items():
                diff = float((fn(x) - ref).abs().max())
                rows.append({"lr_size": size, "path": keys[name], "label": name, "seconds": times[name],
                             "speed_vs_eager": t_eager / times[name], "speed_vs_inference_upscaler": t_tuned / times[name],
                             "max_abs_diff_vs_eager": diff})
                say(f"| {size}×{size} | {name} | {times[name]:.3f} | {t_eager / times[name]:.2f}× | "
                    f"{t_tuned / times[name]:.2f}× | {diff:.1e} |")
    settings = {"weights": Path(args.weights).name, "sizes": args.sizes, "threads": args.threads, "repeat": args.repeat,
                "quick": args.quick, "onnxruntime": onnxruntime.__version__}
    _results.merge(args.json, "bench_sr_onnx", {"main": _results.section(head, settings, {"rows": rows}, say.lines)})


if __name__ == "__main__":
    main()
