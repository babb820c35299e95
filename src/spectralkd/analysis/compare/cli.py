"""`spectralkd compare` (argument parsing only; the work is in compare.pipeline, compare.measures and compare.plots)."""
from __future__ import annotations

from spectralkd.config.argtypes import pos_int


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="overlay a teacher and its students layer by layer, with similarity numbers",
        description="Compare per-layer spectral measures of a teacher (first input) and students. Each input is an "
                    "analysis.json (or a folder holding one) or a run directory of `spectralkd train/distill`, whose "
                    "best weights are then analysed on the run's validation data. Writes compare.json, measures.png, "
                    "spectra.png and a self-contained report.html; a student run directory holding dynamics.jsonl "
                    "(trained with monitor.every > 0) adds dynamics.png and per-epoch similarity numbers.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="teacher first, then students")
    p.add_argument("--labels", nargs="+", metavar="NAME", help="a name per input (default: folder names)")
    p.add_argument("--out", default="runs/compare", metavar="DIR", help="output folder (default: runs/compare)")
    p.add_argument("--num-images", type=pos_int, default=256, metavar="N", help="images per run analysis (default: 256)")
    p.add_argument("--batch-size", type=pos_int, default=64, metavar="B")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=handle)


def handle(args) -> int:
    from spectralkd.analysis.compare.pipeline import run_compare
    from spectralkd.runtime.device import pick_device
    from spectralkd.errors import UserError

    if args.num_images < 1:
        raise UserError(f"--num-images must be at least 1, got {args.num_images}")
    result = run_compare(args.inputs, args.labels, args.out, args.num_images, args.batch_size,
                         pick_device(args.device), not args.no_progress)
    for s in result["students"]:
        m = s["measures"]["intensity"]
        d = s["intensity_distance"]
        corr = "n/a" if m["correlation"] is None else f"{m['correlation']:.3f}"
        extra = ""
        if d["aligned"] is not None:
            extra = f"; |Δ| aligned {d['aligned']:.4g}, not aligned " + (
                "n/a" if d["not_aligned"] is None else f"{d['not_aligned']:.4g}")
        print(f"{s['label']}: intensity correlation {corr}, mean distance {m['mean_distance']:.4g}{extra}")
        epochs = [e for e in (s.get("dynamics") or {}).get("epochs", []) if "measures" in e]
        if epochs:
            a, b = epochs[0], epochs[-1]
            print(f"{s['label']}: over training ({len(epochs)} recorded epochs), relative intensity distance "
                  f"{a['measures']['intensity']['relative_distance']:.4g} at epoch {a['epoch']} → "
                  f"{b['measures']['intensity']['relative_distance']:.4g} at epoch {b['epoch']}")
    print(f"wrote {result['files']['report']}")
    return 0
