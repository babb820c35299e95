"""Every key an ``sr train`` / ``sr distill`` config may hold, with its default (unknown keys are refused)."""
from __future__ import annotations

import copy

DEFAULTS: dict = {
    "seed": 0,
    "device": "auto",             # auto | cpu | cuda | cuda:N
    "precision": "fp32",          # fp32 | bf16 | fp16 (CUDA)
    "threads": None,              # torch.set_num_threads per process; null = torch's default
    "out": None,                  # run directory; null → runs/sr-<time>
    "progress": True,
    "scale": 2,
    "model": {
        "arch": "mdbn",           # mdbn | plain | inception (same-size plain / GoogLeNet-like controls)
        "num_feat": 64,
        "num_block": 6,           # plain: 12 blocks of 3 convs = MDBN's parameter count
        "res_scale": 1.0,
    },
    "teacher": {                  # sr distill only
        "weights": None,          # MDBN weights (BasicSR .pth, state dict, safetensors, our run's best.safetensors)
    },
    "distill": {
        "beta": 0.1,              # weight of the spectral alignment term
        "student_blocks": None,   # list of body indices; null → all
        "teacher_blocks": None,   # list of body indices; null → same relative depth
    },
    "data": {
        "train": None,            # folder of HR images; null → the shared SunHays80-HR
        "val": None,              # list of paired sets; null → the shared Set5
        "patch_size": 96,         # HR patch side (multiple of the scale)
        "batch_size": 16,         # per process
        "length": None,           # samples per pass over the data; null → 1000 × batch_size
        "num_workers": 0,
        "in_memory": True,
        "augment": True,
    },
    "optim": {"lr": 2.0e-4, "betas": [0.9, 0.99], "weight_decay": 0.0, "clip_grad": None},
    "sched": {"total_iters": 2000, "min_lr": 1.0e-7},   # cosine from lr to min_lr over total_iters
    "ema": {"enabled": True, "decay": 0.999, "warmup": False},  # warmup: timm's ramp (short runs)
    "val": {"every": 500, "crop_border": None, "max_images": None},  # crop_border null → scale
    "log_every": 50,
    "max_minutes": None,          # wall-clock budget: stop early (checkpoint + validation) when exceeded
    "stop_iter": None,            # stop (checkpoint + validation) after this iteration; --resume continues
}

RESUME_MUTABLE = ("device", "threads", "progress", "out", "data.num_workers", "data.train", "data.val",
                  "val.every", "val.max_images", "max_minutes", "log_every", "stop_iter")


def defaults() -> dict:
    return copy.deepcopy(DEFAULTS)
