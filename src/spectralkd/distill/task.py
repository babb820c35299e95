"""``spectralkd.SpectralKD``: SpectralKD as a timm ``TrainingTask``, for any training loop (ours included).

::

    task = SpectralKD(student, teacher, student_layers=[0, 1, 4, 5], teacher_layers=[0, 1, 10, 11], mode="soft")
    out = task(images, targets)          # {"loss", "output", "loss_ce", "loss_kd", "loss_fft"}
    out["loss"].backward()

The objective is :class:`spectralkd.distill.losses.SpectralKDLoss` (``(1−α)·CE_ls + α·KD + β·w_fft·spectral``) on
the student's logits and maps from one student forward and the frozen teacher's under ``no_grad``. Layers are block
indices of timm models (``forward_intermediates``) or module names of any ``nn.Module`` (forward hooks; ``B×N×C``
token outputs become maps). Distillation-token students (timm ``deit_*_distilled_*``) train their class head on the
labels and their distillation head on the teacher (DeiT's recipe); evaluation averages the two heads (timm's
behaviour). The loss is computed in float32 with autocast off, so the task is AMP-safe.
"""
from __future__ import annotations

import sys
from typing import Sequence

import torch
import torch.nn as nn
from timm.loss import LabelSmoothingCrossEntropy
from timm.task import TrainingTask
from timm.utils.model import unwrap_model

from spectralkd.distill.losses import SpectralKDLoss
from spectralkd.errors import UserError
from spectralkd.features import MapsAndLogits

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def model_normalization(model: nn.Module) -> tuple[tuple, tuple]:
    """(mean, std) of a model's ``pretrained_cfg`` (ImageNet's when it has none)."""
    pcfg = getattr(unwrap_model(model), "pretrained_cfg", None) or {}
    return tuple(pcfg.get("mean") or IMAGENET_MEAN), tuple(pcfg.get("std") or IMAGENET_STD)


class Renormalize(nn.Module):
    """Maps images normalised with (mean_s, std_s) to the normalisation (mean_t, std_t) the teacher expects."""

    def __init__(self, mean_s, std_s, mean_t, std_t):
        super().__init__()
        ms, ss, mt, st = (torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1) for v in (mean_s, std_s, mean_t, std_t))
        self.register_buffer("scale", ss / st, persistent=False)
        self.register_buffer("shift", (ms - mt) / st, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


def teacher_input(student_norm, teacher_norm, name: str = "teacher", warn: bool = False) -> nn.Module:
    """Identity when the two (mean, std) agree; else (warning once when ``warn``) a :class:`Renormalize`."""
    (ms, ss), (mt, st) = student_norm, teacher_norm
    if all(abs(float(a) - float(b)) < 1e-6 for a, b in zip((*ms, *ss), (*mt, *st))):
        return nn.Identity()
    if warn:
        print(f"spectralkd: warning: teacher {name} expects mean {tuple(round(float(v), 4) for v in mt)} std "
              f"{tuple(round(float(v), 4) for v in st)} but the student's data uses mean "
              f"{tuple(round(float(v), 4) for v in ms)} std {tuple(round(float(v), 4) for v in ss)}; "
              "converting the teacher's input", file=sys.stderr)
    return Renormalize(ms, ss, mt, st)


class TeacherForward(nn.Module):
    """Frozen teacher: logits and maps at ``layers`` from student-normalised images, always in eval mode, no grad."""

    def __init__(self, teacher: nn.Module, layers, renorm: nn.Module | None = None):
        super().__init__()
        teacher.eval().requires_grad_(False)
        self.net = MapsAndLogits(teacher, layers or None)
        self.renorm = renorm if renorm is not None else nn.Identity()
        self.eval()

    def train(self, mode: bool = True):  # the teacher stays in eval mode
        return super().train(False)

    @torch.no_grad()
    def forward(self, x):
        return self.net(self.renorm(x))


def _model_name(model: nn.Module) -> str:
    """timm's architecture name when there is one, else the class name."""
    pcfg = getattr(unwrap_model(model), "pretrained_cfg", None) or {}
    return pcfg.get("architecture") or type(unwrap_model(model)).__name__


def _is_distilled(model: nn.Module) -> bool:
    return hasattr(unwrap_model(model), "set_distilled_training")


class SpectralKD(TrainingTask):
    """SpectralKD distillation as a timm ``TrainingTask`` (see the module docstring).

    Args:
        student, teacher: models; the teacher is frozen and kept in eval mode (``teacher=None`` only with
            ``mode="none"``, i.e. plain training).
        student_layers, teacher_layers: paired layers, block indices or module names (not needed when the feature
            term is off: ``w_fft·beta == 0`` or ``mode`` in ``none``).
        mode: ``soft`` (KL on logits at ``tau``), ``hard`` (CE on the teacher's argmax), ``fft`` (no logit term),
            ``none`` (CE only).
        alpha, tau, beta, w_fft: ``(1−α)·CE + α·KD + β·w_fft·feature``.
        feature_loss: ``spectral`` (the published loss), ``feature_mse``, ``magnitude``, ``band``.
        label_smoothing: of the label CE (ignored when ``criterion`` is given, e.g. soft-target CE under Mixup).
        spatial: pairs whose maps differ in H×W — ``strict`` (refused), ``fourier`` (compared on the frequencies both
            can represent: exact ideal resampling of the larger map, grids sharing their origin),
            ``fourier_centered`` (the same, sampled at the cell centres: the geometry of patch tokens),
            ``interpolate`` (bilinear).
        student_norm, teacher_norm: ``(mean, std)`` of each model's input; default: their ``pretrained_cfg``. The
            teacher's input is converted when they differ (as timm's ``DistillationTeacher`` does).
    """

    def __init__(self, student: nn.Module, teacher: nn.Module | None, student_layers: Sequence[int | str] | None = None,
                 teacher_layers: Sequence[int | str] | None = None, mode: str = "soft", alpha: float = 0.9,
                 tau: float = 1.0, beta: float = 1.0, w_fft: float = 0.2, feature_loss: str = "spectral",
                 label_smoothing: float = 0.1, criterion: nn.Module | None = None, band_emphasis: str = "low",
                 band_strength: float = 3.0, spatial: str = "strict", student_norm=None, teacher_norm=None,
                 warn: bool = False,
                 device: torch.device | None = None, dtype: torch.dtype | None = None, verbose: bool = False):
        super().__init__(device=device, dtype=dtype, verbose=verbose)
        if criterion is None:
            criterion = LabelSmoothingCrossEntropy(label_smoothing) if label_smoothing > 0 else nn.CrossEntropyLoss()
        self.loss_fn = SpectralKDLoss(criterion, mode=mode, alpha=alpha, tau=tau, beta=beta, w_fft=w_fft,
                                      feature_loss=feature_loss, band_emphasis=band_emphasis,
                                      band_strength=band_strength, spatial=spatial)
        uses_features = self.loss_fn.uses_features
        if uses_features and (not student_layers or not teacher_layers):
            raise UserError("the feature term needs student_layers and teacher_layers (block indices or module names)")
        if uses_features and len(student_layers) != len(teacher_layers):
            raise UserError(f"{len(student_layers)} student layers but {len(teacher_layers)} teacher layers; pair "
                            "them one to one")
        self.trainable_module = MapsAndLogits(student, student_layers if uses_features else None)
        self.teacher: TeacherForward | None = None
        if self.loss_fn.uses_teacher:
            if teacher is None:
                raise UserError(f"distillation mode '{mode}' needs a teacher; use mode 'none' to train without one")
            renorm = teacher_input(student_norm or model_normalization(student),
                                   teacher_norm or model_normalization(teacher), _model_name(teacher), warn)
            self.teacher = TeacherForward(teacher, teacher_layers if uses_features else None, renorm)
        self.distilled = _is_distilled(student) and self.loss_fn.uses_logits
        if self.distilled:
            unwrap_model(student).set_distilled_training(True)

    @property
    def student(self) -> nn.Module:
        """The bare student (not wrapped in DDP or the maps wrapper): for EMA, clipping, evaluation, saving."""
        return unwrap_model(self.trainable_module).model

    @property
    def student_layers(self) -> list:
        return unwrap_model(self.trainable_module).layers

    @property
    def teacher_layers(self) -> list:
        return unwrap_model(self.teacher.net).layers if self.teacher is not None else []

    def train(self, mode: bool = True) -> "SpectralKD":
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def prepare_distributed(self, device_ids: list | None = None, **ddp_kwargs) -> "SpectralKD":
        """Wrap only the trainable part (student and its map taps) in DDP; the teacher stays as it is."""
        from torch.nn.parallel import DistributedDataParallel

        self.trainable_module = DistributedDataParallel(self.trainable_module, device_ids=device_ids, **ddp_kwargs)
        return self

    def compile(self, backend: str = "inductor", mode: str | None = None, **compile_kwargs) -> nn.Module:
        """``torch.compile`` the student's training forward (with its map taps), its evaluation forward and the
        teacher's forward; call before :meth:`prepare_distributed`. Returns the compiled evaluation model."""
        self.trainable_module = torch.compile(self.trainable_module, backend=backend, mode=mode, **compile_kwargs)
        self.eval_model = torch.compile(self.student, backend=backend, mode=mode, **compile_kwargs)
        if self.teacher is not None:
            self.teacher.net = torch.compile(self.teacher.net, backend=backend, mode=mode, **compile_kwargs)
        return self.eval_model

    def setup_ema(self, decay: float = 0.9999, use_warmup: bool = False, device: torch.device | None = None,
                  **kwargs) -> nn.Module:
        """An EMA copy of the bare student (its evaluation model)."""
        from timm.utils import ModelEmaV3

        self.trainable_module_ema = ModelEmaV3(self.student, decay=decay, use_warmup=use_warmup, device=device,
                                               **kwargs)
        return self.trainable_module_ema

    def update_ema(self, step: int | None = None) -> None:
        if getattr(self, "trainable_module_ema", None) is not None:  # (timm < 1.0.31 has no has_ema())
            self.trainable_module_ema.update(self.student, step=step)

    def get_eval_model(self, module: nn.Module | None = None, ema: bool = False) -> nn.Module | None:
        """The bare student (or its EMA): plain logits, the two heads averaged for distillation-token students."""
        if module is not None:
            return module
        if ema:
            return getattr(self, "eval_model_ema", getattr(self, "trainable_module_ema", None))
        return getattr(self, "eval_model", self.student)

    def forward(self, images: torch.Tensor, targets: torch.Tensor, teacher_out: tuple | None = None) -> dict:
        """``teacher_out``: the teacher's ``(logits, maps at teacher_layers)`` when the caller computed them already
        (one teacher pass shared by a cohort of students); by default the task runs its teacher itself."""
        logits, student_maps = self.trainable_module(images)
        kd_logits = None
        if isinstance(logits, (tuple, list)):  # distillation-token student in training: (class head, dist head)
            logits, kd_logits = logits
        teacher_logits, teacher_maps = None, []
        if self.teacher is not None:
            teacher_logits, teacher_maps = teacher_out if teacher_out is not None else self.teacher(images)
        with torch.autocast(device_type=images.device.type, enabled=False):
            loss, parts = self.loss_fn(logits, targets, teacher_logits, student_maps, teacher_maps, kd_logits=kd_logits)
        output = logits if kd_logits is None else (logits + kd_logits) / 2
        return {**parts, "loss": loss, "output": output}
