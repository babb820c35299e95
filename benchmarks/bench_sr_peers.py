"""MDBN beside lightweight SR peers: params, FLOPs and CPU time per image at x2 and x4.

The peers are spandrel's architecture definitions (``pip install 'spectralkd[sr-peers]'``) at the lightweight
configurations their authors published, with random weights (timing and counts do not depend on the weights):

- SwinIR-light (Liang et al., ICCVW 2021): embed_dim 60, depths 4×6, heads 4×6, window 8, mlp_ratio 2,
  pixelshuffledirect upsampler (the configuration of the official ``main_test_swinir.py --task lightweight_sr``).
- SAFMN (Sun et al., ICCV 2023): dim 36, 8 blocks, ffn_scale 2 (the efficient-SR model).
- SPAN (Wan et al., CVPRW 2024): 48 feature channels (the official default).
- OmniSR (Wang et al., CVPR 2023): 64 features, 5 residual groups of 1 block, window 8, positional encoding.

Every model gets the same random LR input (1×3×S×S, default S = 128), the same thread count, fp32, under
``torch.inference_mode``; the time is the best of ``--repeat`` runs after one warm-up. MDBN is timed eager and on
the tuned path (``spectralkd.sr.inference``: channels-last, inference mode). FLOPs from
``torch.utils.flop_counter.FlopCounterMode`` (2 × multiply-adds of convolutions and matrix products; elementwise
ops are not counted). Run from the repository root:

    .venv/bin/python benchmarks/bench_sr_peers.py [--threads 1] [--size 128] [--repeat 3]

→ benchmarks/results/bench_sr_peers.json (and a Markdown table on stdout).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from spectralkd.sr import inference as sr_inference
from spectralkd.sr.mdbn import MDBN, count_params

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import _results  # noqa: E402  (machine/versions header shared by the benchmarks)
TUNED = sr_inference.InferenceUpscaler  # our tuned inference path (inference mode, channels-last)

# Published figures verified in the papers' text (anything not verified is None and shows as "not found").
PUBLISHED = {
    "SwinIR-light": {"params": {}, "psnr": {}, "source": "Liang et al., SwinIR, ICCVW 2021 (not verified here)"},
    "SAFMN": {"params": {}, "psnr": {}, "source": "Sun et al., SAFMN, ICCV 2023 (not verified here)"},
    "SPAN": {"params": {}, "psnr": {}, "source": "Wan et al., SPAN, CVPRW 2024 (not verified here)"},
    "OmniSR": {"params": {4: 792_000}, "psnr": {4: {"Urban100": 26.95}},
               "source": "Wang et al., Omni Aggregation Networks, CVPR 2023, abstract: 26.95 dB on Urban100 x4 "
                         "with 792K parameters"},
}


def build_peer(name: str, scale: int) -> torch.nn.Module:
    """A peer at its published lightweight configuration for ``scale`` (random weights, eval mode)."""
    if name == "SwinIR-light":
        from spandrel.architectures.SwinIR import SwinIR

        m = SwinIR(upscale=scale, img_size=64, window_size=8, img_range=1.0, depths=[6, 6, 6, 6], embed_dim=60,
                   num_heads=[6, 6, 6, 6], mlp_ratio=2, upsampler="pixelshuffledirect", resi_connection="1conv")
    elif name == "SAFMN":
        from spandrel.architectures.SAFMN import SAFMN

        m = SAFMN(dim=36, n_blocks=8, ffn_scale=2.0, upscaling_factor=scale)
    elif name == "SPAN":
        from spandrel.architectures.SPAN import SPAN

        m = SPAN(num_in_ch=3, num_out_ch=3, feature_channels=48, upscale=scale)
    elif name == "OmniSR":
        from spandrel.architectures.OmniSR import OmniSR

        m = OmniSR(num_in_ch=3, num_out_ch=3, num_feat=64, block_num=1, pe=True, window_size=8, res_num=5,
                   up_scale=scale, bias=True)
    elif name == "MDBN":
        m = MDBN(upscale=scale)
    else:
        raise ValueError(name)
    return m.eval()


PEERS = ("SwinIR-light", "SAFMN", "SPAN", "OmniSR")


def inference_params(name: str, model: torch.nn.Module) -> int:
    """Parameters the model computes with in eval mode. SPAN's re-parameterisable Conv3XC layers also store their
    training branches (``sk`` and ``conv``), merged into ``eval_conv`` at inference; those are left out."""
    if name != "SPAN":
        return count_params(model)
    return sum(p.numel() for k, p in model.named_parameters() if ".sk." not in k and ".conv." not in k)


def flops(model, x) -> int:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


def best_time(fn, x, repeat: int) -> float:
    fn(x)  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return min(times)


def eager(model):
    def run(x):
        with torch.inference_mode():
            return model(x)
    return run


def main() -> int:
    ap = argparse.ArgumentParser(description="MDBN vs lightweight SR peers (spandrel): params, FLOPs, CPU time")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--size", type=int, default=128, help="LR side (default 128)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_sr_peers.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import spandrel

    head, say = _results.header(args.threads), _results.Recorder()
    torch.manual_seed(0)
    x = torch.rand(1, 3, args.size, args.size)
    rows = []
    for scale in args.scales:
        for name in ("MDBN", *PEERS):
            torch.manual_seed(0)
            model = build_peer(name, scale)
            with torch.inference_mode():
                out = model(x)
            assert out.shape[-2:] == (args.size * scale, args.size * scale), (name, out.shape)
            row = {"model": name, "scale": scale, "params": inference_params(name, model),
                   "params_stored": count_params(model), "gflops": flops(model, x) / 1e9,
                   "seconds": best_time(eager(model), x, args.repeat)}
            if name == "MDBN" and TUNED is not None:
                row["seconds_tuned"] = best_time(TUNED(build_peer("MDBN", scale)), x, args.repeat)
            pub = PUBLISHED.get(name, {})
            row["published_params"] = pub.get("params", {}).get(scale)
            row["published_psnr"] = pub.get("psnr", {}).get(scale)
            rows.append(row)
            say(json.dumps(row))
    result = {"header": head, "settings": {"lr_size": args.size, "threads": args.threads, "repeat": args.repeat, "dtype": "float32",
                           "torch": torch.__version__, "spandrel": spandrel.__version__,
                           "machine": platform.machine(), "loadavg_at_end": os.getloadavg()},
              "sources": {k: v["source"] for k, v in PUBLISHED.items()}, "rows": rows}
    say(f"\nLR {args.size}², {args.threads} thread(s), fp32, best of {args.repeat}\n")
    say("| model | scale | params | GFLOPs | CPU s / image | published params |")
    say("|---|---|---:|---:|---:|---:|")
    for r in rows:
        t = f"{r['seconds']:.3f}" + (f" (tuned {r['seconds_tuned']:.3f})" if "seconds_tuned" in r else "")
        pub = f"{r['published_params']:,}" if r["published_params"] else "not found"
        say(f"| {r['model']} | x{r['scale']} | {r['params']:,} | {r['gflops']:.2f} | {t} | {pub} |")
    _results.finish(head)
    result["output"] = say.lines
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
