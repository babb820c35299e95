"""Top-1/top-5 accuracy over a loader (summed across processes), and `spectralkd eval` on a checkpoint."""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn as nn
from tqdm import tqdm

from spectralkd.runtime.precision import autocast_ctx
from spectralkd.runtime.distributed import all_reduce_sum


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device, precision: str = "fp32", max_batches: int | None = None,
             progress: bool = False, desc: str = "eval") -> dict:
    """``{"top1", "top5", "loss", "images"}`` (percentages; loss is plain CE) over every process's shard."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64)  # correct@1, correct@5, loss sum, count
    total = len(loader) if max_batches is None else min(len(loader), int(max_batches))
    try:
        for i, (images, labels) in enumerate(tqdm(loader, total=total, desc=desc, leave=False, disable=not progress,
                                                  file=sys.stderr, mininterval=1.0)):
            if max_batches is not None and i >= int(max_batches):
                break
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            with autocast_ctx(device, precision):
                logits = model(images)
            logits = logits.float()
            k = min(5, logits.shape[1])
            top = logits.topk(k, dim=1).indices
            hit = top.eq(labels[:, None])
            sums[0] += hit[:, :1].any(dim=1).sum().item()
            sums[1] += hit.any(dim=1).sum().item()
            sums[2] += torch.nn.functional.cross_entropy(logits, labels, reduction="sum").item()
            sums[3] += labels.numel()
    finally:
        model.train(was_training)
    all_reduce_sum(sums)
    n = max(sums[3].item(), 1.0)
    return {"top1": 100.0 * sums[0].item() / n, "top5": 100.0 * sums[1].item() / n, "loss": sums[2].item() / n,
            "images": int(sums[3].item())}


def evaluate_checkpoint(checkpoint: str | Path, data: str | Path | None, model_name: str | None = None,
                        model_kwargs: str | dict | None = None, batch_size: int = 256, num_workers: int = 2,
                        input_size: int | None = None, device: str = "auto", precision: str = "fp32",
                        split: str = "val", progress: bool = True, overrides: dict | None = None,
                        ignore_class_names: bool = False) -> dict:
    """Accuracy of weights on ``<data>/<split>``; model name, kwargs and preprocessing default to the model card."""
    from torch.utils.data import DataLoader

    from spectralkd.data import ImageFiles, default_data, eval_transform, labelled_split
    from spectralkd.features.classifier import classifier_from_checkpoint
    from spectralkd.runtime.device import pick_device

    data = data or default_data()
    items, classes, folder = labelled_split(data, split)
    model, data_cfg, model_name = classifier_from_checkpoint(
        checkpoint, len(classes), model_name, model_kwargs, input_size, overrides, data_label=str(folder),
        classes=classes, ignore_class_names=ignore_class_names)
    dev = pick_device(device)
    model.to(dev)
    loader = DataLoader(ImageFiles(items, eval_transform(data_cfg)), batch_size=batch_size, num_workers=num_workers)
    result = evaluate(model, loader, dev, precision, progress=progress)
    result.update({"model": model_name, "checkpoint": str(checkpoint), "data": str(folder)})
    return result
