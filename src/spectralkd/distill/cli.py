"""`spectralkd train`, `spectralkd distill`, `spectralkd eval` (argument parsing only)."""
from __future__ import annotations

import json
import sys

from spectralkd.config.argtypes import fraction, nonneg_int, pos_float, pos_int, unit


def _add_run_args(parser) -> None:
    parser.add_argument("--config", metavar="FILE.yaml", help="run config (see configs/ and docs/distill.md)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set optim.lr=1e-3 (repeatable; value parsed as YAML)")
    parser.add_argument("--data", metavar="PATH", help="ImageFolder root or .tar/.tar.gz with train/ and val/ "
                        "(default: config data.path, else the shared CIFAR-10, else the generated set)")
    parser.add_argument("--out", metavar="RUN_DIR", help="run directory (default: config out, else runs/<command>-<time>)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR (extend with --set epochs=N)")


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a model without a teacher (teachers, no-KD baselines)",
                              description="Train a timm model on an ImageFolder dataset (same engine as distill, no teacher).")
    _add_run_args(p)
    p.set_defaults(func=_run_train)

    p = subparsers.add_parser("distill", help="distill a teacher into a student (SpectralKD and variants)",
                              description="Knowledge distillation with the SpectralKD spectral loss, logit KD and ablations. "
                              "Multi-process: torchrun --nproc_per_node=N -m spectralkd distill ...")
    _add_run_args(p)
    p.set_defaults(func=_run_distill)

    p = subparsers.add_parser("eval", help="top-1/top-5 accuracy of a checkpoint on a labelled split",
                              description="Evaluate weights (best.safetensors, or a .pt/.pth state) on <data>/<split>.")
    p.add_argument("--checkpoint", required=True, metavar="FILE")
    p.add_argument("--model", metavar="NAME", help="timm model name (default: from the checkpoint's model card)")
    p.add_argument("--model-kwargs", metavar="JSON", help="model kwargs as JSON (default: from the model card)")
    p.add_argument("--data", metavar="PATH", help="ImageFolder root or tarball (default: shared CIFAR-10 or generated set)")
    p.add_argument("--split", default="val", choices=("train", "val"))
    p.add_argument("--input-size", type=pos_int, metavar="PX")
    p.add_argument("--mean", type=unit, nargs=3, metavar=("R", "G", "B"), help="normalisation mean (default: model card)")
    p.add_argument("--std", type=pos_float, nargs=3, metavar=("R", "G", "B"), help="normalisation std (default: model card)")
    p.add_argument("--crop-pct", type=fraction, metavar="F", help="centre-crop fraction (default: model card)")
    p.add_argument("--interpolation", choices=("bicubic", "bilinear", "nearest"), help="resize interpolation")
    p.add_argument("--batch-size", type=pos_int, default=256)
    p.add_argument("--num-workers", type=nonneg_int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_run_eval)


def _run(command: str, args) -> int:
    from spectralkd.distill.trainer import run

    argv = [command]
    for flag, value in (("--config", args.config), ("--resume", args.resume), ("--data", args.data), ("--out", args.out)):
        if value is not None:
            argv += [flag, str(value)]
    for item in args.overrides:
        argv += ["--set", item]
    run(command, config=args.config, overrides=args.overrides, resume=args.resume, data=args.data, out=args.out,
        argv=argv)
    return 0


def _run_train(args) -> int:
    return _run("train", args)


def _run_distill(args) -> int:
    return _run("distill", args)


def _run_eval(args) -> int:
    from spectralkd.distill.evaluate import evaluate_checkpoint
    from spectralkd.errors import UserError

    if args.batch_size < 1 or args.num_workers < 0:
        raise UserError("--batch-size must be ≥ 1 and --num-workers ≥ 0")
    result = evaluate_checkpoint(args.checkpoint, args.data, args.model, args.model_kwargs, args.batch_size,
                                 args.num_workers, args.input_size, args.device, args.precision, args.split,
                                 progress=sys.stderr.isatty(),
                                 overrides={"mean": args.mean, "std": args.std, "crop_pct": args.crop_pct,
                                            "interpolation": args.interpolation})
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['model']} {result['checkpoint']}: top1 {result['top1']:.2f} top5 {result['top5']:.2f} "
              f"on {result['images']} images of {result['data']}")
    return 0
