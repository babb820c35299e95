"""What scale does the spectral loss pull a narrower student towards? The teacher's own maps against the
channel-pooled maps the loss compares with (the committed CIFAR-10 teacher, 96 → 64 channels).

    .venv/bin/python benchmarks/cifar10_pooled_scale.py [--num-images 1000] [--student-width 64]

Per teacher block: RMS of the map and of the map average-pooled over channels to the student's width (the
target of ``spectral_alignment_loss`` and ``feature_mse``), on evenly spread validation images of the shared
CIFAR-10. Writes benchmarks/results/cifar10_kd/pooled_scale.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "artifacts" / "cifar10-teacher" / "teacher.safetensors"


def main() -> int:
    from spectralkd.data import analysis_images, data_config, eval_transform, open_rgb, shared_cifar10
    from spectralkd.runtime.checkpoint import load_weights
    from spectralkd.distill.losses import pool_channels
    from spectralkd.features import create_model
    from spectralkd.features.maps import block_maps

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--num-images", type=int, default=1000)
    ap.add_argument("--student-width", type=int, default=64)
    args = ap.parse_args()
    data = shared_cifar10()
    if data is None:
        sys.exit("cifar10_pooled_scale: the shared CIFAR-10 (../shared/data/cifar10-jpg.tar.gz) is absent")
    _, card = load_weights(WEIGHTS)
    model = create_model(card["model"], checkpoint=WEIGHTS, model_kwargs=card["model_kwargs"]).eval()
    files = analysis_images(data, "val")
    files = files[:: max(1, len(files) // args.num_images)][: args.num_images]  # spread over the class folders
    tf = eval_transform(data_config(model, 32, mean=card["data"]["mean"], std=card["data"]["std"], crop_pct=1.0))
    sums = {}  # block → [teacher Σx², teacher count, pooled Σx², pooled count], over all batches
    with torch.no_grad():
        for i in range(0, len(files), 100):
            x = torch.stack([tf(open_rgb(f)) for f in files[i:i + 100]])
            for b, m in enumerate(block_maps(model, x)):
                pooled = pool_channels(m.float(), args.student_width)
                acc = sums.setdefault(b, [0.0, 0, 0.0, 0])
                acc[0] += m.float().pow(2).sum().item()
                acc[1] += m.numel()
                acc[2] += pooled.pow(2).sum().item()
                acc[3] += pooled.numel()
                width = m.shape[1]
    n = len(files)
    rows = []
    for b, (ss_t, n_t, ss_p, n_p) in sums.items():
        rms_t, rms_p = (ss_t / n_t) ** 0.5, (ss_p / n_p) ** 0.5
        rows.append({"block": b, "teacher_rms": round(rms_t, 4), "pooled_rms": round(rms_p, 4),
                     "ratio": round(rms_t / rms_p, 3)})
        print(f"block {b:2d}: teacher RMS {rms_t:.4f}  pooled to {args.student_width} ch {rms_p:.4f}  "
              f"ratio {rms_t / rms_p:.3f}")
    out = ROOT / "benchmarks" / "results" / "cifar10_kd" / "pooled_scale.json"
    out.write_text(json.dumps({"images": n, "teacher_width": int(width), "student_width": args.student_width,
                               "command": "python benchmarks/cifar10_pooled_scale.py " + " ".join(sys.argv[1:]),
                               "blocks": rows}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
