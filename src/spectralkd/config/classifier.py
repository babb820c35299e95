"""Every key a ``spectralkd train``/``distill`` config may hold, with its default.

A config file and ``--set`` overrides are merged onto these (unknown keys are refused), and the resolved result is
saved as ``config.yaml`` in the run directory. See ``docs/distill.md`` for what each key does.
"""
from __future__ import annotations

import copy

DEFAULTS: dict = {
    "seed": 0,
    "device": "auto",            # auto | cpu | cuda | cuda:N
    "precision": "bf16",         # fp32 | bf16 | fp16 (fp16 on CUDA only)
    "epochs": 10,
    "max_steps_per_epoch": None,  # cap on optimizer steps per epoch (smoke tests); null = whole epoch
    "max_val_batches": None,      # cap on validation batches; null = whole validation split
    "stop_after_epoch": None,     # end this invocation after that epoch (continue later with --resume)
    "out": None,                  # run directory; null → runs/<command>-<time>
    "progress": True,             # tqdm progress bar (rank 0)
    "threads": None,              # torch.set_num_threads per process; null = torch's default
    "compile": False,             # torch.compile the student (training and evaluation) and the teacher forward
    "model": {                    # the student (or the model trained by `spectralkd train`)
        "name": None,
        "kwargs": {},
        "pretrained": False,
        "checkpoint": None,
        "drop_path": None,
    },
    "teacher": {                  # `spectralkd distill` only
        "name": None,
        "kwargs": {},
        "pretrained": False,
        "checkpoint": None,
        "mean": None,             # the teacher's input normalisation; null → its model card, else timm's config
        "std": None,
    },
    "data": {
        "path": None,             # ImageFolder root or .tar/.tar.gz with train/ and val/; null → default data;
                                  # "generated" → the generated 10-class image set
        "input_size": 224,
        "mean": None,             # null → the student's timm data config
        "std": None,
        "interpolation": "bicubic",
        "crop_pct": None,
        "batch_size": 128,        # per process
        "eval_batch_size": None,  # null → 2 × batch_size
        "num_workers": 4,
        "repeated_aug": False,    # timm RepeatAugSampler
        "num_repeats": 3,
        "pin_memory": False,
        "holdout": 0,             # > 0: hold out this many training images (class-balanced) as the validation split
                                  # that chooses epochs; the test split is then evaluated once, after the last epoch
        "holdout_seed": 0,        # which images are held out (independent of the training seed)
        "test_split": "val",      # the folder evaluated once at the end when holdout > 0
    },
    "aug": {
        "scale": [0.08, 1.0],
        "ratio": [0.75, 1.3333333],
        "hflip": 0.5,
        "auto_augment": None,     # e.g. rand-m9-mstd0.5-inc1
        "color_jitter": None,
        "reprob": 0.0,            # random erasing probability
        "remode": "pixel",
        "recount": 1,
        "smoothing": 0.1,         # label smoothing
        "mixup": 0.0,
        "cutmix": 0.0,
        "mixup_prob": 1.0,
        "mixup_switch_prob": 0.5,
        "mixup_mode": "batch",
    },
    "optim": {
        "opt": "adamw",
        "lr": 5e-4,
        "lr_base_batch": None,    # when set, lr × (global batch / lr_base_batch), as DeiT scales it
        "weight_decay": 0.05,
        "momentum": 0.9,
        "clip_grad": None,
    },
    "sched": {
        "sched": "cosine",
        "warmup_epochs": 5,
        "warmup_lr": 1e-6,
        "min_lr": 1e-5,
        "cooldown_epochs": 0,
    },
    "ema": {
        "enabled": False,
        "decay": 0.9998,
        "warmup": False,
    },
    "distill": {
        "mode": "fft",            # none | soft | hard | fft
        "alpha": 0.9,
        "tau": 1.0,
        "beta": 1.0,
        "w_fft": 0.2,
        "feature_loss": "spectral",  # spectral | feature_mse | magnitude | band
        "band_emphasis": "low",   # band only: low | high
        "band_strength": 3.0,
        "spatial_align": "strict",  # pairs of different H×W: strict (refused) | fourier | interpolate
        "student_ids": None,      # list of block ids, or "auto"
        "teacher_ids": None,      # list of block ids, or "auto"
        "analysis": None,         # analysis.json of `spectralkd analyze` (for auto)
    },
    "log": {
        "tensorboard": False,     # also write log.jsonl's per-epoch scalars to RUN/tensorboard (needs tensorboard)
    },
}

# Keys that may differ between a run and its resumption; any other change is refused.
RESUME_MUTABLE = ("epochs", "stop_after_epoch", "device", "threads", "progress", "compile", "max_val_batches",
                  "data.num_workers", "data.path", "data.eval_batch_size", "data.pin_memory", "out", "log.tensorboard")


def defaults() -> dict:
    return copy.deepcopy(DEFAULTS)
