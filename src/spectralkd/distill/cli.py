"""`spectralkd train`, `spectralkd distill`, `spectralkd eval`, `spectralkd export` (argument parsing only)."""
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
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run (or cohort) in RUN_DIR (extend with --set epochs=N)")
    parser.add_argument("--cohort", metavar="COHORT.yaml",
                        help="train several students on one data stream and one teacher pass per batch: a list of "
                        "named config overrides (cohort: [{name: spec, distill: {...}}, ...]); each student gets "
                        "its own run folder OUT/<name>")


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
    p.add_argument("--ignore-class-names", action="store_true",
                   help="evaluate even when the model card's class names differ from the data's folders "
                        "(you state that class i of the model is folder i of the data)")
    p.set_defaults(func=_run_eval)

    p = subparsers.add_parser("export", help="write a trained classifier as a timm / Hugging Face Hub model folder",
                              description="Write DIR/config.json, DIR/model.safetensors and a README.md model card so "
                              "that timm.create_model('local-dir:DIR', pretrained=True) rebuilds the model; the folder "
                              "can be uploaded to the Hub as it is and loaded with 'hf-hub:USER/REPO'.")
    p.add_argument("--checkpoint", required=True, metavar="FILE", help="weights, e.g. RUN/best.safetensors")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write (created; files in it are replaced)")
    p.add_argument("--model", metavar="NAME", help="timm model name (default: from the checkpoint's model card)")
    p.add_argument("--model-kwargs", metavar="JSON", help="model kwargs as JSON (default: from the model card)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip loading the folder back through timm and comparing logits")
    p.set_defaults(func=_run_export)


def _train_command(command: str, args) -> int:
    from spectralkd.distill.cohort import is_cohort_dir, train_cohort
    from spectralkd.distill.trainer import train_classifier

    argv = [command]
    for flag, value in (("--config", args.config), ("--cohort", args.cohort), ("--resume", args.resume),
                        ("--data", args.data), ("--out", args.out)):
        if value is not None:
            argv += [flag, str(value)]
    for item in args.overrides:
        argv += ["--set", item]
    if args.cohort is not None or (args.resume is not None and is_cohort_dir(args.resume)):
        train_cohort(command, config=args.config, cohort=args.cohort, overrides=args.overrides, resume=args.resume,
                     data=args.data, out=args.out, argv=argv)
    else:
        train_classifier(command, config=args.config, overrides=args.overrides, resume=args.resume, data=args.data,
                         out=args.out, argv=argv)
    return 0


def _run_train(args) -> int:
    return _train_command("train", args)


def _run_distill(args) -> int:
    return _train_command("distill", args)


def _run_eval(args) -> int:
    from spectralkd.distill.evaluate import evaluate_checkpoint
    from spectralkd.errors import UserError

    if args.batch_size < 1 or args.num_workers < 0:
        raise UserError("--batch-size must be ≥ 1 and --num-workers ≥ 0")
    result = evaluate_checkpoint(args.checkpoint, args.data, args.model, args.model_kwargs, args.batch_size,
                                 args.num_workers, args.input_size, args.device, args.precision, args.split,
                                 progress=sys.stderr.isatty(),
                                 overrides={"mean": args.mean, "std": args.std, "crop_pct": args.crop_pct,
                                            "interpolation": args.interpolation},
                                 ignore_class_names=args.ignore_class_names)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['model']} {result['checkpoint']}: top1 {result['top1']:.2f} top5 {result['top5']:.2f} "
              f"on {result['images']} images of {result['data']}")
    return 0


def _run_export(args) -> int:
    from spectralkd.distill.export import export_for_timm

    result = export_for_timm(args.checkpoint, args.out, args.model, args.model_kwargs, verify=not args.no_verify)
    check = (f"; reloaded through timm local-dir: max |Δlogit| {result['max_abs_logit_diff']:.3g}"
             if "max_abs_logit_diff" in result else "")
    print(f"{result['model']} ({result['params'] / 1e6:.2f} M parameters, {result['num_classes']} classes) → "
          f"{result['out']}/{{{','.join(result['files'])}}}{check}")
    print(f"load it with timm.create_model(\"local-dir:{result['out']}\", pretrained=True)")
    return 0
