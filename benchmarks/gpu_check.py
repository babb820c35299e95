"""Device-ready check: the GPU code paths measured where a GPU is, exercised on the CPU with --smoke.

    python benchmarks/gpu_check.py              # on a CUDA machine: ImageNet shapes, under 8 minutes on one GPU
    python benchmarks/gpu_check.py --smoke      # the same code paths on the CPU at tiny sizes (the suite runs it)

Writes gpu_check.json (default: benchmarks/results/gpu_check.json, or runs/gpu_check_smoke.json with --smoke):

* img/s of our SpectralKD step and of timm's ``LogitDistillationTask`` step on the same student, teacher and batch
  (DeiT-Tiny ← CaiT-S24, random weights, synthetic 224 px batches of 256; fp16 and bf16 autocast, eager and
  compiled), and their ratio;
* agreement of the fp16/bf16 losses with fp32 on the same batch;
* the cohort speed-up: 4 students on one teacher pass against the same 4 one by one;
* MDBN x2 inference to a 1280×720 output: fp32, fp16, channels-last, compiled;
* MDBN beside the lightweight SR peers of benchmarks/bench_sr_peers.py (SwinIR-light, SAFMN, SPAN, OmniSR; spandrel
  definitions at their published configurations) at x2 and x4 on the same 320×180 input (720p output at x4):
  params and time per image in fp32 and fp16 autocast, best of 3 (skipped with a note when spandrel is absent);
* a short CIFAR-10 distillation from the shared data when it is present.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from spectralkd import SpectralKD  # noqa: E402
from spectralkd.distill.loop import ClassifierTraining, SharedTeacher, Student, train_one_epoch  # noqa: E402
from spectralkd.features import create_model  # noqa: E402
from spectralkd.paths import shared_path  # noqa: E402
from spectralkd.runtime.distributed import DistEnv  # noqa: E402
from spectralkd.runtime.progress import Progress  # noqa: E402
from spectralkd.runtime.rng import RngStream  # noqa: E402
from spectralkd.runtime.run import Run  # noqa: E402

FULL = {"student": ("deit_tiny_patch16_224", {}), "teacher": ("cait_s24_224", {}), "size": 224, "batch": 256,
        "pairs": ([0, 1, 10, 11], [0, 1, 22, 23]), "steps": 10, "sr_lr": (360, 640), "peer_lr": (180, 320),
        "classes": 1000}
SMOKE = {"student": ("deit_tiny_patch16_224", dict(img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=2)),
         "teacher": ("cait_xxs24_224", dict(img_size=32, patch_size=8, depth=4, embed_dim=64, num_heads=2,
                                            depth_token_only=1)),
         "size": 32, "batch": 16, "pairs": ([0, 1], [1, 3]), "steps": 3, "sr_lr": (24, 40), "peer_lr": (16, 24),
         "classes": 10}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def models(spec: dict, device: torch.device):
    torch.manual_seed(0)
    student = create_model(spec["student"][0], model_kwargs={**spec["student"][1], "num_classes": spec["classes"]})
    teacher = create_model(spec["teacher"][0], model_kwargs={**spec["teacher"][1], "num_classes": spec["classes"]})
    return student.to(device), teacher.to(device).eval().requires_grad_(False)


def autocast(device: torch.device, precision: str):
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def time_steps(task, params, images, targets, device, precision, steps) -> float:
    """img/s of forward + backward + AdamW step (best of the measured steps after two warm-up steps)."""
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16" and device.type == "cuda")
    times = []
    for i in range(steps + 2):
        sync(device)
        start = time.perf_counter()
        with autocast(device, precision):
            loss = task(images, targets)["loss"]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        sync(device)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return images.shape[0] / min(times)


def step_speed(spec: dict, device: torch.device, precisions: list[str], compile_modes: list[bool],
               smoke_compile_ours_only: bool = False) -> dict:
    """``smoke_compile_ours_only``: in the CPU smoke run, compile our task only (timm's compile path is timm's)."""
    from timm.task import LogitDistillationTask

    g = torch.Generator().manual_seed(1)
    images = torch.randn(spec["batch"], 3, spec["size"], spec["size"], generator=g).to(device)
    targets = torch.randint(0, spec["classes"], (spec["batch"],), generator=g).to(device)
    out = {}
    for compiled in compile_modes:
        for precision in precisions:
            student, teacher = models(spec, device)
            ours = SpectralKD(student, teacher, *spec["pairs"], mode="soft", alpha=0.5, tau=1.0, w_fft=0.2,
                              label_smoothing=0.1)
            if compiled:
                ours.compile()
            student2, teacher2 = models(spec, device)
            theirs = LogitDistillationTask(student2, teacher2, criterion=torch.nn.CrossEntropyLoss(label_smoothing=0.1),
                                           task_loss_weight=0.5, temperature=1.0, device=device, verbose=False)
            if compiled and not smoke_compile_ours_only:
                theirs.compile()
            key = f"{precision}{'_compiled' if compiled else ''}"
            a = time_steps(ours, student.parameters(), images, targets, device, precision, spec["steps"])
            b = time_steps(theirs, student2.parameters(), images, targets, device, precision, spec["steps"])
            out[key] = {"spectralkd_img_s": round(a, 1), "timm_logit_kd_img_s": round(b, 1),
                        "step_ratio_spectralkd_over_timm": round(b / a, 3)}
            print(f"step {key}: SpectralKD {a:.0f} img/s, timm LogitDistillationTask {b:.0f} img/s, "
                  f"step-time ratio {b / a:.3f}", flush=True)
    return out


def loss_agreement(spec: dict, device: torch.device, precisions: list[str]) -> dict:
    student, teacher = models(spec, device)
    task = SpectralKD(student, teacher, *spec["pairs"], mode="soft", alpha=0.5, w_fft=0.2).train()
    g = torch.Generator().manual_seed(2)
    images = torch.randn(spec["batch"], 3, spec["size"], spec["size"], generator=g).to(device)
    targets = torch.randint(0, spec["classes"], (spec["batch"],), generator=g).to(device)
    with torch.no_grad():
        ref = {k: float(v) for k, v in task(images, targets).items() if k.startswith("loss")}
        out = {}
        for precision in precisions:
            with autocast(device, precision):
                got = {k: float(v) for k, v in task(images, targets).items() if k.startswith("loss")}
            out[precision] = {k: {"fp32": ref[k], precision: got[k], "rel_diff": abs(got[k] - ref[k]) / max(abs(ref[k]), 1e-12)}
                              for k in ref}
            print(f"loss agreement {precision} vs fp32: " + ", ".join(f"{k} {v['rel_diff']:.2e}" for k, v in out[precision].items()),
                  flush=True)
    return out


def cohort_speedup(spec: dict, device: torch.device, precision: str) -> dict:
    student_kw = {**spec["student"][1], "num_classes": spec["classes"]}
    _, teacher = models(spec, device)
    run = Run(Path("."), {}, DistEnv(device=device), None, "epoch")
    g = torch.Generator().manual_seed(3)
    batches = [(torch.randn(spec["batch"], 3, spec["size"], spec["size"], generator=g),
                torch.randint(0, spec["classes"], (spec["batch"],), generator=g)) for _ in range(spec["steps"])]
    variants = {"spectral": ("spectral", 0.2), "mse": ("feature_mse", 0.2), "magnitude": ("magnitude", 0.2),
                "logit": ("spectral", 0.0)}

    def students():
        out = []
        for name, (loss, w) in variants.items():
            torch.manual_seed(0)
            student = create_model(spec["student"][0], model_kwargs=student_kw).to(device)
            task = SpectralKD(student, teacher, *(spec["pairs"] if w else (None, None)), mode="soft", w_fft=w,
                              feature_loss=loss)
            training = ClassifierTraining(task, torch.optim.AdamW(student.parameters(), lr=1e-4), None,
                                          torch.amp.GradScaler(device.type, enabled=False), None, None, device,
                                          precision, None, spec["steps"])
            out.append(Student(name, run, training, {}, rng=RngStream(0)))
        return out

    def timed(fn) -> float:
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        return time.perf_counter() - start

    def cohort():
        members = students()
        with Progress(spec["steps"], "cohort", bar=False) as p:
            train_one_epoch(members, batches, 0, p, SharedTeacher(members))

    def one_by_one():
        for member in students():
            with Progress(spec["steps"], "solo", bar=False) as p:
                train_one_epoch([member], batches, 0, p)

    timed(cohort)  # warm-up
    c, s = timed(cohort), timed(one_by_one)
    print(f"cohort of {len(variants)}: {s / c:.2f}x the img/s per student of training them one by one", flush=True)
    return {"students": list(variants), "cohort_s": round(c, 3), "one_by_one_s": round(s, 3),
            "speedup": round(s / c, 3)}


def sr_inference(spec: dict, device: torch.device, half: str, compile_too: bool) -> dict:
    from spectralkd.sr import MDBN

    torch.manual_seed(0)
    model = MDBN(upscale=2).to(device).eval()
    h, w = spec["sr_lr"]
    x = torch.rand(1, 3, h, w, device=device)
    variants = {"fp32": (model, x, None), half: (model, x, half),
                "channels_last": (model.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last), None)}
    if compile_too:
        variants["compiled"] = (torch.compile(model), x, None)
    out, ref = {}, None
    for name, (net, inp, precision) in variants.items():
        times = []
        with torch.inference_mode():
            for _ in range(3):
                sync(device)
                start = time.perf_counter()
                with autocast(device, precision or "fp32"):
                    y = net(inp).float()
                sync(device)
                times.append(time.perf_counter() - start)
        ref = y if ref is None else ref
        out[name] = {"seconds": round(min(times), 4), "max_abs_diff_vs_fp32": float((y - ref).abs().max())}
        print(f"MDBN x2 {w * 2}x{h * 2} output, {name}: {min(times) * 1e3:.1f} ms", flush=True)
    return out


def sr_peers(spec: dict, device: torch.device, half: str) -> dict:
    """MDBN and the peers of bench_sr_peers.py on one LR input at x2 and x4: params, best-of-3 seconds per image in
    fp32 and under ``half`` autocast (the same builders and parameter counts as the CPU benchmark)."""
    try:
        import spandrel  # noqa: F401
    except ImportError:
        print("spandrel absent (pip install 'spectralkd[sr-peers]'): SR peer timing skipped", flush=True)
        return {"skipped": "spandrel is not installed"}
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_sr_peers import PEERS, build_peer, inference_params

    h, w = spec["peer_lr"]
    torch.manual_seed(0)
    x = torch.rand(1, 3, h, w, device=device)
    rows = []
    for scale in (2, 4):
        for name in ("MDBN", *PEERS):
            torch.manual_seed(0)
            model = build_peer(name, scale).to(device)
            row = {"model": name, "scale": scale, "params": inference_params(name, model)}
            for precision in ("fp32", half):
                times = []
                with torch.inference_mode():
                    for _ in range(4):  # the first is a warm-up
                        sync(device)
                        start = time.perf_counter()
                        with autocast(device, precision):
                            y = model(x)
                        sync(device)
                        times.append(time.perf_counter() - start)
                assert y.shape[-2:] == (h * scale, w * scale), (name, y.shape)
                row[f"seconds_{precision}"] = round(min(times[1:]), 5)
            rows.append(row)
            print(f"SR peers x{scale} {w}x{h} input, {name}: fp32 {row['seconds_fp32'] * 1e3:.1f} ms, {half} "
                  f"{row[f'seconds_{half}'] * 1e3:.1f} ms", flush=True)
            del model
    return {"lr_size": [h, w], "rows": rows}


def cifar_run(smoke: bool, out_dir: Path) -> dict | None:
    data = shared_path("cifar10-jpg.tar.gz")
    if data is None:
        print("shared CIFAR-10 absent: short CIFAR-10 run skipped", flush=True)
        return None
    from spectralkd.distill.trainer import train_classifier

    summary = train_classifier("distill", config=str(ROOT / "configs" / "cifar10" / "student_spectralkd.yaml"),
                               overrides=["epochs=1", f"max_steps_per_epoch={3 if smoke else 100}", "max_val_batches=2",
                                          "teacher.checkpoint=artifacts/cifar10-teacher/teacher.safetensors",
                                          "progress=false"],
                               data=str(data), out=str(out_dir / "cifar10-run"), argv=["gpu_check"])
    return {"val_top1": summary["last"]["val_top1"], "img_per_s": summary["last"]["img_per_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (the code paths, not the numbers)")
    ap.add_argument("--out", help="gpu_check.json path")
    args = ap.parse_args()
    cuda = torch.cuda.is_available() and not args.smoke
    if not cuda and not args.smoke:
        raise SystemExit("gpu_check: no CUDA device here; run with --smoke to exercise the code paths on the CPU")
    device = torch.device("cuda" if cuda else "cpu")
    spec = FULL if cuda else SMOKE
    precisions = ["fp16", "bf16"] if cuda else ["bf16"]
    half = "fp16" if cuda else "bf16"
    out_path = Path(args.out) if args.out else ROOT / ("benchmarks/results/gpu_check.json" if cuda else "runs/gpu_check_smoke.json")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = {"device": torch.cuda.get_device_name(0) if cuda else platform.processor() or "cpu", "smoke": args.smoke,
              "torch": torch.__version__, "spec": {k: v for k, v in spec.items()}}
    result["step"] = step_speed(spec, device, precisions, [False, True], smoke_compile_ours_only=args.smoke)
    result["loss_agreement"] = loss_agreement(spec, device, precisions)
    result["cohort"] = cohort_speedup(spec, device, half)
    result["mdbn_x2"] = sr_inference(spec, device, half, compile_too=True)
    result["sr_peers"] = sr_peers(spec, device, half)
    result["cifar10"] = cifar_run(args.smoke, out_path.parent)
    result["seconds"] = round(time.perf_counter() - start, 1)
    out_path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"gpu_check: {result['seconds']:.0f} s → {out_path}", flush=True)


if __name__ == "__main__":
    main()
