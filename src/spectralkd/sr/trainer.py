"""SR training (``sr train``) and SR distillation (``sr distill``): one iteration-based loop.

L1 loss (plus β·spectral alignment when a teacher is given), Adam (2e-4, β = (0.9, 0.99)), cosine decay per
iteration, EMA of the weights (timm ``ModelEmaV3``, 0.999), validation on Set5 every ``val.every`` iterations
(EMA weights when enabled). Run directory: ``config.yaml``, ``log.jsonl``, ``last.pt`` (everything needed to
resume, written atomically), ``last.safetensors``/``best.safetensors`` (weights + model card: EMA when enabled).
``--resume`` continues from ``last.pt`` bit-for-bit in the data stream. Works under ``torchrun`` (DDP; each
process draws its own share of every pass; validation on rank 0).
"""
from __future__ import annotations

import math
import sys
import time
from datetime import datetime
from pathlib import Path

import torch
from timm.utils import ModelEmaV3
from torch import nn
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from spectralkd.config import save_config
from spectralkd.runtime.precision import autocast_ctx
from spectralkd.runtime.checkpoint import atomic_torch_save, load_torch_state, save_weights
from spectralkd.runtime.distributed import DistEnv, all_reduce_sum, barrier, broadcast_object, cleanup, init_distributed
from spectralkd.runtime.rng import get_rng_states, seed_everything, set_rng_states
from spectralkd.runtime.runlog import JsonlLog
from spectralkd.errors import UserError
from spectralkd.paths import REPO_ROOT, shared_path
from spectralkd.sr.datasets import HRPatches, PairedSet
from spectralkd.config.sr import RESUME_MUTABLE
from spectralkd.sr.distill import SRDistillLoss, SRWithMaps, check_ids, default_pairs, num_body_blocks
from spectralkd.sr.evaluate import evaluate_set, model_upscaler
from spectralkd.sr.loading import build_model, load_sr_model
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


def _default_path(value, *shared: str, what: str) -> Path:
    if value:
        return Path(value)
    path = shared_path(*shared)
    if path is None:
        raise UserError(f"no {what} given and the shared data folder is absent; set data.{what}")
    return path


def build_student(cfg: dict) -> nn.Module:
    m = cfg["model"]
    if m["arch"] not in ("mdbn", "plain"):
        raise UserError(f"model.arch '{m['arch']}' is not supported; allowed: mdbn, plain")
    model = build_model({"arch": m["arch"], "num_feat": int(m["num_feat"]), "num_block": int(m["num_block"]),
                         "upscale": check_scale(cfg["scale"]), "num_in_ch": 3, "num_out_ch": 3})
    if float(m["res_scale"]) != 1.0:
        for block in model.body:
            block.res_scale = float(m["res_scale"])
    return model


def _check_resume(saved: dict, cfg: dict) -> None:
    def flat(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flat(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    old, new = dict(flat(saved)), dict(flat(cfg))
    changed = [k for k in new if k not in RESUME_MUTABLE and old.get(k) != new[k]]
    if changed:
        k = changed[0]
        raise UserError(f"--resume: config key '{k}' changed ({old.get(k)!r} → {new[k]!r}); only "
                        f"{', '.join(RESUME_MUTABLE)} may change on resume")


def run(cfg: dict, resume: bool = False, distill: bool = False) -> dict:
    """Train (or distil) as ``cfg`` says; returns ``{"out", "last", "best"}``."""
    env = init_distributed(cfg["device"])
    try:
        return _run(cfg, env, resume, distill)
    finally:
        cleanup()


def _run(cfg: dict, env: DistEnv, resume: bool, distill: bool) -> dict:
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    scale = check_scale(cfg["scale"])
    out = Path(cfg["out"]) if cfg["out"] else REPO_ROOT / "runs" / f"sr-{datetime.now():%Y%m%d-%H%M%S}"
    out = Path(broadcast_object(str(out)))
    state_path = out / "last.pt"
    if resume and not state_path.is_file():
        raise UserError(f"--resume: {state_path} does not exist")
    if not resume and state_path.is_file():
        raise UserError(f"run directory {out} already holds a run (last.pt); use --resume or another --set out=...")
    seed_everything(cfg["seed"], env.rank)
    total = int(cfg["sched"]["total_iters"])
    if total < 1:
        raise UserError(f"sched.total_iters must be ≥ 1, got {total}")

    model = build_student(cfg).to(env.device)  # config errors surface before any data is read

    # data
    d = cfg["data"]
    train_dir = _default_path(d["train"], "sr", "SunHays80-HR", what="train")
    val_dirs = [Path(v) for v in (d["val"] if isinstance(d["val"], list) else [d["val"]])] if d["val"] else \
        [_default_path(None, "sr", "Set5", what="val")]
    train_set = HRPatches(train_dir, scale, int(d["patch_size"]), length=int(d["length"] or 1000 * d["batch_size"]),
                          augment=bool(d["augment"]), in_memory=bool(d["in_memory"]), seed=int(cfg["seed"]))
    val_sets = [PairedSet(v, scale) for v in val_dirs] if env.is_main else []
    bs = int(d["batch_size"])
    sampler = PassSampler(len(train_set), int(cfg["seed"]), env.rank, env.world_size)
    steps_per_pass = len(sampler) // bs
    if steps_per_pass < 1:
        raise UserError(f"data.length {len(train_set)} gives no full batch of {bs} per process")

    # teacher
    teacher, pairs = None, ([], [])
    if distill:
        if not cfg["teacher"]["weights"]:
            raise UserError("sr distill needs teacher.weights (an MDBN weights file)")
        teacher = load_sr_model(cfg["teacher"]["weights"], scale).to(env.device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        ns, nt = num_body_blocks(model), num_body_blocks(teacher)
        dcfg = cfg["distill"]
        s_ids = default_pairs(ns, nt)[0] if dcfg["student_blocks"] is None else check_ids(dcfg["student_blocks"], ns, "student")
        t_ids = [max(0, round((i + 1) * nt / ns) - 1) for i in s_ids] if dcfg["teacher_blocks"] is None else \
            check_ids(dcfg["teacher_blocks"], nt, "teacher")
        if len(s_ids) != len(t_ids):
            raise UserError(f"distill.student_blocks has {len(s_ids)} ids but teacher_blocks {len(t_ids)}")
        pairs = (s_ids, t_ids)
        teacher_fwd = SRWithMaps(teacher, t_ids)
    net = SRWithMaps(model, pairs[0])
    criterion = SRDistillLoss(cfg["distill"]["beta"])
    if env.distributed:
        net = nn.parallel.DistributedDataParallel(net, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    o = cfg["optim"]
    optimizer = torch.optim.Adam(model.parameters(), lr=float(o["lr"]), betas=tuple(o["betas"]),
                                 weight_decay=float(o["weight_decay"]))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total, eta_min=float(cfg["sched"]["min_lr"]))
    ema = ModelEmaV3(model, decay=float(cfg["ema"]["decay"]), use_warmup=bool(cfg["ema"]["warmup"])) \
        if cfg["ema"]["enabled"] else None

    log = JsonlLog(out / "log.jsonl", enabled=env.is_main)
    it, best = 0, {"psnr": -math.inf, "iter": None}
    if resume:
        state = load_torch_state(state_path, map_location=env.device)
        _check_resume(state["config"], cfg)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.module.load_state_dict(state["ema"])
        set_rng_states(state["rng"])  # training data does not use it (seeded by seed/pass/index); dropout-free
        it, best = int(state["iter"]), dict(state["best"])
        log.truncate_after("iter", it)
    elif env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
    barrier()

    card = {"arch": cfg["model"]["arch"], "num_feat": cfg["model"]["num_feat"], "num_block": cfg["model"]["num_block"],
            "upscale": scale, "params": count_params(model), "ema": ema is not None, "seed": cfg["seed"]}
    if env.is_main and not resume:
        log.write({"event": "start", "iter": 0, "params": card["params"], "train": str(train_dir),
                   "val_sets": [str(v) for v in val_dirs], "world_size": env.world_size,
                   "distill_pairs": {"student": pairs[0], "teacher": pairs[1]} if distill else None})

    def weights() -> nn.Module:
        return ema.module if ema is not None else model

    def validate() -> dict:
        m = weights()
        m.eval()
        border = cfg["val"]["crop_border"]
        border = scale if border is None else int(border)
        res = {ds.name: evaluate_set(model_upscaler(m), ds, border, cfg["val"]["max_images"]) for ds in val_sets}
        model.train()
        return {k: {"psnr": v["psnr"], "ssim": v["ssim"]} for k, v in res.items()}

    def checkpoint(val: dict | None) -> None:
        nonlocal best
        if not env.is_main:
            return
        if val:
            first = next(iter(val.values()))
            if first["psnr"] > best["psnr"]:
                best = {"psnr": first["psnr"], "ssim": first["ssim"], "iter": it, "val": val}
                save_weights(out / "best.safetensors", weights().state_dict(), {**card, "iter": it, "val": val})
        save_weights(out / "last.safetensors", weights().state_dict(), {**card, "iter": it, "val": val})
        atomic_torch_save({"iter": it, "config": cfg, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "scheduler": scheduler.state_dict(), "ema": ema.module.state_dict() if ema else None,
                           "rng": get_rng_states(), "best": best}, state_path)

    bar = tqdm(total=total, initial=it, desc="sr train", disable=not (cfg["progress"] and env.is_main),
               file=sys.stderr, mininterval=2.0)
    start, window_t, window = time.perf_counter(), time.perf_counter(), torch.zeros(3, dtype=torch.float64)
    deadline = start + 60 * float(cfg["max_minutes"]) if cfg["max_minutes"] else None
    stopped_early = False
    model.train()
    while it < total:
        epoch, offset = divmod(it, steps_per_pass)
        sampler.set_position(epoch, offset * bs)
        train_set.set_epoch(epoch)
        loader = DataLoader(train_set, batch_size=bs, sampler=sampler, num_workers=int(d["num_workers"]),
                            drop_last=True)
        for lr_img, hr_img in loader:
            lr_img, hr_img = lr_img.to(env.device, non_blocking=True), hr_img.to(env.device, non_blocking=True)
            with autocast_ctx(env.device, cfg["precision"]):
                sr, s_maps = net(lr_img)
                t_maps = []
                if teacher is not None:
                    with torch.no_grad():
                        t_maps = teacher_fwd(lr_img)[1]
            loss, parts = criterion(sr.float(), hr_img, s_maps, t_maps)
            if not torch.isfinite(loss):
                raise UserError(f"loss became non-finite at iteration {it + 1}; the last checkpoint is left as it "
                                "was; lower optim.lr or set optim.clip_grad")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if o["clip_grad"]:
                nn.utils.clip_grad_norm_(model.parameters(), float(o["clip_grad"]))
            optimizer.step()
            scheduler.step()
            it += 1
            if ema is not None:
                ema.update(model, step=it)
            window += torch.tensor([float(parts["loss"]), float(parts.get("loss_fft", 0.0)), 1.0], dtype=torch.float64)
            bar.update(1)
            if it % int(cfg["log_every"]) == 0 or it == total:
                all_reduce_sum(window)
                now = time.perf_counter()
                rec = {"iter": it, "loss": window[0].item() / window[2].item(), "lr": scheduler.get_last_lr()[0],
                       "it_per_s": window[2].item() / env.world_size / (now - window_t), "time_s": now - start}
                if teacher is not None:
                    rec["loss_fft"] = window[1].item() / window[2].item()
                log.write(rec)
                bar.set_postfix(loss=f"{rec['loss']:.4f}")
                window_t, window = now, torch.zeros(3, dtype=torch.float64)
            out_of_time = deadline is not None and bool(broadcast_object(time.perf_counter() > deadline))
            out_of_time = out_of_time or (cfg["stop_iter"] is not None and it >= int(cfg["stop_iter"]))
            if it % int(cfg["val"]["every"]) == 0 or it == total or out_of_time:
                val = validate() if env.is_main else None
                if env.is_main:
                    log.write({"iter": it, "val": val, "time_s": time.perf_counter() - start})
                checkpoint(val)
                barrier()
            if out_of_time and it < total:
                stopped_early = True
                break
            if it >= total:
                break
        if stopped_early:
            break
    bar.close()
    summary = {"out": str(out), "iter": it, "total_iters": total, "stopped_early": stopped_early,
               "best": best, "time_s": time.perf_counter() - start}
    if env.is_main:
        log.write({"event": "end", **summary})
    return {**summary, "rank": env.rank}
