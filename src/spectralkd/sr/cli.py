"""``spectralkd sr train|test|upscale|export|analyze|distill``: argument parsing only; the work is in the library."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from spectralkd.config.argtypes import nonneg_int as _nonneg_int, pos_int as _pos_int
from spectralkd.errors import UserError, is_out_of_memory


def register(subparsers) -> None:
    sr = subparsers.add_parser("sr", help="MDBN super-resolution: train, test, upscale, export, analyze, distill",
                               description="MDBN single-image super-resolution (see docs/sr.md).")
    sub = sr.add_subparsers(dest="sr_command", metavar="SR_COMMAND", required=True)

    for name, helptext in (("train", "train an SR model (L1, Adam, cosine, EMA; Set5 validation)"),
                           ("distill", "distil an MDBN teacher into a slimmer MDBN (L1 + spectral alignment)")):
        p = sub.add_parser(name, help=helptext, description=helptext)
        p.add_argument("--config", help="YAML config (configs/sr/*.yaml); keys in spectralkd/config/sr.py")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set sched.total_iters=500 (repeatable)")
        p.add_argument("--out", metavar="RUN_DIR", help="run directory (default: config out, else runs/sr-<time>)")
        p.add_argument("--resume", metavar="RUN_DIR",
                       help="continue the run in RUN_DIR with its saved config.yaml (change allowed keys with --set)")
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
    _precision_arg(p)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_test)

    p = sub.add_parser("upscale", help="super-resolve an image, or every image in a folder (tiled: bounded memory)",
                       description="Super-resolve INPUT into OUTPUT: a file into a file, or a folder of images into "
                                   "a folder with the same file names (created; other entries are skipped).")
    p.add_argument("input", help="an image file, or a folder of images")
    p.add_argument("output", help="the output image file, or the output folder for a folder input")
    p.add_argument("--weights", required=True)
    p.add_argument("--scale", type=int, required=True)
    p.add_argument("--tile", type=_pos_int, default=None, help="LR tile size (e.g. 256); default: whole image")
    p.add_argument("--tile-overlap", type=_nonneg_int, default=None,
                   help="LR context pixels per tile side (default: the receptive radius, 28 for MDBN)")
    _precision_arg(p)
    p.add_argument("--compile", action="store_true", help="torch.compile the model (needs a C++ compiler)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_upscale)

    p = sub.add_parser("export", help="export SR weights to ONNX (dynamic batch/height/width), checked with onnxruntime")
    p.add_argument("--weights", required=True)
    p.add_argument("--scale", type=int, required=True)
    p.add_argument("--format", choices=("onnx",), default="onnx")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime comparison after export")
    p.set_defaults(func=_export)

    p = sub.add_parser("analyze", help="radial spectra of each base block's deep and shallow branch maps")
    p.add_argument("--weights", required=True)
    p.add_argument("--image", required=True, help="LR input image")
    p.add_argument("--scale", type=int, default=None, help="check the weights are for this scale")
    p.add_argument("--out", default="runs/sr-analyze", help="folder for branches.json and branches.png (default: runs/sr-analyze)")
    p.set_defaults(func=_analyze)


def _precision_arg(p) -> None:
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="fp32 (default); bf16 autocast (faster on CPU, ≥ 40 dB PSNR against fp32 on the shipped "
                        "model); fp16 autocast (CUDA only)")


def _train(args) -> int:
    from spectralkd.sr.trainer import train_sr

    summary = train_sr(args.config, args.overrides, resume=args.resume, out=args.out, distill=args.distill)
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
    from spectralkd.runtime.precision import check_precision
    from spectralkd.sr.datasets import PairedSet
    from spectralkd.sr.evaluate import bicubic_upscaler, evaluate_set, model_upscaler
    from spectralkd.sr.inference import InferenceUpscaler
    from spectralkd.sr.mdbn import check_scale

    scale = check_scale(args.scale)
    if args.model == "bicubic":
        if args.weights:
            raise UserError("--weights is not used with --model bicubic")
        if args.precision != "fp32":
            raise UserError(f"--precision {args.precision} is not used with --model bicubic (it runs on uint8)")
    else:
        device = _device(args.device)
        check_precision(device, args.precision)
    sets = [PairedSet(d, scale) for d in args.data]  # validate every path before any work
    if args.model == "bicubic":
        upscaler = bicubic_upscaler(scale)
    else:
        # NCHW: at fp32 this computes exactly what the plain model does, so scores match earlier tables
        forward = InferenceUpscaler(_load(args.weights, scale, device), channels_last=False, precision=args.precision)
        upscaler = model_upscaler(forward.model, tile=args.tile, forward=forward)
    border = scale if args.crop_border is None else args.crop_border
    results = {}
    prec = f", {args.precision}" if args.model == "mdbn" else ""
    print(f"{'set':<12} {'images':>6} {'PSNR-Y':>8} {'SSIM-Y':>7}   (x{scale}, {args.model}{prec}, border {border})")
    for ds in sets:
        res = evaluate_set(upscaler, ds, border, save_dir=args.save_images)
        results[ds.name] = res
        print(f"{ds.name:<12} {len(res['images']):>6} {res['psnr']:>8.3f} {res['ssim']:>7.4f}")
    if args.out:
        from spectralkd.runtime.io import atomic_write_text

        from spectralkd.paths import portable

        atomic_write_text(args.out, json.dumps(portable(results, Path(args.out).parent), indent=1) + "\n")
    return 0


def _upscale(args) -> int:
    import warnings

    from tqdm import tqdm

    from spectralkd.runtime.precision import check_precision
    from spectralkd.sr.inference import InferenceUpscaler, plan_upscale, upscale_file
    from spectralkd.sr.mdbn import check_scale

    scale = check_scale(args.scale)
    plan = plan_upscale(args.input, args.output)  # every path checked before the model is loaded
    device = _device(args.device)
    check_precision(device, args.precision)
    upscaler = InferenceUpscaler(_load(args.weights, scale, device), precision=args.precision, compile=args.compile)
    if plan.skipped:
        names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in plan.skipped[:5])
        more = f" and {len(plan.skipped) - 5} more" if len(plan.skipped) > 5 else ""
        print(f"skipping {len(plan.skipped)} entr{'y' if len(plan.skipped) == 1 else 'ies'} of {args.input} that "
              f"{'is' if len(plan.skipped) == 1 else 'are'} not images (sub-folders are not searched): {names}{more}",
              file=sys.stderr)
    failed = []
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        if not plan.folder:
            (src, dst), = plan.jobs
            bar = tqdm(total=None, desc=src.name, unit="tile", disable=None if args.tile else True, leave=False)

            def on_tile(done, total):
                bar.total = total
                bar.update(done - bar.n)

            try:
                w, h = upscale_file(upscaler, src, dst, tile=args.tile, overlap=args.tile_overlap, on_tile=on_tile)
            except (MemoryError, RuntimeError) as exc:
                if args.tile is not None or not is_out_of_memory(exc):
                    raise
                raise UserError(f"out of memory upscaling {src} as one piece; retry with --tile 256 (tiled: bounded "
                                "memory, same output)") from None
            finally:
                bar.close()
            print(f"{src} ({w}×{h}) → {dst} ({w * scale}×{h * scale})", file=sys.stderr)
            return 0
        try:
            Path(args.output).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create output folder {args.output}: {exc.strerror}") from None
        for src, dst in tqdm(plan.jobs, desc=f"upscale x{scale}", unit="image", disable=None):
            try:
                upscale_file(upscaler, src, dst, tile=args.tile, overlap=args.tile_overlap)
            except UserError as exc:  # an unreadable image: go on with the others, report at the end
                failed.append(src.name)
                tqdm.write(f"skipped: {exc}", file=sys.stderr)
    done = len(plan.jobs) - len(failed)
    if failed:
        raise UserError(f"{len(failed)} of {len(plan.jobs)} images in {args.input} could not be read "
                        f"({', '.join(failed[:5])}{', ...' if len(failed) > 5 else ''}); the other {done} are in "
                        f"{args.output}")
    print(f"{args.input}: {done} image{'s' if done != 1 else ''} upscaled x{scale} → {args.output}", file=sys.stderr)
    return 0


def _export(args) -> int:
    from spectralkd.sr.export import check_onnx_output_path, export_onnx, verify_onnx
    from spectralkd.sr.mdbn import check_scale

    scale = check_scale(args.scale)
    out = check_onnx_output_path(args.out)  # before loading anything
    model = _load(args.weights, scale, "cpu")
    export_onnx(model, out)
    print(f"{args.weights} → {out} (ONNX, input 'lr' N×3×H×W, output 'sr' N×3×{scale}H×{scale}W)")
    if args.no_verify:
        return 0
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("not verified: onnxruntime is not installed (pip install 'spectralkd[onnx]')", file=sys.stderr)
        return 0
    check = verify_onnx(model, out)
    sizes = " and ".join(f"{h}×{w}" for h, w in check["sizes"])
    print(f"onnxruntime vs torch fp32 at LR {sizes}: max |Δ| "
          + ", ".join(f"{d:.1e}" for d in check["max_abs_diff"]))
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
