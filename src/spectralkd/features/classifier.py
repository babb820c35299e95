"""A classifier and its preprocessing from a checkpoint and its model card (shared by ``spectralkd eval`` and
``spectralkd robustness``)."""
from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from spectralkd.data.transforms import data_config
from spectralkd.errors import UserError
from spectralkd.features.models import create_model, parse_model_kwargs
from spectralkd.runtime.checkpoint import load_weights


def classifier_from_checkpoint(checkpoint: str | Path, num_classes: int, model_name: str | None = None,
                               model_kwargs: str | dict | None = None, input_size: int | None = None,
                               overrides: dict | None = None, data_label: str = "the data",
                               classes: list[str] | None = None, ignore_class_names: bool = False
                               ) -> tuple[nn.Module, dict, str]:
    """``(model, data config, model name)`` for weights at ``checkpoint`` (on CPU, eval mode).

    Model name and kwargs come from the arguments, else the model card beside a ``.safetensors`` file (a checkpoint
    without a card needs ``model_name``). Preprocessing: ``overrides`` (mean, std, interpolation, crop_pct), else
    the card's ``data`` entry, else timm's config at the size the model was built for. ``num_classes`` is the
    data's class count; a model predicting another count is a UserError naming ``data_label``. With the data's
    ``classes``, a card listing other class names is refused too, unless ``ignore_class_names``.
    """
    checkpoint = Path(checkpoint)
    card: dict = {}
    if checkpoint.suffix == ".safetensors":
        _, card = load_weights(checkpoint)
    model_name = model_name or card.get("model")
    if not model_name:
        raise UserError(f"checkpoint {checkpoint} has no model card naming the model; pass --model NAME")
    kwargs = parse_model_kwargs(model_kwargs) if model_kwargs else dict(card.get("model_kwargs") or {})
    card_data = card.get("data") or {}
    trained = card_data.get("classes")
    if classes is not None and trained is not None and list(trained) != list(classes) and not ignore_class_names:
        diff = next((i for i, (a, b) in enumerate(zip(trained, classes)) if a != b), min(len(trained), len(classes)))
        first = (f"class {diff} is '{trained[diff] if diff < len(trained) else '-'}' in the model card but "
                 f"'{classes[diff] if diff < len(classes) else '-'}' in the data")
        raise UserError(f"checkpoint {checkpoint} was trained on {len(trained)} classes, {data_label} has "
                        f"{len(classes)} with other names ({first}); pass --ignore-class-names if they correspond "
                        "in this order")
    if "num_classes" not in kwargs:
        kwargs["num_classes"] = int(num_classes)
    model = create_model(model_name, checkpoint=checkpoint, model_kwargs=kwargs)
    if getattr(model, "num_classes", num_classes) != num_classes:
        raise UserError(f"model predicts {model.num_classes} classes but {data_label} has {num_classes}")
    pre = {k: (overrides or {}).get(k) or card_data.get(k) for k in ("mean", "std", "interpolation", "crop_pct")}
    dcfg = data_config(model, input_size=input_size or card_data.get("input_size"), **pre)
    return model.eval(), dcfg, model_name
