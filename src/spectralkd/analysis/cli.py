"""`spectralkd analyze` (argument parsing only; the work is in run/recommend/outputs/plots/report)."""
from __future__ import annotations

import re
import sys

from spectralkd.config.argtypes import fraction, nonneg_int, pos_float, pos_int, unit


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "analyze", help="spectral analysis of a model's feature maps (report, plots, recommended layer pairs)",
        description="Run a model over images and measure, per layer, SpectralKD's frequency intensity and channel "
                    "spectrum, the channel entropy, RMS, SVD energy rank and spatial spectra. Writes analysis.json, "
                    "details.json, layers.csv, PNG plots and a self-contained report.html. See docs/analysis.md.")
    p.add_argument("--model", required=True, metavar="NAME", help="timm model name, e.g. cait_s24_224")
    p.add_argument("--model-kwargs", metavar="JSON", help='timm.create_model kwargs as JSON, e.g. \'{"depth": 6}\'')
    p.add_argument("--checkpoint", metavar="FILE", help="local weights (.safetensors, or .pth/.pt read with weights_only)")
    p.add_argument("--pretrained", action="store_true", help="timm's pretrained weights (needs the model hub)")
    p.add_argument("--data", metavar="PATH", help="image folder or .tar/.tar.gz of one; its val/ split when present "
                   "(default: the shared CIFAR-10 if present, else a generated image set)")
    p.add_argument("--split", default="val", choices=("train", "val"),
                   help="split folder to use when the data has one (default: val)")
    p.add_argument("--holdout", type=pos_int, metavar="N", help="analyse the N training images that a run with "
                   "data.holdout=N holds out as its validation split (instead of --split), e.g. to choose layer pairs "
                   "without looking at the test split")
    p.add_argument("--holdout-seed", type=nonneg_int, default=0, metavar="S",
                   help="data.holdout_seed of that run (default: 0)")
    p.add_argument("--num-images", type=pos_int, default=256, metavar="N",
                   help="images to analyse, spread evenly over the sorted files (default: 256)")
    p.add_argument("--batch-size", type=pos_int, default=32, metavar="B")
    p.add_argument("--input-size", type=pos_int, metavar="PX", help="square input size (default: the model's)")
    p.add_argument("--mean", type=unit, nargs=3, metavar=("R", "G", "B"), help="normalisation mean override")
    p.add_argument("--std", type=pos_float, nargs=3, metavar=("R", "G", "B"), help="normalisation std override")
    p.add_argument("--interpolation", choices=("bicubic", "bilinear", "nearest"), help="resize interpolation override")
    p.add_argument("--crop-pct", type=fraction, metavar="F", help="centre-crop fraction override (1.0 = no crop)")
    p.add_argument("--indices", type=int, nargs="+", metavar="I",
                   help="block/stage ids to analyse (negative count from the end; default: all)")
    p.add_argument("--layers", nargs="+", metavar="MODULE",
                   help="analyse these named modules instead (any nn.Module; comma or space separated)")
    p.add_argument("--student-depth", type=pos_int, metavar="D",
                   help="depth of the student to recommend layer pairs for (default: this model's depth)")
    p.add_argument("--student-model", metavar="NAME",
                   help="timm name of the student (randomly initialised, one forward): its depth and map sizes let "
                        "the recommendation pair across architectures, e.g. a RegNet/Swin teacher with a DeiT student")
    p.add_argument("--student-model-kwargs", metavar="JSON", help="timm.create_model kwargs of --student-model")
    p.add_argument("--num-pairs", type=pos_int, metavar="K",
                   help="number of layer pairs to recommend (default: two thirds of the shallower model)")
    p.add_argument("--bins", type=pos_int, default=100, help="histogram bins of the channel entropy (default: 100)")
    p.add_argument("--bootstrap", type=nonneg_int, default=1000, metavar="B",
                   help="resamples of the percentile bootstrap over the images that gives each layer's 95 %% interval "
                        "of intensity, RMS, entropy and high-frequency ratio (default: 1000; 0: no intervals)")
    p.add_argument("--bootstrap-seed", type=nonneg_int, default=0, metavar="S",
                   help="seed of the bootstrap resamples (default: 0; the same seed gives the same intervals)")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images (counted) instead of stopping")
    p.add_argument("--workers", type=nonneg_int, default=0, help="data loader worker processes (default: 0)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: runs/analyze-<model>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run_analyze)


def run_analyze(args) -> int:
    from pathlib import Path

    from spectralkd.analysis.pipeline import analyze_to_dir, student_map_shapes
    from spectralkd.analysis.recommend import describe_pairs
    from spectralkd.data import data_config
    from spectralkd.data import default_data
    from spectralkd.runtime.device import pick_device
    from spectralkd.errors import UserError
    from spectralkd.features import create_model, parse_model_kwargs

    if args.bins < 1:
        raise UserError(f"--bins must be at least 1, got {args.bins}")
    if args.workers < 0:
        raise UserError(f"--workers must be 0 or more, got {args.workers}")
    kwargs = parse_model_kwargs(args.model_kwargs)
    names = [n for item in (args.layers or []) for n in item.split(",") if n]
    device = pick_device(args.device)
    model = create_model(args.model, pretrained=args.pretrained, checkpoint=args.checkpoint, model_kwargs=kwargs)
    student_shapes = None
    if args.student_model:
        student = create_model(args.student_model, model_kwargs=parse_model_kwargs(args.student_model_kwargs))
        size = args.input_size or data_config(model)["input_size"][-1]
        student_shapes = student_map_shapes(student, int(size))
        if args.student_depth is not None and args.student_depth != len(student_shapes):
            raise UserError(f"--student-depth {args.student_depth} but --student-model {args.student_model} has "
                            f"{len(student_shapes)} maps; give one of the two")
    elif args.student_model_kwargs:
        raise UserError("--student-model-kwargs needs --student-model")
    data = args.data or default_data()
    out = Path(args.out or Path("runs") / f"analyze-{re.sub(r'[^A-Za-z0-9_.-]+', '_', args.model)}")
    written = analyze_to_dir(
        model, args.model, data, out, num_images=args.num_images, batch_size=args.batch_size,
        input_size=args.input_size, indices=args.indices, names=names or None,
        data_overrides={"mean": args.mean, "std": args.std, "interpolation": args.interpolation,
                        "crop_pct": args.crop_pct},
        student_depth=args.student_depth, student_shapes=student_shapes, num_pairs=args.num_pairs, bins=args.bins, device=device,
        progress=not args.no_progress, skip_bad=args.skip_bad, workers=args.workers, split=args.split,
        holdout=(args.holdout, args.holdout_seed) if args.holdout else None,
        bootstrap=args.bootstrap, bootstrap_seed=args.bootstrap_seed,
        settings={"model_kwargs": kwargs, "checkpoint": args.checkpoint, "pretrained": args.pretrained})
    result, rec = written.result, written.recommended
    skipped = f", {result.skipped} unreadable skipped" if result.skipped else ""
    print(f"analysed {len(result.layers)} layers of {args.model} on {result.num_images} images{skipped}")
    if result.bootstrap.get("note"):
        print(f"note: {result.bootstrap['note']}")
    print(f"recommended pairs (student <- teacher, rule {rec.get('rule')}): {describe_pairs(rec)}")
    print(f"wrote {written.report} ({', '.join(sorted(p.name for p in written.files.values()))})")
    sys.stdout.flush()
    return 0
