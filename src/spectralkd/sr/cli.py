"""``spectralkd sr train|test|upscale|analyze|distill``: argument parsing only; the work is in the library."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from spectralkd.config.argtypes import nonneg_int as _nonneg_int, pos_int as _pos_int
from spectralkd.errors import UserError


def register(subparsers) -> None:
    sr = subparsers.add_parser("sr", help="MDBN super-resolution: train, test, upscale, analyze, distill",
                               description="MDBN single-image super-resolution (see docs/sr.md).")
    sub = sr.add_subparsers(dest="sr_command", metavar="SR_COMMAND", required=True)

    for name, helptext in (("train", "train an SR model (L1, Adam, cosine, EMA; Set5 validation)"),
                           ("distill", "distil an MDBN teacher into a slimmer MDBN (L1 + spectral alignment)")):
        p = sub.add_parser(name, help=helptext, description=helptext)
        p.add_argument("--config", help="YAML config (configs/sr/*.yaml); keys in spectralkd/config/sr.py")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set sched.total_iters=500 (repeatable)")
        p.add_argument("--resume", action="store_true", help="continue the run in the config's 'out' folder")
        p.set_defaults(func=_train, distill=(name == "distill"))

    p = sub.add_parser("test", help="PSNR/SSIM (Y channel) of MDBN or bicubic on paired test sets")
    p.add_argument("--model", choices=("mdbn", "bicubic"), default="mdbn")
    p.add_argument("--weights", help="MDBN weights (.pth BasicSR/state dict, .pt checkpoint, .safetensors)")
    p.add_argument("--scale", type=int, required=True)
    p.add_argument("--data", nargs="+", required=True, metavar="DIR",
                   help="paired sets: DIR/image_SRF_<s>/*_HR|LR.png or DIR/HR + DIR/LR")
    p.add_argument("--crop-border", type=_nonneg_int, default=None,
                   help="border pixels ignored by the metrics (default: the scale; the MDBN authors use 4)")
    p.add_argument("--tile", type=_pos_int, default=None, help="tiled inference with this LR tile size")
    p.add_argument("--out", help="write results as JSON here")
    p.add_argument("--save-images", metavar="DIR", help="save SR images under DIR/<set>/")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_test)

    p = sub.add_parser("upscale", help="super-resolve one image (tiled: bounded memory, same output)")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--weights", required=True)
    p.add_argument("--scale", type=int, required=True)
    p.add_argument("--tile", type=_pos_int, default=None, help="LR tile size (e.g. 256); default: whole image")
    p.add_argument("--tile-overlap", type=_nonneg_int, default=None,
                   help="LR context pixels per tile side (default: the receptive radius, 28 for MDBN)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (faster, output differs slightly)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (needs a C++ compiler)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_upscale)

    p = sub.add_parser("analyze", help="radial spectra of each base block's deep and shallow branch maps")
    p.add_argument("--weights", required=True)
    p.add_argument("--image", required=True, help="LR input image")
    p.add_argument("--scale", type=int, default=None, help="check the weights are for this scale")
    p.add_argument("--out", default="out/sr-analyze", help="folder for branches.json and branches.png")
    p.set_defaults(func=_analyze)


def _train(args) -> int:
    from spectralkd.config import load_config
    from spectralkd.config.sr import defaults
    from spectralkd.sr.trainer import run

    cfg = load_config(args.config, args.overrides, defaults())
    summary = run(cfg, resume=args.resume, distill=args.distill)
    if summary["rank"] != 0:
        return 0
    best = summary["best"]
    best_txt = f"best {best['psnr']:.3f} dB / {best['ssim']:.4f} at iter {best['iter']}" if best.get("iter") else "no validation"
    print(f"{summary['out']}: {summary['iter']}/{summary['total_iters']} iterations"
          f"{' (stopped at max_minutes)' if summary['stopped_early'] else ''}; {best_txt}")
    return 0


def _device(request: str):
    from spectralkd.runtime.device import pick_device

    return pick_device(request)


def _load(weights, scale, device):
    from spectralkd.sr.loading import load_sr_model

    if not weights:
        raise UserError("--weights is required for --model mdbn (or use --model bicubic)")
    return load_sr_model(weights, scale).to(device)


def _test(args) -> int:
    from spectralkd.sr.datasets import PairedSet
    from spectralkd.sr.evaluate import bicubic_upscaler, evaluate_set, model_upscaler
    from spectralkd.sr.mdbn import check_scale

    scale = check_scale(args.scale)
    sets = [PairedSet(d, scale) for d in args.data]  # validate every path before any work
    if args.model == "bicubic":
        if args.weights:
            raise UserError("--weights is not used with --model bicubic")
        upscaler = bicubic_upscaler(scale)
    else:
        upscaler = model_upscaler(_load(args.weights, scale, _device(args.device)), tile=args.tile)
    border = scale if args.crop_border is None else args.crop_border
    results = {}
    print(f"{'set':<12} {'images':>6} {'PSNR-Y':>8} {'SSIM-Y':>7}   (x{scale}, {args.model}, border {border})")
    for ds in sets:
        res = evaluate_set(upscaler, ds, border, save_dir=args.save_images)
        results[ds.name] = res
        print(f"{ds.name:<12} {len(res['images']):>6} {res['psnr']:>8.3f} {res['ssim']:>7.4f}")
    if args.out:
        from spectralkd.runtime.io import atomic_write_text

        atomic_write_text(args.out, json.dumps(results, indent=1) + "\n")
    return 0


def _upscale(args) -> int:
    import warnings

    from PIL import Image

    from spectralkd.sr.datasets import load_rgb, to_tensor, to_uint8_image
    from spectralkd.sr.inference import Tuned
    from spectralkd.sr.mdbn import check_scale
    from spectralkd.sr.tiling import upscale

    scale = check_scale(args.scale)
    out_path = Path(args.output)
    if out_path.suffix.lower() not in (".png", ".bmp", ".tif", ".tiff", ".ppm", ".jpg", ".jpeg", ".webp"):
        raise UserError(f"output {out_path} needs an image extension (.png recommended)")
    lr = load_rgb(args.input)
    model = _load(args.weights, scale, _device(args.device))
    tuned = Tuned(model, bf16=args.bf16, compile=args.compile)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        sr = upscale(tuned.model, to_tensor(lr)[None], tile=args.tile, overlap=args.tile_overlap, forward=tuned)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8_image(sr[0])).save(out_path)
    print(f"{args.input} ({lr.shape[1]}×{lr.shape[0]}) → {out_path} ({lr.shape[1] * scale}×{lr.shape[0] * scale})",
          file=sys.stderr)
    return 0


def _analyze(args) -> int:
    from spectralkd.sr.analyze import analyze_branches, write_analysis
    from spectralkd.sr.datasets import load_rgb
    from spectralkd.features.models import load_state_dict_file
    from spectralkd.sr.loading import load_mdbn, infer_arch

    scale = args.scale or infer_arch(load_state_dict_file(args.weights), args.weights)["upscale"]
    model = load_mdbn(args.weights, scale)
    result = analyze_branches(model, load_rgb(args.image))
    files = write_analysis(result, args.out, title=f"{Path(args.weights).name} on {Path(args.image).name}")
    s = result["summary"]
    print(f"mean low/high ratio: deep {s['mean_low_high_ratio']['deep']:.3f}, "
          f"shallow {s['mean_low_high_ratio']['shallow']:.3f}; {s['reading']}")
    print("wrote " + ", ".join(str(f) for f in files))
    return 0
