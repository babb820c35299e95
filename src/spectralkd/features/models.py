"""Create timm models by name, from the hub (``pretrained=True``) or from a local checkpoint file."""
from __future__ import annotations

import json
import re
from pathlib import Path

import timm
import torch
import torch.nn as nn

from spectralkd.errors import UserError, one_line
from spectralkd.runtime.checkpoint import load_weights
from spectralkd.runtime.checkpoint import load_torch_state

# Wrappers that training scripts put around the weights, EMA first; the first present one is taken.
STATE_KEYS = ("state_dict_ema", "model_ema", "params_ema", "ema", "state_dict", "model", "params", "module")
_PREFIXES = re.compile(r"^(module\.|_orig_mod\.)+")


def parse_model_kwargs(text: str | dict | None) -> dict:
    """``--model-kwargs`` JSON object → dict."""
    if text is None or text == "":
        return {}
    if isinstance(text, dict):
        return dict(text)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"--model-kwargs is not valid JSON ({exc.msg} at column {exc.colno}): {text}") from None
    if not isinstance(value, dict):
        raise UserError(f"--model-kwargs must be a JSON object like '{{\"depth\": 6}}', got: {text}")
    return value


def load_state_dict_file(path: str | Path, prefer_ema: bool = True) -> dict:
    """A state dict from safetensors or a ``.pth``/``.pt`` (read with ``weights_only=True``).

    Unwraps the usual containers (``state_dict_ema``/``params_ema``/``state_dict``/``model``/``params``, the first
    of ``STATE_KEYS`` present; EMA weights first unless ``prefer_ema=False``) and the ``module.``/``_orig_mod.`` prefixes
    left by DDP and ``torch.compile``.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":

        state, _ = load_weights(path)
    else:

        state = load_torch_state(path)
        if isinstance(state, dict):
            order = STATE_KEYS if prefer_ema else tuple(k for k in STATE_KEYS if "ema" not in k) + STATE_KEYS
            for key in order:
                if key in state and isinstance(state[key], dict):
                    state = state[key]
                    break
    tensors = {_PREFIXES.sub("", k): v for k, v in state.items() if isinstance(v, torch.Tensor)} \
        if isinstance(state, dict) else {}
    if not tensors:
        raise UserError(f"checkpoint {path} does not hold a state dict of tensors "
                        f"(looked inside {', '.join(STATE_KEYS)})")
    return tensors


def load_into(model: nn.Module, state: dict, source: str, strict: bool = True) -> None:
    """Load ``state`` into ``model``; missing/unexpected keys or shape mismatches → one clear line."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in own
             if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if wrong:
        raise UserError(f"checkpoint {source} does not fit the model: {len(wrong)} shape mismatch(es), e.g. {wrong[0]}")
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) (e.g. {', '.join(unexpected[:3])})")
        raise UserError(f"checkpoint {source} does not match the model: {'; '.join(parts)}")
    model.load_state_dict(state, strict=strict)


def create_model(name: str, pretrained: bool = False, checkpoint: str | Path | None = None,
                 model_kwargs: dict | str | None = None, strict: bool = True) -> nn.Module:
    """``timm.create_model(name, pretrained=..., **kwargs)``, then the local ``checkpoint`` when given."""
    kwargs = parse_model_kwargs(model_kwargs)
    if not timm.is_model(name.split(".")[0]):
        close = timm.list_models(f"*{name.split('.')[0].split('_')[0]}*")[:6]
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise UserError(f"unknown model '{name}' (not a timm model name){hint}")
    try:
        model = timm.create_model(name, pretrained=pretrained, **kwargs)
    except TypeError as exc:
        raise UserError(f"model '{name}' does not accept these --model-kwargs {kwargs}: {exc}") from None
    except (RuntimeError, OSError, ValueError) as exc:
        if pretrained:
            raise UserError(f"cannot fetch pretrained weights for '{name}' ({one_line(exc, 160)}); "
                            "without network access pass --checkpoint FILE") from None
        raise UserError(f"cannot create model '{name}' with {kwargs}: {one_line(exc, 200)}") from None
    if checkpoint is not None:
        load_into(model, load_state_dict_file(checkpoint), str(checkpoint), strict=strict)
    return model
