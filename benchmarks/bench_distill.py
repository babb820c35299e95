"""Distillation speed, measured side by side in one run (results: docs/benchmarks.md, "Distillation").

1. Spectral loss forward+backward, 8 layer pairs (B=64, student 192 ch, teacher 384 ch, 14×14):
   ``spectralkd.distill.losses.spectral_alignment_loss`` vs a plain per-pair loop of the same math
   (pool teacher, rfft2 of both maps, stack real/imag, MSE). Target: ratio ≤ 1.0.
2. One distillation step of the CIFAR-10 recipe (CaiT teacher 1.58M → DeiT student 0.31M, 32 px, batch 128,
   4 layer pairs) through the trainer's own step (``spectralkd.distill.loop.train_one_epoch``) on in-memory
   tensors: SpectralKD vs logit-KD-only (w_fft 0) step time, target ratio ≤ 1.10; and img/s with bf16 autocast
   vs fp32. Variants are interleaved round by round; ratios use the best (minimum) time of each, the statistic
   least disturbed by other jobs on a shared machine (medians are printed too).
3. ``--alignment``: the spectral loss with spatial alignment, 8 pairs, B=64, student 192 ch 14×14 ← teacher 384 ch
   28×28 (``fourier`` and ``interpolate``) against the same teacher at 14×14 (``strict``, the published loss).

    python benchmarks/bench_distill.py [--threads 1] [--rounds 8] [--steps 2] [--quick] [--alignment] [--only PART]

Every part (loss, step, timm, cohort, alignment) is a section of benchmarks/results/bench_distill.json (``--out``)
with its machine, versions, command, date, printed lines and numbers; a run replaces only the sections it ran.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from spectralkd.distill.losses import spectral_alignment_loss
from spectralkd.distill.loop import ClassifierTraining, SharedTeacher, Student, train_one_epoch
from spectralkd.distill.task import SpectralKD
from spectralkd.runtime.distributed import DistEnv
from spectralkd.runtime.progress import Progress
from spectralkd.runtime.rng import RngStream
from spectralkd.runtime.run import Run
from spectralkd.features import create_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results  # noqa: E402  (machine/versions header and the JSON file shared by the benchmarks)

STEP_GOAL, COHORT_GOAL = 1.05, 1.6  # step-time ratio SpectralKD / logit-KD; cohort speed-up per student

TEACHER = ("cait_xxs24_224", dict(img_size=32, patch_size=4, depth=12, embed_dim=96, num_heads=3, depth_token_only=2,
                                   num_classes=10))
STUDENT = ("deit_tiny_patch16_224", dict(img_size=32, patch_size=4, depth=6, embed_dim=64, num_heads=2, num_classes=10))
S_IDS, T_IDS = [0, 1, 4, 5], [0, 1, 10, 11]


def reference_loop(student_maps, teacher_maps):
    """The plain per-pair loop: pool, two rfft2, stack real/imag, mse."""
    total = 0.0
    for s, t in zip(student_maps, teacher_maps):
        t = F.adaptive_avg_pool3d(t, (s.shape[1], None, None))
        fs = torch.fft.rfft2(s.float(), norm="ortho")
        ft = torch.fft.rfft2(t.float(), norm="ortho")
        total = total + F.mse_loss(torch.stack([fs.real, fs.imag], -1), torch.stack([ft.real, ft.imag], -1))
    return total / len(student_maps)


def bench_loss(rounds: int, repeats: int, say=print) -> dict:
    g = torch.Generator().manual_seed(0)
    s_maps = [torch.randn(64, 192, 14, 14, generator=g).requires_grad_() for _ in range(8)]
    t_maps = [torch.randn(64, 384, 14, 14, generator=g) for _ in range(8)]
    a = spectral_alignment_loss(s_maps, t_maps).item()
    b = reference_loop(s_maps, t_maps).item()
    assert abs(a - b) <= 1e-5 * abs(b), (a, b)

    def once(fn):
        for s in s_maps:
            s.grad = None
        start = time.perf_counter()
        for _ in range(repeats):
            fn(s_maps, t_maps).backward()
        return (time.perf_counter() - start) / repeats

    once(spectral_alignment_loss), once(reference_loop)  # warm-up
    ours, ref = [], []
    for _ in range(rounds):
        ours.append(once(spectral_alignment_loss))
        ref.append(once(reference_loop))
    mo, mr = min(ours), min(ref)
    say(f"spectral loss fwd+bwd, 8 pairs B=64 192←384 ch 14x14: spectralkd {mo * 1e3:.1f} ms, "
          f"per-pair loop {mr * 1e3:.1f} ms, ratio {mo / mr:.2f}x (target ≤ 1.0; medians "
          f"{statistics.median(ours) * 1e3:.1f} / {statistics.median(ref) * 1e3:.1f} ms)  [values agree: {a:.6f}]")
    return {"spectralkd_ms": mo * 1e3, "per_pair_loop_ms": mr * 1e3, "ratio": mo / mr,
            "spectralkd_median_ms": statistics.median(ours) * 1e3, "per_pair_loop_median_ms": statistics.median(ref) * 1e3,
            "median_ratio": statistics.median(ours) / statistics.median(ref), "target": 1.0,
            "loss_value": a, "loss_value_per_pair_loop": b}


def bench_alignment(rounds: int, repeats: int, say=print) -> dict:
    g = torch.Generator().manual_seed(0)
    s_maps = [torch.randn(64, 192, 14, 14, generator=g).requires_grad_() for _ in range(8)]
    same = [torch.randn(64, 384, 14, 14, generator=g) for _ in range(8)]
    big = [torch.randn(64, 384, 28, 28, generator=g) for _ in range(8)]
    cases = {"strict (teacher 14x14)": (same, "strict"), "fourier (teacher 28x28)": (big, "fourier"),
             "interpolate (teacher 28x28)": (big, "interpolate")}

    def once(t_maps, spatial):
        for s in s_maps:
            s.grad = None
        start = time.perf_counter()
        for _ in range(repeats):
            spectral_alignment_loss(s_maps, t_maps, spatial).backward()
        return (time.perf_counter() - start) / repeats

    times = {k: [] for k in cases}
    for k, case in cases.items():
        once(*case)  # warm-up
    for _ in range(rounds):
        for k, case in cases.items():
            times[k].append(once(*case))
    base = min(times["strict (teacher 14x14)"])
    for k, ts in times.items():
        say(f"spectral loss fwd+bwd, 8 pairs B=64 192 ch 14x14 <- 384 ch, {k}: best {min(ts) * 1e3:.1f} ms, "
              f"median {statistics.median(ts) * 1e3:.1f} ms, {min(ts) / base:.2f}x strict")
    return {"cases": {k: {"spatial_align": cases[k][1], "teacher_hw": list(cases[k][0][0].shape[-2:]),
                          "best_ms": min(ts) * 1e3, "median_ms": statistics.median(ts) * 1e3, "x_strict": min(ts) / base}
                      for k, ts in times.items()}}


class TensorBatches:
    """A fixed list of (images, labels) batches, iterable like a DataLoader (no decoding noise)."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


def make_parts(w_fft: float, precision: str, teacher, batch: int, steps: int) -> ClassifierTraining:
    torch.manual_seed(0)
    student = create_model(STUDENT[0], model_kwargs=STUDENT[1])
    uses_maps = w_fft != 0
    task = SpectralKD(student, teacher, S_IDS if uses_maps else None, T_IDS if uses_maps else None, mode="soft",
                      alpha=0.9, tau=1.0, beta=1.0, w_fft=w_fft,
                      criterion=torch.nn.CrossEntropyLoss(label_smoothing=0.1))
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    return ClassifierTraining(task, optimizer, None, scaler, None, None, torch.device("cpu"), precision, None, steps)


RUN = Run(Path("."), {}, DistEnv(), None, "epoch")  # never started: only its non-finite check is used


def one_epoch(parts: ClassifierTraining, data) -> dict:
    with Progress(parts.steps_per_epoch, "bench", bar=False) as progress:
        return train_one_epoch([Student("", RUN, parts, {}, rng=RngStream(0))], data, 0, progress)[0]


def bench_step(rounds: int, steps: int, batch: int, say=print) -> dict:
    teacher = create_model(TEACHER[0], model_kwargs=TEACHER[1]).eval().requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    data = TensorBatches([(torch.randn(batch, 3, 32, 32, generator=g), torch.randint(0, 10, (batch,), generator=g))
                          for _ in range(steps)])
    variants = {
        "spectralkd bf16": make_parts(0.2, "bf16", teacher, batch, steps),
        "logit-KD bf16": make_parts(0.0, "bf16", teacher, batch, steps),
        "spectralkd fp32": make_parts(0.2, "fp32", teacher, batch, steps),
        "logit-KD fp32": make_parts(0.0, "fp32", teacher, batch, steps),
    }
    for parts in variants.values():  # warm-up
        one_epoch(parts, TensorBatches(data.batches[:1]))
    rates = {name: [] for name in variants}
    for _ in range(rounds):
        for name, parts in variants.items():
            rates[name].append(one_epoch(parts, data)["img_per_s"])
    best = {name: max(v) for name, v in rates.items()}  # best round = least disturbed
    for name, v in best.items():
        say(f"distill step CIFAR recipe batch {batch}, {name}: {v:.0f} img/s ({batch / v * 1e3:.0f} ms/step; "
            f"median round {statistics.median(rates[name]):.0f} img/s)")
    ratios = {}
    for prec in ("bf16", "fp32"):
        ratios[prec] = best[f"logit-KD {prec}"] / best[f"spectralkd {prec}"]
        say(f"step time SpectralKD / logit-KD-only ({prec}): {ratios[prec]:.3f}x (goal ≤ {STEP_GOAL})")
    bf16_gain = best['spectralkd bf16'] / best['spectralkd fp32']
    say(f"SpectralKD img/s bf16 / fp32: {bf16_gain:.2f}x")
    return {"batch": batch, "img_per_s": best, "median_img_per_s": {k: statistics.median(v) for k, v in rates.items()},
            "ms_per_step": {k: batch / v * 1e3 for k, v in best.items()},
            "step_ratio_spectralkd_over_logit_kd": ratios, "goal": STEP_GOAL, "spectralkd_bf16_over_fp32": bf16_gain}


COHORT = {  # the study's students: loss, feature term weight
    "spectralkd": ("spectral", 0.2), "feature_mse": ("feature_mse", 0.2), "magnitude": ("magnitude", 0.2),
    "logit_kd": ("spectral", 0.0),
}


def bench_timm(rounds: int, steps: int, batch: int, precision: str = "bf16", say=print) -> dict:
    """Our SpectralKD step and logit-KD step against timm's LogitDistillationTask on the same student, teacher and
    batches (the CIFAR-10 recipe's shapes), rounds interleaved; img/s and step-time ratios."""
    from timm.task import LogitDistillationTask

    teacher = create_model(TEACHER[0], model_kwargs=TEACHER[1]).eval().requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    data = TensorBatches([(torch.randn(batch, 3, 32, 32, generator=g), torch.randint(0, 10, (batch,), generator=g))
                          for _ in range(steps)])

    def timm_epoch() -> float:
        torch.manual_seed(0)
        student = create_model(STUDENT[0], model_kwargs=STUDENT[1])
        task = LogitDistillationTask(student, teacher, criterion=torch.nn.CrossEntropyLoss(label_smoothing=0.1),
                                     task_loss_weight=0.1, temperature=1.0, verbose=False)
        optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4)
        task.train()
        start = time.perf_counter()
        for images, labels in data:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = task(images, labels)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return steps * batch / (time.perf_counter() - start)

    variants = {"spectralkd": lambda: one_epoch(make_parts(0.2, precision, teacher, batch, steps), data)["img_per_s"],
                "logit-KD (ours)": lambda: one_epoch(make_parts(0.0, precision, teacher, batch, steps), data)["img_per_s"],
                "timm LogitDistillationTask": timm_epoch}
    for fn in variants.values():  # warm-up
        fn()
    rates = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            rates[name].append(fn())
    best = {name: max(v) for name, v in rates.items()}
    for name, v in best.items():
        say(f"step, CIFAR recipe batch {batch} {precision}, {name}: {v:.0f} img/s (median {statistics.median(rates[name]):.0f})")
    timm_rate = best["timm LogitDistillationTask"]
    ratios = {"spectralkd_over_our_logit_kd": best['logit-KD (ours)'] / best['spectralkd'],
              "spectralkd_over_timm": timm_rate / best['spectralkd'],
              "our_logit_kd_over_timm": timm_rate / best['logit-KD (ours)']}
    say(f"step time: SpectralKD / our logit-KD {ratios['spectralkd_over_our_logit_kd']:.3f}x (goal ≤ {STEP_GOAL}); "
        f"SpectralKD / timm logit-KD {ratios['spectralkd_over_timm']:.3f}x; our logit-KD / timm logit-KD "
        f"{ratios['our_logit_kd_over_timm']:.3f}x")
    return {"batch": batch, "precision": precision, "img_per_s": best,
            "median_img_per_s": {k: statistics.median(v) for k, v in rates.items()}, "step_time_ratios": ratios,
            "goal": STEP_GOAL}


def make_student(feature_loss: str, w_fft: float, teacher, steps: int, precision: str) -> ClassifierTraining:
    parts = make_parts(w_fft, precision, teacher, 0, steps)
    parts.task.loss_fn.feature_loss = feature_loss
    return parts


def bench_cohort(rounds: int, steps: int, batch: int, precision: str = "bf16", say=print) -> dict:
    """A cohort of the study's 4 students (one data stream, one teacher pass per batch) against the same 4 students
    trained one after the other, each with its own teacher pass: img/s per student, side by side in one run."""
    teacher = create_model(TEACHER[0], model_kwargs=TEACHER[1]).eval().requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    data = TensorBatches([(torch.randn(batch, 3, 32, 32, generator=g), torch.randint(0, 10, (batch,), generator=g))
                          for _ in range(steps)])

    def students():
        return [Student(name, RUN, make_student(loss, w, teacher, steps, precision), {}, rng=RngStream(0))
                for name, (loss, w) in COHORT.items()]

    def cohort_round() -> float:
        members = students()
        shared = SharedTeacher(members)
        start = time.perf_counter()
        with Progress(steps, "bench", bar=False) as progress:
            train_one_epoch(members, data, 0, progress, shared)
        return time.perf_counter() - start

    def solo_round() -> float:
        total = 0.0
        for member in students():
            start = time.perf_counter()
            with Progress(steps, "bench", bar=False) as progress:
                train_one_epoch([member], data, 0, progress)
            total += time.perf_counter() - start
        return total

    cohort_round(), solo_round()  # warm-up
    cohort_t, solo_t = [], []
    for _ in range(rounds):
        cohort_t.append(cohort_round())
        solo_t.append(solo_round())
    images = steps * batch * len(COHORT)
    c, s = min(cohort_t), min(solo_t)
    median = statistics.median(solo_t) / statistics.median(cohort_t)
    say(f"cohort of {len(COHORT)} students ({', '.join(COHORT)}), CIFAR recipe batch {batch}, {precision}: "
        f"{images / len(COHORT) / c:.0f} img/s per student vs {images / len(COHORT) / s:.0f} trained one by one "
        f"→ {s / c:.2f}x (goal ≥ {COHORT_GOAL}; medians {median:.2f}x)")
    return {"batch": batch, "precision": precision, "students": list(COHORT),
            "img_per_s_per_student_cohort": images / len(COHORT) / c,
            "img_per_s_per_student_one_by_one": images / len(COHORT) / s, "speedup": s / c, "median_speedup": median,
            "goal": COHORT_GOAL}


def derive(data: dict) -> None:
    """The summary keys docs and readers use, recomputed from the sections after every run."""
    secs = data["sections"]
    data["commands"] = {**data.get("commands", {}), **{k: v["header"]["command"] for k, v in secs.items()}}
    data["output"] = {**data.get("output", {}), **{k: v["output"] for k, v in secs.items()}}
    latest = max(secs.values(), key=lambda v: v["header"]["date"])
    data["date"], data["machine"] = latest["header"]["date"][:10], latest["header"]["machine"]
    if "step" in secs:
        r = secs["step"]["results"]["step_ratio_spectralkd_over_logit_kd"]
        data["step_ratio_spectralkd_over_logit_kd"] = {"bf16": round(r["bf16"], 3), "fp32": round(r["fp32"], 3),
                                                       "goal": STEP_GOAL, "met": r["bf16"] <= STEP_GOAL}
    if "timm" in secs:
        r = secs["timm"]["results"]["step_time_ratios"]
        data["step_ratio_vs_timm_logit_distillation_task"] = {"spectralkd": round(r["spectralkd_over_timm"], 3),
                                                              "our_logit_kd": round(r["our_logit_kd_over_timm"], 3)}
    if "cohort" in secs:
        r = secs["cohort"]["results"]
        data["cohort_speedup_4_students"] = {"value": round(r["speedup"], 2), "goal": COHORT_GOAL,
                                             "met": r["speedup"] >= COHORT_GOAL}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run of this script)")
    parser.add_argument("--only", choices=("loss", "step", "timm", "cohort"), help="run one part only")
    parser.add_argument("--alignment", action="store_true", help="only the spatial-alignment timing (item 3)")
    parser.add_argument("--out", type=Path, default=_results.RESULTS / "bench_distill.json",
                        help="result file; each part run replaces its own section and keeps the others")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rounds = 2 if args.quick else args.rounds
    steps = 2 if args.quick else args.steps
    settings = {"threads": args.threads, "rounds": rounds, "steps": steps, "batch": args.batch, "quick": args.quick}
    if args.alignment:
        parts = {"alignment": lambda say: bench_alignment(rounds, 1 if args.quick else 3, say)}
    else:
        parts = {"loss": lambda say: bench_loss(rounds, 1 if args.quick else 3, say),
                 "step": lambda say: bench_step(rounds, steps, args.batch, say),
                 "timm": lambda say: bench_timm(rounds, steps, args.batch, say=say),
                 "cohort": lambda say: bench_cohort(max(1, rounds // 2), steps, args.batch, say=say)}
        if args.only:
            parts = {args.only: parts[args.only]}
    sections = {}
    for name, run in parts.items():
        head, say = _results.header(torch.get_num_threads()), _results.Recorder()
        say(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        results = run(say)
        sections[name] = _results.section(head, dict(settings, part=name), results, say.lines)
    _results.merge(args.out, "bench_distill", sections, derive)


if __name__ == "__main__":
    main()
