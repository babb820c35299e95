"""Every key a ``spectralkd train``/``distill`` config may hold: its type, range, default and meaning.

A config file and ``--set`` overrides are merged onto :func:`defaults` (unknown keys are refused), checked once
against :class:`ClassifierConfig` by ``load_config``, and the resolved result is saved as ``config.yaml`` in the run
directory. See ``docs/distill.md`` for what each key does.

Ranges: probabilities and ``distill.alpha`` in [0, 1]; learning rates, ``tau`` and std entries > 0; mean entries in
[0, 1]; ``crop_pct`` in (0, 1]; batch sizes, epochs and step/batch caps ≥ 1; weights, decays and warm-up lengths
≥ 0; ``ema.decay`` in (0, 1); ``drop_path`` and ``aug.smoothing`` in [0, 1).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Field, field_validator

from spectralkd.config.schema import (DEVICE_TEXT, Device, Fraction, HalfOpenUnit, Int, MeanList, NonNegFloat, NonNegInt,
                                      LogSection, OpenUnit, PosFloat, PosInt, Prob, Section, StdList, defaults_of)

Ids = Optional[Union[Literal["auto"], list[Union[Int, str]]]]  # block ids (negative count from the last) or module names


class ModelSection(Section):
    name: Optional[str] = Field(None, description="timm model name")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="timm.create_model keyword arguments (free-form)")
    pretrained: bool = Field(False, description="timm's pretrained weights (needs the model hub)")
    checkpoint: Optional[str] = Field(None, description="local weights to start from")
    drop_path: Optional[HalfOpenUnit] = Field(None, description="stochastic depth rate; null = the model's default")


class TeacherSection(Section):
    name: Optional[str] = Field(None, description="timm model name of the teacher")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="timm.create_model keyword arguments (free-form)")
    pretrained: bool = Field(False, description="timm's pretrained weights (needs the model hub)")
    checkpoint: Optional[str] = Field(None, description="the teacher's weights")
    mean: Optional[MeanList] = Field(None, description="the teacher's input normalisation; null → its model card, "
                                                       "else timm's config")
    std: Optional[StdList] = Field(None, description="the teacher's input std; null → model card, else timm's")


class DataSection(Section):
    path: Optional[str] = Field(None, description="ImageFolder root or .tar/.tar.gz with train/ and val/; null → "
                                                  "default data; \"generated\" → the generated 10-class image set")
    input_size: PosInt = Field(224, description="square input side in pixels")
    mean: Optional[MeanList] = Field(None, description="normalisation mean; null → the student's timm data config")
    std: Optional[StdList] = Field(None, description="normalisation std; null → the student's timm data config")
    interpolation: Literal["bicubic", "bilinear", "nearest"] = Field("bicubic", description="resize interpolation")
    crop_pct: Optional[Fraction] = Field(None, description="centre-crop fraction at evaluation; null → timm's")
    batch_size: PosInt = Field(128, description="per process")
    eval_batch_size: Optional[PosInt] = Field(None, description="null → 2 × batch_size")
    num_workers: NonNegInt = Field(4, description="data loader worker processes")
    repeated_aug: bool = Field(False, description="timm RepeatAugSampler")
    num_repeats: PosInt = Field(3, description="repeats per image with repeated_aug")
    pin_memory: bool = Field(False, description="DataLoader pin_memory")
    holdout: NonNegInt = Field(0, description="> 0: hold out this many training images (class-balanced) as the "
                                              "validation split that chooses epochs; the test split is then "
                                              "evaluated once, after the last epoch")
    holdout_seed: NonNegInt = Field(0, description="which images are held out (independent of the training seed)")
    test_split: Literal["train", "val", "test"] = Field("val", description="the folder evaluated once at the end "
                                                                           "when holdout > 0")


class AugSection(Section):
    scale: Annotated[list[Fraction], Field(min_length=2, max_length=2)] = Field(
        default_factory=lambda: [0.08, 1.0], description="RandomResizedCrop area range [min, max]")
    ratio: Annotated[list[PosFloat], Field(min_length=2, max_length=2)] = Field(
        default_factory=lambda: [0.75, 1.3333333], description="RandomResizedCrop aspect range [min, max]")
    hflip: Prob = Field(0.5, description="horizontal flip probability")
    auto_augment: Optional[str] = Field(None, description="timm auto-augment policy, e.g. rand-m9-mstd0.5-inc1")
    color_jitter: Optional[Union[NonNegFloat, Annotated[list[NonNegFloat], Field(min_length=3, max_length=4)]]] = \
        Field(None, description="colour jitter strength, or [brightness, contrast, saturation(, hue)]")
    reprob: Prob = Field(0.0, description="random erasing probability")
    remode: Literal["pixel", "rand", "const"] = Field("pixel", description="random erasing fill")
    recount: PosInt = Field(1, description="random erasing count")
    smoothing: HalfOpenUnit = Field(0.1, description="label smoothing")
    mixup: NonNegFloat = Field(0.0, description="mixup alpha; 0 = off")
    cutmix: NonNegFloat = Field(0.0, description="cutmix alpha; 0 = off")
    mixup_prob: Prob = Field(1.0, description="probability of mixup or cutmix per batch")
    mixup_switch_prob: Prob = Field(0.5, description="probability of cutmix instead of mixup when both are on")
    mixup_mode: Literal["batch", "pair", "elem"] = Field("batch", description="timm Mixup mode")

    @field_validator("scale", "ratio")
    @classmethod
    def _ordered(cls, value: list[float]) -> list[float]:
        if value[0] > value[1]:
            raise ValueError("expected [min, max] with min ≤ max")
        return value


class OptimSection(Section):
    opt: str = Field("adamw", description="timm optimizer name (checked by timm when the run starts)")
    lr: PosFloat = Field(5e-4, description="learning rate")
    lr_base_batch: Optional[PosInt] = Field(None, description="when set, lr × (global batch / lr_base_batch), as "
                                                              "DeiT scales it")
    weight_decay: NonNegFloat = Field(0.05, description="weight decay")
    momentum: Prob = Field(0.9, description="momentum (SGD-style optimizers)")
    clip_grad: Optional[PosFloat] = Field(None, description="gradient norm clip; null = off")


class SchedSection(Section):
    sched: Literal["cosine", "tanh", "step", "multistep", "plateau", "poly", "none"] = Field(
        "cosine", description="timm scheduler")
    warmup_epochs: NonNegInt = Field(5, description="linear warm-up epochs")
    warmup_lr: NonNegFloat = Field(1e-6, description="learning rate at the start of warm-up")
    min_lr: NonNegFloat = Field(1e-5, description="final learning rate")
    cooldown_epochs: NonNegInt = Field(0, description="epochs at min_lr after the schedule")


class EmaSection(Section):
    enabled: bool = Field(False, description="keep an EMA of the weights (timm ModelEmaV3)")
    decay: OpenUnit = Field(0.9998, description="EMA decay")
    warmup: bool = Field(False, description="timm's EMA decay warm-up")


class DistillSection(Section):
    mode: Literal["none", "soft", "hard", "fft"] = Field("fft", description="logit distillation mode")
    alpha: Prob = Field(0.9, description="weight of the distillation term against the label loss")
    tau: PosFloat = Field(1.0, description="softmax temperature")
    beta: NonNegFloat = Field(1.0, description="weight of the feature term")
    w_fft: NonNegFloat = Field(0.2, description="weight of the Fourier term (mode fft)")
    feature_loss: Literal["spectral", "feature_mse", "magnitude", "band"] = Field("spectral", description="feature term")
    band_emphasis: Literal["low", "high"] = Field("low", description="band only: which band is emphasised")
    band_strength: NonNegFloat = Field(3.0, description="band only: emphasis strength")
    student_ids: Ids = Field(None, description="list of block ids or module names, or \"auto\"")
    teacher_ids: Ids = Field(None, description="list of block ids or module names, or \"auto\"")
    analysis: Optional[str] = Field(None, description="analysis.json of `spectralkd analyze` (for auto)")
    spatial_align: Literal["strict", "fourier", "fourier_centered", "interpolate"] = Field(
        "strict", description="pairs of different H×W: strict (refused) | fourier (common frequencies, exact ideal "
                              "resampling, grids sharing their origin) | fourier_centered (the same sampled at the "
                              "cell centres: patch tokens) | interpolate (bilinear)")


class MonitorSection(Section):
    every: NonNegInt = Field(0, description="every N epochs (and at epoch 0 and the last epoch) record the "
                                            "student's per-layer measures on a fixed probe batch into "
                                            "RUN/dynamics.jsonl; 0 = off")
    probe_images: PosInt = Field(64, description="images in the probe batch (the first of the validation split, "
                                                 "class-interleaved; the held-out images when data.holdout > 0)")


class ClassifierConfig(Section):
    seed: NonNegInt = Field(0, description="random seed")
    device: Device = Field("auto", description=DEVICE_TEXT, json_schema_extra={"x-allowed": DEVICE_TEXT})
    precision: Literal["fp32", "bf16", "fp16"] = Field("bf16", description="fp16 on CUDA only")
    epochs: PosInt = Field(10, description="training epochs")
    max_steps_per_epoch: Optional[PosInt] = Field(None, description="cap on optimizer steps per epoch (smoke "
                                                                    "tests); null = whole epoch")
    max_val_batches: Optional[PosInt] = Field(None, description="cap on validation batches; null = whole split")
    stop_after_epoch: Optional[PosInt] = Field(None, description="end this invocation after that epoch (continue "
                                                                 "later with --resume)")
    out: Optional[str] = Field(None, description="run directory; null → runs/<command>-<time>")
    progress: bool = Field(True, description="tqdm progress bar (rank 0)")
    threads: Optional[PosInt] = Field(None, description="torch.set_num_threads per process; null = torch's default")
    compile: bool = Field(False, description="torch.compile the student (training and evaluation) and the teacher")
    model: ModelSection = Field(default_factory=ModelSection, description="the student (or the model trained by "
                                                                          "`spectralkd train`)")
    teacher: TeacherSection = Field(default_factory=TeacherSection, description="`spectralkd distill` only")
    data: DataSection = Field(default_factory=DataSection)
    aug: AugSection = Field(default_factory=AugSection)
    optim: OptimSection = Field(default_factory=OptimSection)
    sched: SchedSection = Field(default_factory=SchedSection)
    ema: EmaSection = Field(default_factory=EmaSection)
    distill: DistillSection = Field(default_factory=DistillSection)
    log: LogSection = Field(default_factory=LogSection)
    monitor: MonitorSection = Field(default_factory=MonitorSection, description="spectral dynamics over training "
                                                                                 "(dynamics.jsonl)")


# Keys that may differ between a run and its resumption; any other change is refused.
RESUME_MUTABLE = ("epochs", "stop_after_epoch", "device", "threads", "progress", "compile", "max_val_batches",
                  "data.num_workers", "data.path", "data.eval_batch_size", "data.pin_memory", "out", "log.tensorboard",
                  "monitor.every")


def defaults() -> dict:
    """The default config (a fresh dict); ``load_config`` validates against :class:`ClassifierConfig` with it."""
    return defaults_of(ClassifierConfig)
