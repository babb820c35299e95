"""Checkpoints and weights with model cards; loading never runs pickled code.

Training state is written with ``torch.save`` through :mod:`spectralkd.runtime.io` (atomic) and read with
``torch.load(weights_only=True)``; weights are safetensors with a JSON model card beside them (and embedded).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save as st_save

from spectralkd.errors import UserError
from spectralkd.runtime.io import atomic_write, atomic_write_bytes, atomic_write_text


def atomic_torch_save(obj, path: str | Path) -> None:
    """``torch.save`` to a temp file, then rename. ``obj`` should hold only tensors, containers and primitives
    so that :func:`load_torch_state` can read it with ``weights_only=True``."""
    atomic_write(Path(path), lambda h: torch.save(obj, h))


def load_torch_state(path: str | Path, map_location="cpu"):
    """Load a ``torch.save`` file without executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt, truncated, or holds objects outside the safe allow-list
        reason = " ".join(str(exc).split())[:200]
        raise UserError(f"checkpoint {path} cannot be loaded safely (corrupt or not a weights-only file): {reason}") from None


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


def load_weights(path: str | Path) -> tuple[dict, dict]:
    """(state_dict, card) from a safetensors file; the card from ``<path>.json`` or the file's metadata."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file {path} does not exist")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"weights file {path} is not a readable safetensors file: {' '.join(str(exc).split())[:200]}") from None
    card: dict = {}
    side = card_path(path)
    if side.is_file():
        try:
            card = json.loads(side.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"model card {side} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    else:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        if "card" in meta:
            try:
                card = json.loads(meta["card"])
            except json.JSONDecodeError:
                card = {}
    return state, card
