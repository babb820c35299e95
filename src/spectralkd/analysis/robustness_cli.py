"""`spectralkd robustness` (argument parsing only; the work is in analysis/robustness.py)."""
from __future__ import annotations

import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "robustness", help="top-1 of a classifier under L∞ attacks (FGSM, PGD) and common corruptions",
        description="Load a checkpoint with its model card (as `spectralkd eval`), take a seeded subset of the test "
                    "images in pixel space and measure top-1: clean, under FGSM/PGD at each ε (torchattacks, before "
                    "the model's normalisation) and under CIFAR-10-C-style corruptions at each severity "
                    "(imagecorruptions). Writes robustness.json, report.md and robustness.png. "
                    "Needs the optional extra: pip install 'spectralkd[robustness]'.")
    p.add_argument("--checkpoint", required=True, metavar="FILE",
                   help="weights (.safetensors with its model card, or .pth/.pt with --model)")
    p.add_argument("--model", metavar="NAME", help="timm model name (default: the model card's)")
    p.add_argument("--model-kwargs", metavar="JSON", help="timm.create_model kwargs (default: the model card's)")
    p.add_argument("--data", metavar="PATH", help="image folder or .tar/.tar.gz with class folders; its val/ split "
                   "when present (default: the shared CIFAR-10)")
    p.add_argument("--split", default="val", help="split folder (default: val)")
    p.add_argument("--num-images", type=int, default=1000, metavar="N",
                   help="seeded random subset of the split (default: 1000; 0 = all)")
    p.add_argument("--attacks", default="fgsm,pgd", metavar="LIST", help="fgsm,pgd or none (default: fgsm,pgd)")
    p.add_argument("--eps", default="1/255,2/255,4/255", metavar="LIST",
                   help="L∞ radii in (0, 1] as fractions of the pixel range (default: 1/255,2/255,4/255)")
    p.add_argument("--pgd-steps", type=int, default=10, metavar="K", help="PGD steps (default: 10)")
    p.add_argument("--pgd-alpha", metavar="A", help="PGD step size (default: 2.5·ε/steps)")
    p.add_argument("--corruptions", metavar="LIST",
                   help="all (19), common (the 15 benchmark ones), extra (4) or names such as "
                        "gaussian_noise,jpeg_compression (default: none)")
    p.add_argument("--severities", default="1-5", metavar="LIST", help="1-5, or e.g. 1,3,5 (default: 1-5)")
    p.add_argument("--batch-size", type=int, default=250, metavar="B")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes (default: 0)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--seed", type=int, default=0, help="subset, PGD start and corruption noise seed (default: 0)")
    p.add_argument("--corruption-cache", metavar="DIR",
                   help="memoise corrupted batches in DIR, keyed by a hash of the input pixels, corruption, severity, "
                        "seed and package version, so measuring several models on the same images corrupts them "
                        "once (default: no cache; 32-px images take ~3 MB per 1000 images and setting)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.set_defaults(func=run_robustness)


def run_robustness(args) -> int:
    from fractions import Fraction

    from spectralkd.analysis.robustness import robustness_checkpoint
    from spectralkd.errors import UserError

    alpha = None
    if args.pgd_alpha is not None:
        try:
            alpha = float(Fraction(args.pgd_alpha))
        except (ValueError, ZeroDivisionError):
            raise UserError(f"--pgd-alpha '{args.pgd_alpha}' is not a number or fraction like 1/255") from None
        if not 0 < alpha <= 1:
            raise UserError(f"--pgd-alpha {args.pgd_alpha} is outside (0, 1]")
    if args.workers < 0:
        raise UserError(f"--workers must be 0 or more, got {args.workers}")
    r = robustness_checkpoint(args.checkpoint, args.out, args.data, args.model, args.model_kwargs,
                              args.num_images or None, args.attacks, args.eps, args.pgd_steps, alpha,
                              args.corruptions, args.severities, args.batch_size, args.device, args.seed,
                              args.split, args.workers, progress=sys.stderr.isatty(),
                              corruption_cache=args.corruption_cache)
    parts = [f"clean {r['clean']:.2f}"]
    parts += [f"{a}@{k} {v:.2f}" for a, d in r["attacks"].items() for k, v in d.items()]
    if r["corruption_mean"] is not None:
        parts.append(f"corruption mean {r['corruption_mean']:.2f}")
    print(f"{r['model']} on {r['images']} images: " + ", ".join(parts) + f" (top-1 %) → {args.out}/robustness.json")
    return 0
