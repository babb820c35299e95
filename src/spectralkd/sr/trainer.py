"""SR training (``sr train``) and SR distillation (``sr distill``): one iteration-based loop.

L1 loss (plus β·spectral alignment when a teacher is given), Adam (2e-4, β = (0.9, 0.99)), cosine decay per
iteration, EMA of the weights (timm ``ModelEmaV3``, 0.999), validation on Set5 every ``val.every`` iterations
(EMA weights when enabled). What is specific to SR lives here; the run directory (config, resume check, lock,
checkpoints, log, the non-finite stop) is :class:`spectralkd.runtime.run.Run`, shared with the classifier trainer.
Run directory: ``config.yaml``, ``log.jsonl``, ``last.pt`` (everything needed to resume, written atomically),
``last.safetensors``/``best.safetensors`` (weights + model card: EMA when enabled). ``--resume RUN_DIR`` continues
from ``last.pt`` bit-for-bit in the data stream. Works under ``torchrun`` (DDP; each process draws its own share of
every pass; validation on rank 0).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from timm.utils import ModelEmaV3
from torch import nn
from torch.utils.data import DataLoader, Sampler

from spectralkd.config import run_config
from spectralkd.config.sr import RESUME_MUTABLE, defaults
from spectralkd.errors import UserError, one_line
from spectralkd.paths import portable, shared_path
from spectralkd.runtime.distributed import DistEnv, all_reduce_sum, barrier, broadcast_object, cleanup, init_distributed
from spectralkd.runtime.precision import autocast_ctx
from spectralkd.runtime.progress import Progress
from spectralkd.runtime.rng import get_rng_states, seed_everything, set_rng_states
from spectralkd.runtime.run import Run
from spectralkd.sr.datasets import HRPatches, PairedSet
from spectralkd.sr.distill import SRDistillLoss, SRWithMaps, check_ids, default_pairs, num_body_blocks
from spectralkd.sr.evaluate import evaluate_set, model_upscaler
from spectralkd.sr.loading import ALLOWED_ARCHS, build_model, load_sr_model
from spectralkd.sr.mdbn import check_scale, count_params


class PassSampler(Sampler):
    """A fresh permutation per pass, seeded by (seed, pass); rank r takes every world-th index; can start
    mid-pass (resume) without loading the skipped samples."""

    def __init__(self, length: int, seed: int, rank: int = 0, world: int = 1):
        self.length, self.seed, self.rank, self.world = length, seed, rank, world
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, start: int) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.length, generator=g)[self.rank::self.world]
        return iter(order[self.start:].tolist())

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world)) - self.start


@dataclass
class SRTraining:
    """What one SR run trains with (built by :func:`build_sr_training`)."""
    model: nn.Module               # the bare student
    net: nn.Module                 # SRWithMaps(model), possibly DDP-wrapped: one forward gives (sr, maps)
    teacher: nn.Module | None      # SRWithMaps(teacher) under no_grad, or None
    pairs: tuple[list[int], list[int]]
    criterion: SRDistillLoss
    optimizer: torch.optim.Optimizer
    scheduler: object
    ema: ModelEmaV3 | None
    train_set: HRPatches
    sampler: PassSampler
    val_sets: list[PairedSet]
    train_dir: Path
    val_dirs: list[Path]
    scale: int
    total_iters: int
    card: dict

    @property
    def weights(self) -> nn.Module:
        """The weights that are validated and saved: the EMA when enabled."""
        return self.ema.module if self.ema is not None else self.model


def train_sr(config: str | Path | None = None, overrides: list[str] | None = None, resume: str | Path | None = None,
             out: str | Path | None = None, distill: bool = False) -> dict:
    """Train (or distil) as the config says; returns ``{"out", "iter", "total_iters", "stopped_early", "best", ...}``."""
    command = "sr distill" if distill else "sr train"
    cfg, saved = run_config(command, config, overrides or [], defaults(), resume,
                            {"out": None if out is None or resume else str(out)}, require_config=False)
    env = init_distributed(cfg["device"])
    run = None
    try:
        run = Run.prepare(cfg, env, resume=resume, saved_cfg=saved, mutable=RESUME_MUTABLE,
                          default_name=f"runs/sr-{time.strftime('%Y%m%d-%H%M%S')}", progress_key="iter",
                          state_schema={"optimizer": dict, "scheduler": dict, "best": dict, "rng": dict})
        training = build_sr_training(cfg, env, distill)
        best = restore(run.state, training) if run.state else {"psnr": -math.inf, "iter": None}
        run.start()
        if run.state is None:
            run.log.write(portable({"event": "start", "iter": 0, "params": training.card["params"],
                                    "train": str(training.train_dir), "val_sets": [str(v) for v in training.val_dirs],
                                    "world_size": env.world_size,
                                    "distill_pairs": {"student": training.pairs[0], "teacher": training.pairs[1]}
                                    if distill else None}, run.path))
        return train_iterations(run, training, best)
    finally:
        if run is not None:
            run.close()
        cleanup()


def build_student(cfg: dict) -> nn.Module:
    m = cfg["model"]
    if m["arch"] not in ALLOWED_ARCHS:
        raise UserError(f"model.arch '{m['arch']}' is not supported; allowed: {', '.join(ALLOWED_ARCHS)}")
    model = build_model({"arch": m["arch"], "num_feat": int(m["num_feat"]), "num_block": int(m["num_block"]),
                         "upscale": check_scale(cfg["scale"]), "num_in_ch": 3, "num_out_ch": 3})
    if float(m["res_scale"]) != 1.0:
        for block in model.body:
            block.res_scale = float(m["res_scale"])
    return model


def _default_path(value, *shared: str, what: str) -> Path:
    if value:
        return Path(value)
    path = shared_path(*shared)
    if path is None:
        raise UserError(f"no {what} given and the shared data folder is absent; set data.{what}")
    return path


def _teacher_and_pairs(cfg: dict, model: nn.Module, scale: int, device) -> tuple[nn.Module, tuple[list, list]]:
    if not cfg["teacher"]["weights"]:
        raise UserError("sr distill needs teacher.weights (an MDBN weights file)")
    teacher = load_sr_model(cfg["teacher"]["weights"], scale).to(device).eval().requires_grad_(False)
    n_student, n_teacher = num_body_blocks(model), num_body_blocks(teacher)
    distill_cfg = cfg["distill"]
    s_ids = default_pairs(n_student, n_teacher)[0] if distill_cfg["student_blocks"] is None else \
        check_ids(distill_cfg["student_blocks"], n_student, "student")
    t_ids = [max(0, round((i + 1) * n_teacher / n_student) - 1) for i in s_ids] \
        if distill_cfg["teacher_blocks"] is None else check_ids(distill_cfg["teacher_blocks"], n_teacher, "teacher")
    if len(s_ids) != len(t_ids):
        raise UserError(f"distill.student_blocks has {len(s_ids)} ids but teacher_blocks {len(t_ids)}")
    return SRWithMaps(teacher, t_ids), (s_ids, t_ids)


def build_sr_training(cfg: dict, env: DistEnv, distill: bool) -> SRTraining:
    """Model, data, teacher and pairs, loss, optimizer, scheduler and EMA, all checked before anything is written."""
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    scale = check_scale(cfg["scale"])
    seed_everything(cfg["seed"], env.rank)
    total = int(cfg["sched"]["total_iters"])
    if total < 1:
        raise UserError(f"sched.total_iters must be ≥ 1, got {total}")
    model = build_student(cfg).to(env.device)  # config errors surface before any data is read
    data_cfg = cfg["data"]
    train_dir = _default_path(data_cfg["train"], "sr", "SunHays80-HR", what="train")
    val_dirs = [Path(v) for v in (data_cfg["val"] if isinstance(data_cfg["val"], list) else [data_cfg["val"]])] \
        if data_cfg["val"] else [_default_path(None, "sr", "Set5", what="val")]
    batch = int(data_cfg["batch_size"])
    train_set = HRPatches(train_dir, scale, int(data_cfg["patch_size"]),
                          length=int(data_cfg["length"] or 1000 * batch), augment=bool(data_cfg["augment"]),
                          in_memory=bool(data_cfg["in_memory"]), seed=int(cfg["seed"]))
    val_sets = [PairedSet(v, scale) for v in val_dirs] if env.is_main else []
    sampler = PassSampler(len(train_set), int(cfg["seed"]), env.rank, env.world_size)
    if len(sampler) // batch < 1:
        raise UserError(f"data.length {len(train_set)} gives no full batch of {batch} per process")
    teacher, pairs = (_teacher_and_pairs(cfg, model, scale, env.device) if distill else (None, ([], [])))
    net = SRWithMaps(model, pairs[0])
    if env.distributed:
        net = nn.parallel.DistributedDataParallel(net, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    optim_cfg = cfg["optim"]
    optimizer = torch.optim.Adam(model.parameters(), lr=float(optim_cfg["lr"]), betas=tuple(optim_cfg["betas"]),
                                 weight_decay=float(optim_cfg["weight_decay"]))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total, eta_min=float(cfg["sched"]["min_lr"]))
    ema = ModelEmaV3(model, decay=float(cfg["ema"]["decay"]), use_warmup=bool(cfg["ema"]["warmup"])) \
        if cfg["ema"]["enabled"] else None
    card = {"arch": cfg["model"]["arch"], "num_feat": cfg["model"]["num_feat"], "num_block": cfg["model"]["num_block"],
            "upscale": scale, "params": count_params(model), "ema": ema is not None, "seed": cfg["seed"]}
    return SRTraining(model, net, teacher, pairs, SRDistillLoss(cfg["distill"]["beta"]), optimizer, scheduler, ema,
                      train_set, sampler, val_sets, train_dir, val_dirs, scale, total, card)


def restore(state: dict, t: SRTraining) -> dict:
    """Load a ``last.pt`` state into the training objects; returns the best-so-far record."""
    try:
        t.model.load_state_dict(state["model"])
        t.optimizer.load_state_dict(state["optimizer"])
        t.scheduler.load_state_dict(state["scheduler"])
        if t.ema is not None:
            t.ema.module.load_state_dict(state["ema"])
    except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
        raise UserError(f"last.pt does not fit this config ({one_line(exc, 160)})") from None
    set_rng_states(state["rng"])  # training data does not use it (seeded by seed/pass/index); dropout-free
    return dict(state["best"])


def validate(t: SRTraining, cfg: dict) -> dict:
    """PSNR/SSIM on every validation set (main process), with the weights that are saved."""
    net = t.weights
    net.eval()
    border = cfg["val"]["crop_border"]
    border = t.scale if border is None else int(border)
    results = {ds.name: evaluate_set(model_upscaler(net), ds, border, cfg["val"]["max_images"]) for ds in t.val_sets}
    t.model.train()
    return {name: {"psnr": r["psnr"], "ssim": r["ssim"]} for name, r in results.items()}


def _checkpoint(run: Run, t: SRTraining, it: int, val: dict | None, best: dict) -> dict:
    """Best (when the first validation set improved) and last weights, then ``last.pt``; returns the best (main
    process; the others, which do not validate or write, keep theirs)."""
    if not run.env.is_main:
        return best
    weights = {}
    if val:
        first = next(iter(val.values()))
        if first["psnr"] > best["psnr"]:
            best = {"psnr": first["psnr"], "ssim": first["ssim"], "iter": it, "val": val}
            weights["best.safetensors"] = (t.weights.state_dict(), {**t.card, "iter": it, "val": val})
    weights["last.safetensors"] = (t.weights.state_dict(), {**t.card, "iter": it, "val": val})
    run.save({"iter": it, "config": run.cfg, "model": t.model.state_dict(), "optimizer": t.optimizer.state_dict(),
              "scheduler": t.scheduler.state_dict(), "ema": t.ema.module.state_dict() if t.ema else None,
              "rng": get_rng_states(), "best": best}, weights)
    return best


def train_step(run: Run, t: SRTraining, lr_img: torch.Tensor, hr_img: torch.Tensor, it: int) -> dict:
    """One optimisation step; returns the loss parts (detached)."""
    device, cfg = run.env.device, run.cfg
    lr_img, hr_img = lr_img.to(device, non_blocking=True), hr_img.to(device, non_blocking=True)
    with autocast_ctx(device, cfg["precision"]):
        sr, s_maps = t.net(lr_img)
        t_maps = []
        if t.teacher is not None:
            with torch.no_grad():
                t_maps = t.teacher(lr_img)[1]
    loss, parts = t.criterion(sr.float(), hr_img, s_maps, t_maps)
    run.check_finite(loss, f"iteration {it + 1}", parts)
    t.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg["optim"]["clip_grad"]:
        nn.utils.clip_grad_norm_(t.model.parameters(), float(cfg["optim"]["clip_grad"]))
    t.optimizer.step()
    t.scheduler.step()
    if t.ema is not None:
        t.ema.update(t.model, step=it + 1)
    return parts


class _LossWindow:
    """Loss sums between log records, summed across processes when written."""

    def __init__(self, start: float):
        self.start = self.t0 = start
        self.sums = torch.zeros(3, dtype=torch.float64)

    def add(self, parts: dict) -> None:
        self.sums += torch.tensor([float(parts["loss"]), float(parts.get("loss_fft", 0.0)), 1.0], dtype=torch.float64)

    def record(self, it: int, lr: float, world_size: int, with_fft: bool) -> dict:
        all_reduce_sum(self.sums)
        now = time.perf_counter()
        loss, fft, n = (v.item() for v in self.sums)
        rec = {"iter": it, "loss": loss / n, "lr": lr, "it_per_s": n / world_size / (now - self.t0),
               "time_s": now - self.start}
        if with_fft:
            rec["loss_fft"] = fft / n
        self.t0, self.sums = now, torch.zeros(3, dtype=torch.float64)
        return rec


def train_iterations(run: Run, t: SRTraining, best: dict) -> dict:
    """Iterations from the run's position to ``sched.total_iters`` (or ``stop_iter`` / ``max_minutes``)."""
    cfg, env = run.cfg, run.env
    it, batch = run.position, int(cfg["data"]["batch_size"])
    steps_per_pass = (len(t.sampler) + t.sampler.start) // batch
    start = time.perf_counter()
    window = _LossWindow(start)
    deadline = start + 60 * float(cfg["max_minutes"]) if cfg["max_minutes"] else None
    stopped_early = False
    t.model.train()
    with Progress(t.total_iters, "sr train", bool(cfg["progress"]) and env.is_main, initial=it) as progress:
        while it < t.total_iters and not stopped_early:
            epoch, offset = divmod(it, steps_per_pass)
            t.sampler.set_position(epoch, offset * batch)
            t.train_set.set_epoch(epoch)
            loader = DataLoader(t.train_set, batch_size=batch, sampler=t.sampler,
                                num_workers=int(cfg["data"]["num_workers"]), drop_last=True)
            for lr_img, hr_img in loader:
                window.add(train_step(run, t, lr_img, hr_img, it))
                it += 1
                progress.update(1)
                if it % int(cfg["log_every"]) == 0 or it == t.total_iters:
                    rec = window.record(it, t.scheduler.get_last_lr()[0], env.world_size, t.teacher is not None)
                    run.log.write(rec)
                    progress.update(0, loss=f"{rec['loss']:.4f}")
                out_of_time = deadline is not None and bool(broadcast_object(time.perf_counter() > deadline))
                out_of_time = out_of_time or (cfg["stop_iter"] is not None and it >= int(cfg["stop_iter"]))
                if it % int(cfg["val"]["every"]) == 0 or it == t.total_iters or out_of_time:
                    val = validate(t, cfg) if env.is_main else None
                    run.log.write({"iter": it, "val": val, "time_s": time.perf_counter() - start})
                    best = _checkpoint(run, t, it, val, best)
                    barrier()
                stopped_early = out_of_time and it < t.total_iters
                if stopped_early or it >= t.total_iters:
                    break
    summary = {"out": str(run.path), "iter": it, "total_iters": t.total_iters, "stopped_early": stopped_early,
               "best": best, "time_s": time.perf_counter() - start}
    run.log.write(portable({"event": "end", **summary}, run.path))
    return {**summary, "rank": env.rank}
