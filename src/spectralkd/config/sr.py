"""Every key an ``sr train`` / ``sr distill`` config may hold: its type, range, default and meaning.

Unknown keys are refused; ``load_config`` checks a config once against :class:`SRConfig`. Ranges: lr > 0, betas in
[0, 1), batch sizes, patch size, iteration counts ≥ 1, ``ema.decay`` in (0, 1), weights ≥ 0.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import Field, field_validator

from spectralkd.config.schema import (DEVICE_TEXT, Device, HalfOpenUnit, NonNegFloat, NonNegInt, OpenUnit, PosFloat,
                                      LogSection, PosInt, Section, defaults_of)


class ModelSection(Section):
    arch: Literal["mdbn", "plain", "inception"] = Field(
        "mdbn", description="mdbn | plain | inception (same-size plain / GoogLeNet-like controls)")
    num_feat: PosInt = Field(64, description="feature channels")
    num_block: PosInt = Field(6, description="base blocks (plain: 12 blocks of 3 convs = MDBN's parameter count)")
    res_scale: PosFloat = Field(1.0, description="residual scaling of the blocks")


class TeacherSection(Section):
    weights: Optional[str] = Field(None, description="MDBN weights (BasicSR .pth, state dict, safetensors, our run's "
                                                     "best.safetensors); sr distill only")


class DistillSection(Section):
    beta: NonNegFloat = Field(0.1, description="weight of the spectral alignment term")
    student_blocks: Optional[list[NonNegInt]] = Field(None, description="list of body indices; null → all")
    teacher_blocks: Optional[list[NonNegInt]] = Field(None, description="list of body indices; null → same "
                                                                        "relative depth")


class DataSection(Section):
    train: Optional[str] = Field(None, description="folder of HR images; null → the shared SunHays80-HR")
    val: Optional[Union[str, list[str]]] = Field(None, description="paired set folder(s); null → the shared Set5")
    patch_size: PosInt = Field(96, description="HR patch side (multiple of the scale)")
    batch_size: PosInt = Field(16, description="per process")
    length: Optional[PosInt] = Field(None, description="samples per pass over the data; null → 1000 × batch_size")
    num_workers: NonNegInt = Field(0, description="data loader worker processes")
    in_memory: bool = Field(True, description="decode the HR images once and keep them in memory")
    augment: bool = Field(True, description="random flips and rotations")


class OptimSection(Section):
    lr: PosFloat = Field(2.0e-4, description="Adam learning rate")
    betas: Annotated[list[HalfOpenUnit], Field(min_length=2, max_length=2)] = Field(
        default_factory=lambda: [0.9, 0.99], description="Adam betas")
    weight_decay: NonNegFloat = Field(0.0, description="weight decay")
    clip_grad: Optional[PosFloat] = Field(None, description="gradient norm clip; null = off")


class SchedSection(Section):
    total_iters: PosInt = Field(2000, description="cosine from lr to min_lr over total_iters")
    min_lr: NonNegFloat = Field(1.0e-7, description="final learning rate")


class EmaSection(Section):
    enabled: bool = Field(True, description="keep an EMA of the weights")
    decay: OpenUnit = Field(0.999, description="EMA decay")
    warmup: bool = Field(False, description="timm's ramp (short runs)")


class ValSection(Section):
    every: PosInt = Field(500, description="validate every N iterations")
    crop_border: Optional[NonNegInt] = Field(None, description="pixels cropped before PSNR/SSIM; null → scale")
    max_images: Optional[PosInt] = Field(None, description="cap on images per validation set")


class SRConfig(Section):
    seed: NonNegInt = Field(0, description="random seed")
    device: Device = Field("auto", description=DEVICE_TEXT, json_schema_extra={"x-allowed": DEVICE_TEXT})
    precision: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="fp16 on CUDA only")
    threads: Optional[PosInt] = Field(None, description="torch.set_num_threads per process; null = torch's default")
    out: Optional[str] = Field(None, description="run directory; null → runs/sr-<time>")
    progress: bool = Field(True, description="progress output")
    scale: PosInt = Field(2, description="upscaling factor: 3 or a power of two ≥ 2",
                          json_schema_extra={"x-allowed": "3 or a power of two ≥ 2 (2, 4, 8, ...)"})
    model: ModelSection = Field(default_factory=ModelSection)
    teacher: TeacherSection = Field(default_factory=TeacherSection, description="sr distill only")
    distill: DistillSection = Field(default_factory=DistillSection)
    data: DataSection = Field(default_factory=DataSection)
    optim: OptimSection = Field(default_factory=OptimSection)
    sched: SchedSection = Field(default_factory=SchedSection)
    ema: EmaSection = Field(default_factory=EmaSection)
    val: ValSection = Field(default_factory=ValSection)
    log_every: PosInt = Field(50, description="log every N iterations")
    max_minutes: Optional[PosFloat] = Field(None, description="wall-clock budget: stop early (checkpoint + "
                                                              "validation) when exceeded")
    stop_iter: Optional[PosInt] = Field(None, description="stop (checkpoint + validation) after this iteration; "
                                                          "--resume continues")
    log: LogSection = Field(default_factory=LogSection)


    @field_validator("scale")
    @classmethod
    def _upsampler_scale(cls, value: int) -> int:
        if value < 2 or (value & (value - 1) and value != 3):
            raise ValueError("expected 3 or a power of two ≥ 2 (2, 4, 8, ...)")
        return value


RESUME_MUTABLE = ("device", "threads", "progress", "out", "data.num_workers", "data.train", "data.val",
                  "val.every", "val.max_images", "max_minutes", "log_every", "stop_iter", "log.tensorboard")


def defaults() -> dict:
    """The default config (a fresh dict); ``load_config`` validates against :class:`SRConfig` with it."""
    return defaults_of(SRConfig)
