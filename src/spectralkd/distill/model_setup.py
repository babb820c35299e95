"""Student and teacher models, the teacher's input renormalisation, optimizer, scheduler and EMA from a config."""
from __future__ import annotations

import torch.nn as nn
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3

from spectralkd.errors import UserError, one_line
from spectralkd.runtime.checkpoint import load_weights
from spectralkd.features import create_model, parse_model_kwargs


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


def build_teacher(cfg: dict, num_classes: int) -> tuple[nn.Module, tuple[tuple, tuple]]:
    """The teacher in eval mode with gradients off, and its input normalisation ``(mean, std)``: the config's,
    else its model card's, else its timm ``pretrained_cfg``'s."""
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
    return teacher, (mean, std)


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
        raise UserError(f"optim.opt '{o['opt']}' is not usable: {one_line(exc, 160)}") from None


def build_scheduler(cfg: dict, optimizer, steps_per_epoch: int):
    s = cfg["sched"]
    try:
        scheduler, _ = create_scheduler_v2(
            optimizer, sched=s["sched"], num_epochs=int(cfg["epochs"]), warmup_epochs=int(s["warmup_epochs"]),
            warmup_lr=float(s["warmup_lr"]), min_lr=float(s["min_lr"]), cooldown_epochs=int(s["cooldown_epochs"]),
            step_on_epochs=False, updates_per_epoch=steps_per_epoch)
    except (AssertionError, ValueError, TypeError) as exc:
        raise UserError(f"sched.sched '{s['sched']}' is not usable: {one_line(exc, 160)}") from None
    return scheduler


def build_ema(cfg: dict, model: nn.Module) -> ModelEmaV3 | None:
    e = cfg["ema"]
    if not e["enabled"]:
        return None
    return ModelEmaV3(model, decay=float(e["decay"]), use_warmup=bool(e["warmup"]))

