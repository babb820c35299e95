"""Student and teacher models, the teacher's input renormalisation, optimizer, scheduler and EMA from a config."""
from __future__ import annotations

import sys

import torch
import torch.nn as nn
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3

from spectralkd.errors import UserError
from spectralkd.runtime.checkpoint import load_weights
from spectralkd.features import MapsAndLogits, create_model, parse_model_kwargs


def model_kwargs(section: dict, num_classes: int | None, role: str) -> dict:
    kwargs = parse_model_kwargs(section.get("kwargs") or {})
    if role == "student":
        if "num_classes" in kwargs and num_classes is not None and int(kwargs["num_classes"]) != num_classes:
            raise UserError(f"model.kwargs.num_classes={kwargs['num_classes']} but the data has {num_classes} classes")
        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        if section.get("drop_path") is not None:
            kwargs["drop_path_rate"] = float(section["drop_path"])
    return kwargs


def build_student(cfg: dict, num_classes: int) -> tuple[nn.Module, dict]:
    m = cfg["model"]
    if not m.get("name"):
        raise UserError("model.name is not set; give a timm model name, e.g. --set model.name=deit_tiny_patch16_224")
    kwargs = model_kwargs(m, num_classes, "student")
    model = create_model(m["name"], pretrained=bool(m["pretrained"]), checkpoint=m["checkpoint"], model_kwargs=kwargs)
    return model, kwargs


def _card_of(checkpoint) -> dict:
    if checkpoint and str(checkpoint).endswith(".safetensors"):

        try:
            return load_weights(checkpoint)[1]
        except UserError:
            return {}
    return {}


def build_teacher(cfg: dict, num_classes: int) -> tuple[nn.Module, tuple, tuple]:
    """The teacher in eval mode with gradients off, and its input (mean, std)."""
    t = cfg["teacher"]
    if not t.get("name"):
        raise UserError("teacher.name is not set; `spectralkd distill` needs a teacher (use `spectralkd train` without one)")
    kwargs = model_kwargs(t, None, "teacher")
    teacher = create_model(t["name"], pretrained=bool(t["pretrained"]), checkpoint=t["checkpoint"], model_kwargs=kwargs)
    classes = getattr(teacher, "num_classes", None)
    if classes is not None and int(classes) != num_classes:
        raise UserError(f"teacher {t['name']} predicts {classes} classes but the data has {num_classes}; "
                        "use a teacher trained on this data (teacher.checkpoint) or set teacher.kwargs.num_classes")
    teacher.eval().requires_grad_(False)
    card = _card_of(t["checkpoint"])
    card_data = card.get("data", {}) if isinstance(card, dict) else {}
    pcfg = getattr(teacher, "pretrained_cfg", {}) or {}
    mean = tuple(float(v) for v in (t["mean"] or card_data.get("mean") or pcfg.get("mean") or (0.485, 0.456, 0.406)))
    std = tuple(float(v) for v in (t["std"] or card_data.get("std") or pcfg.get("std") or (0.229, 0.224, 0.225)))
    return teacher, mean, std


class Renormalize(nn.Module):
    """Maps images normalised with (mean_s, std_s) to the normalisation (mean_t, std_t) the teacher expects."""

    def __init__(self, mean_s, std_s, mean_t, std_t):
        super().__init__()
        ms, ss, mt, st = (torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1) for v in (mean_s, std_s, mean_t, std_t))
        self.register_buffer("scale", ss / st, persistent=False)
        self.register_buffer("shift", (ms - mt) / st, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


def teacher_input(student_mean, student_std, teacher_mean, teacher_std, name: str, warn: bool) -> nn.Module:
    """Identity when normalisations agree; else warn once and convert."""
    same = all(abs(a - b) < 1e-6 for a, b in zip((*student_mean, *student_std), (*teacher_mean, *teacher_std)))
    if same:
        return nn.Identity()
    if warn:
        print(f"spectralkd: warning: teacher {name} expects mean {tuple(round(v, 4) for v in teacher_mean)} std "
              f"{tuple(round(v, 4) for v in teacher_std)} but the student's data uses mean "
              f"{tuple(round(v, 4) for v in student_mean)} std {tuple(round(v, 4) for v in student_std)}; "
              "converting the teacher's input", file=sys.stderr)
    return Renormalize(student_mean, student_std, teacher_mean, teacher_std)


class TeacherForward(nn.Module):
    """Teacher logits and maps at ``ids`` (none when ``ids`` is empty), from student-normalised images."""

    def __init__(self, teacher: nn.Module, ids, renorm: nn.Module):
        super().__init__()
        self.net = MapsAndLogits(teacher, ids or None)
        self.renorm = renorm
        self.eval()

    def train(self, mode: bool = True):  # the teacher stays in eval mode
        return super().train(False)

    @torch.no_grad()
    def forward(self, x):
        return self.net(self.renorm(x))


def effective_lr(cfg: dict, global_batch: int) -> float:
    o = cfg["optim"]
    lr = float(o["lr"])
    if o.get("lr_base_batch"):
        lr = lr * global_batch / float(o["lr_base_batch"])
    return lr


def build_optimizer(cfg: dict, model: nn.Module, lr: float):
    o = cfg["optim"]
    try:
        return create_optimizer_v2(model, opt=o["opt"], lr=lr, weight_decay=float(o["weight_decay"]),
                                   momentum=float(o["momentum"]))
    except (AssertionError, ValueError) as exc:
        raise UserError(f"optim.opt '{o['opt']}' is not usable: {' '.join(str(exc).split())[:160]}") from None


def build_scheduler(cfg: dict, optimizer, steps_per_epoch: int):
    s = cfg["sched"]
    try:
        scheduler, _ = create_scheduler_v2(
            optimizer, sched=s["sched"], num_epochs=int(cfg["epochs"]), warmup_epochs=int(s["warmup_epochs"]),
            warmup_lr=float(s["warmup_lr"]), min_lr=float(s["min_lr"]), cooldown_epochs=int(s["cooldown_epochs"]),
            step_on_epochs=False, updates_per_epoch=steps_per_epoch)
    except (AssertionError, ValueError, TypeError) as exc:
        raise UserError(f"sched.sched '{s['sched']}' is not usable: {' '.join(str(exc).split())[:160]}") from None
    return scheduler


def build_ema(cfg: dict, model: nn.Module) -> ModelEmaV3 | None:
    e = cfg["ema"]
    if not e["enabled"]:
        return None
    return ModelEmaV3(model, decay=float(e["decay"]), use_warmup=bool(e["warmup"]))

