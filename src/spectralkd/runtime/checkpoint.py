"""Checkpoints and weights with model cards; loading never runs pickled code.

Training state is written with ``torch.save`` through :mod:`spectralkd.runtime.io` (atomic) and read with
``torch.load(weights_only=True)``; weights are safetensors with a JSON model card beside them (and embedded).
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save as st_save

from spectralkd.errors import UserError, one_line
from spectralkd.runtime.io import atomic_write, atomic_write_bytes, atomic_write_text


def atomic_torch_save(obj, path: str | Path) -> None:
    """``torch.save`` to a temp file, then rename. ``obj`` should hold only tensors, containers and primitives
    so that :func:`load_torch_state` can read it with ``weights_only=True``."""
    atomic_write(Path(path), lambda h: torch.save(obj, h))


def load_torch_state(path: str | Path, map_location="cpu"):
    """Load a ``torch.save`` file without executing pickled code.

    A file that holds Python objects beyond tensors, containers and plain values is refused with a message of our
    own (torch's text would suggest turning the protection off, which we never want to advise).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc) or "can still be loaded" in str(exc):
            raise UserError(f"checkpoint {path} was refused: it holds pickled Python objects (not only tensors and "
                            "plain values), which could run code when loaded; spectralkd loads only weights-only "
                            "files (safetensors, or torch.save of tensors, dicts, lists and numbers)") from None
        raise UserError(f"checkpoint {path} is corrupt or not a PyTorch file") from None
    except Exception as exc:  # corrupt, truncated, not a torch file
        reason = one_line(exc, 200)
        raise UserError(f"checkpoint {path} is corrupt or not a PyTorch file: {reason}") from None


def load_training_state(path: str | Path, schema: dict[str, type | tuple[type, ...]], map_location="cpu") -> dict:
    """A training state (``last.pt``) whose keys have the types in ``schema``, else one line naming the key.

    ``int`` in the schema means a real integer (not text, not a bool, not a float); ``dict`` a mapping.
    """
    path = Path(path)
    state = load_torch_state(path, map_location=map_location)
    if not isinstance(state, dict):
        raise UserError(f"checkpoint {path} is not a spectralkd training state (holds a {type(state).__name__}, "
                        "not a dict)")
    for key, kind in schema.items():
        if key not in state:
            raise UserError(f"checkpoint {path} is not a spectralkd training state (no '{key}')")
        value = state[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            if int in kinds and isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
                continue
            names = " or ".join(k.__name__ for k in kinds)
            raise UserError(f"checkpoint {path}: '{key}' is {type(value).__name__} {str(value)[:40]!r}, "
                            f"expected {names}; the file is damaged or not from spectralkd")
        if int in kinds and isinstance(value, int) and not isinstance(value, bool) and value < 0:
            raise UserError(f"checkpoint {path}: '{key}' is {value}, expected a number >= 0")
    return state


def _plain_tensors(state_dict: dict) -> dict:
    # safetensors refuses shared storage and non-contiguous tensors: store independent contiguous copies.
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items() if isinstance(v, torch.Tensor)}


def save_weights(path: str | Path, state_dict: dict, card: dict | None = None) -> None:
    """Weights as safetensors (atomic) plus the model card as ``<path>.json`` (atomic).

    The card is also stored, as JSON text, in the safetensors metadata under ``"card"``.
    """
    path = Path(path)
    card = card or {}
    text = json.dumps(card, indent=2, sort_keys=False, default=str)
    atomic_write_bytes(path, st_save(_plain_tensors(state_dict), metadata={"card": json.dumps(card, default=str)}))
    atomic_write_text(card_path(path), text + "\n")


def card_path(weights_path: str | Path) -> Path:
    weights_path = Path(weights_path)
    return weights_path.with_name(weights_path.name + ".json")


def embedded_card(path: str | Path):
    """The model card stored inside a safetensors file, as parsed JSON (``None`` when it has none or it is not
    JSON; :func:`check_card` checks its shape)."""
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
    try:
        return json.loads(meta["card"]) if "card" in meta else None
    except json.JSONDecodeError:
        return None


def load_weights(path: str | Path) -> tuple[dict, dict]:
    """(state_dict, card) from a safetensors file.

    The card embedded in the file is the one trusted: it was written atomically together with the weights, so it
    always describes them. The sidecar ``<path>.json`` (a readable copy) is read only for files without an embedded
    card, e.g. weights written by other tools with a card beside them.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file {path} does not exist")
    try:
        state = load_file(str(path))
        card, where = embedded_card(path), f"{path} (embedded card)"
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"weights file {path} is not a readable safetensors file: {one_line(exc, 200)}") from None
    side = card_path(path)
    if card is None and side.is_file():
        try:
            card = json.loads(side.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"model card {side} is not valid JSON: {one_line(exc, 120)}") from None
        where = side
    if card is None:
        return state, {}
    return state, check_card(card, where)


def sync_card_sidecar(path: str | Path) -> bool:
    """Rewrite ``<path>.json`` from the card embedded in ``path`` when the two differ (a kill between the two
    atomic writes of :func:`save_weights` leaves the sidecar one step behind); True when it was rewritten."""
    path = Path(path)
    try:
        card = embedded_card(path)
    except (SafetensorError, OSError, ValueError):
        return False
    if not isinstance(card, dict):
        return False
    side = card_path(path)
    try:
        current = json.loads(side.read_text()) if side.is_file() else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        current = None
    if current == card:
        return False
    atomic_write_text(side, json.dumps(card, indent=2, sort_keys=False, default=str) + "\n")
    return True


# Model-card keys and the JSON types they must have when present (None is allowed for each).
CARD_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,), "model_kwargs": (dict,), "weights": (str,), "top1": (int, float), "top5": (int, float),
    "epoch": (int,), "seed": (int,), "command": (str, list), "data": (dict,), "config": (dict, str), "pairs": (dict,),
}


def check_card(card, where) -> dict:
    """``card`` if it is a JSON object whose known keys have the right types; else one line naming the key."""
    if not isinstance(card, dict):
        raise UserError(f"model card {where} is a JSON {type(card).__name__}, expected an object "
                        "like {\"model\": ..., \"data\": {...}}")
    for key, kinds in CARD_TYPES.items():
        value = card.get(key)
        if value is None:
            continue
        if not isinstance(value, kinds) or isinstance(value, bool):
            names = " or ".join({"str": "text", "dict": "object", "list": "list", "int": "integer",
                                 "float": "number"}[k.__name__] for k in kinds)
            raise UserError(f"model card {where}: '{key}' is {json.dumps(value)[:40]}, expected {names}")
    classes = (card.get("data") or {}).get("classes")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise UserError(f"model card {where}: 'data.classes' is {json.dumps(classes)[:40]}, expected a list of names")
    return card
