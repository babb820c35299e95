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

    from spectralkd.data import ImageFiles, data_config, default_data, eval_transform, labelled_split
    from spectralkd.runtime.checkpoint import load_weights
    from spectralkd.runtime.device import pick_device
    from spectralkd.errors import UserError
    from spectralkd.features import create_model, parse_model_kwargs

    checkpoint = Path(checkpoint)
    card: dict = {}
    if checkpoint.suffix == ".safetensors":
        _, card = load_weights(checkpoint)
    model_name = model_name or card.get("model")
    if not model_name:
        raise UserError(f"checkpoint {checkpoint} has no model card naming the model; pass --model NAME")
    kwargs = parse_model_kwargs(model_kwargs) if model_kwargs else dict(card.get("model_kwargs") or {})
    card_data = card.get("data") or {}
    data = data or default_data()
    items, classes, folder = labelled_split(data, split)
    trained = card_data.get("classes")
    if trained is not None and list(trained) != list(classes) and not ignore_class_names:
        diff = next((i for i, (a, b) in enumerate(zip(trained, classes)) if a != b), min(len(trained), len(classes)))
        first = (f"class {diff} is '{trained[diff] if diff < len(trained) else '-'}' in the model card but "
                 f"'{classes[diff] if diff < len(classes) else '-'}' in the data")
        raise UserError(f"checkpoint {checkpoint} was trained on {len(trained)} classes, {folder} has {len(classes)} "
                        f"with other names ({first}); pass --ignore-class-names if they correspond in this order")
    if "num_classes" not in kwargs:
        kwargs["num_classes"] = len(classes)
    model = create_model(model_name, checkpoint=checkpoint, model_kwargs=kwargs)
    if getattr(model, "num_classes", len(classes)) != len(classes):
        raise UserError(f"model predicts {model.num_classes} classes but {folder} has {len(classes)}")
    # Preprocessing: the flags, else the model card, else timm's config at the size the model was built for.
    pre = {k: (overrides or {}).get(k) or card_data.get(k) for k in ("mean", "std", "interpolation", "crop_pct")}
    data_cfg = data_config(model, input_size=input_size or card_data.get("input_size"), **pre)
    dev = pick_device(device)
    model.to(dev)
    loader = DataLoader(ImageFiles(items, eval_transform(data_cfg)), batch_size=batch_size, num_workers=num_workers)
    result = evaluate(model, loader, dev, precision, progress=progress)
    result.update({"model": model_name, "checkpoint": str(checkpoint), "data": str(folder)})
    return result
