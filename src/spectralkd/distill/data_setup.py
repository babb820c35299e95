"""Training and validation loaders from a run config, with timm's transforms, samplers and Mixup/CutMix."""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn
from timm.data import Mixup, create_transform
from timm.data.distributed_sampler import RepeatAugSampler
from torch.utils.data import DataLoader, DistributedSampler, Subset

from spectralkd.data import ImageFiles, data_config, eval_transform, holdout_split, labelled_split
from spectralkd.errors import UserError


@dataclass
class DataBundle:
    train_loader: DataLoader
    val_loader: DataLoader
    sampler: object
    classes: list[str]
    data_cfg: dict            # input_size, mean, std, interpolation, crop_pct, crop_mode (the student's view)
    num_train: int
    num_val: int
    mixup: Mixup | None = None
    test_loader: DataLoader | None = None  # with data.holdout > 0: the test split, evaluated once at the end
    num_test: int = 0
    val_items: list | None = None  # (path, label) of the validation split (the held-out images with data.holdout)


def _pair(value, key: str) -> tuple[float, float]:
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise UserError(f"{key} must be a list of two numbers, got {value!r}")
    return float(value[0]), float(value[1])


def student_data_config(model: nn.Module, cfg: dict) -> dict:
    data_settings = cfg["data"]
    return data_config(model, input_size=data_settings["input_size"], mean=data_settings["mean"], std=data_settings["std"],
                       interpolation=data_settings["interpolation"], crop_pct=data_settings["crop_pct"])


def train_transform(cfg: dict, data_cfg: dict):
    a = cfg["aug"]
    return create_transform(
        input_size=data_cfg["input_size"], is_training=True, scale=_pair(a["scale"], "aug.scale"),
        ratio=_pair(a["ratio"], "aug.ratio"), hflip=float(a["hflip"]), color_jitter=a["color_jitter"],
        auto_augment=a["auto_augment"] or None, interpolation=data_cfg.get("interpolation", "bicubic"),
        mean=data_cfg["mean"], std=data_cfg["std"], re_prob=float(a["reprob"]), re_mode=a["remode"], re_count=int(a["recount"]),
    )


def make_mixup(cfg: dict, num_classes: int) -> Mixup | None:
    a = cfg["aug"]
    if not (float(a["mixup"]) > 0 or float(a["cutmix"]) > 0):
        return None
    return Mixup(mixup_alpha=float(a["mixup"]), cutmix_alpha=float(a["cutmix"]), prob=float(a["mixup_prob"]),
                 switch_prob=float(a["mixup_switch_prob"]), mode=a["mixup_mode"], label_smoothing=float(a["smoothing"]),
                 num_classes=num_classes)


def interleaved_by_class(labels: list[int]) -> list[int]:
    """Indices ordered round-robin over classes (1st of each class, then 2nd of each, ...), so every prefix is
    class-balanced; the full set is unchanged."""
    seen: dict[int, int] = {}
    rank_in_class = []
    for label in labels:
        rank_in_class.append(seen.get(label, 0))
        seen[label] = rank_in_class[-1] + 1
    return sorted(range(len(labels)), key=lambda i: (rank_in_class[i], labels[i]))


def _eval_loader(items: list, data_cfg: dict, batch: int, workers: int, pin: bool, rank: int, world_size: int):
    """Each process evaluates a disjoint shard (no padding duplicates; counts are summed across processes). The order
    interleaves the classes, so a capped evaluation (max_val_batches) sees every class, not the first few."""
    order = interleaved_by_class([label for _, label in items])
    shard = Subset(ImageFiles(items, eval_transform(data_cfg)), order[rank::world_size])
    return DataLoader(shard, batch_size=batch, shuffle=False, num_workers=workers, pin_memory=pin)


def build_data(cfg: dict, data_path, data_cfg: dict, rank: int = 0, world_size: int = 1) -> DataBundle:
    """Loaders over ``<data>/train`` and ``<data>/val``; the train sampler is reseeded per epoch via set_epoch.

    With ``data.holdout = N > 0`` the validation split is N class-balanced images held out of ``train`` (they are not
    trained on) and ``<data>/<data.test_split>`` becomes the test split, evaluated once after the last epoch.
    """
    data_settings = cfg["data"]
    train_items, classes, _ = labelled_split(data_path, "train")
    holdout = int(data_settings["holdout"] or 0)
    other_split = data_settings["test_split"] if holdout else "val"
    other_items, other_classes, _ = labelled_split(data_path, other_split)
    if other_classes != classes:
        raise UserError(f"data {data_path}: train and {other_split} class folders differ ({len(classes)} vs "
                        f"{len(other_classes)})")
    if holdout:
        train_items, val_items = holdout_split(train_items, holdout, int(data_settings["holdout_seed"]))
    else:
        val_items = other_items
    try:
        batch = int(data_settings["batch_size"])
        workers = int(data_settings["num_workers"])
    except (TypeError, ValueError):
        raise UserError("data.batch_size and data.num_workers must be integers") from None
    if batch < 1 or workers < 0:
        raise UserError(f"data.batch_size must be ≥ 1 and data.num_workers ≥ 0, got {batch} and {workers}")
    eval_batch = int(data_settings["eval_batch_size"] or 2 * batch)
    train_set = ImageFiles(train_items, train_transform(cfg, data_cfg))
    if data_settings["repeated_aug"]:
        sampler = RepeatAugSampler(train_set, num_replicas=world_size, rank=rank, shuffle=True,
                                   num_repeats=int(data_settings["num_repeats"]))
    else:
        sampler = DistributedSampler(train_set, num_replicas=world_size, rank=rank, shuffle=True,
                                     seed=int(cfg["seed"]), drop_last=False)
    if len(sampler) < batch:
        raise UserError(f"data {data_path}: {len(sampler)} training images per process is fewer than one batch "
                        f"(data.batch_size={batch})")
    pin = bool(data_settings["pin_memory"])
    train_loader = DataLoader(train_set, batch_size=batch, sampler=sampler, num_workers=workers, pin_memory=pin,
                              drop_last=True)
    val_loader = _eval_loader(val_items, data_cfg, eval_batch, workers, pin, rank, world_size)
    test_loader = _eval_loader(other_items, data_cfg, eval_batch, workers, pin, rank, world_size) if holdout else None
    return DataBundle(train_loader, val_loader, sampler, classes, data_cfg, len(train_set), len(val_items),
                      make_mixup(cfg, len(classes)), test_loader, len(other_items) if holdout else 0,
                      val_items)
