"""Checkpoints and weights with model cards; loading never runs pickled code.

Training state is written with ``torch.save`` through :mod:`spectralkd.runtime.io` (atomic) and read with
``torch.load(weights_only=True)``; weights are safetensors with a JSON model card beside them (and embedded).
"""
from __future__ import annotations

import json
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
    """Load a ``torch.save`` file without executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt, truncated, or holds objects outside the safe allow-list
        reason = one_line(exc, 200)
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


def embedded_card(path: str | Path) -> dict | None:
    """The model card stored inside a safetensors file (``None`` when it has none or it is unreadable)."""
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
    try:
        card = json.loads(meta["card"]) if "card" in meta else None
    except json.JSONDecodeError:
        return None
    return card if isinstance(card, dict) else None


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
        card = embedded_card(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"weights file {path} is not a readable safetensors file: {one_line(exc, 200)}") from None
    side = card_path(path)
    if card is None and side.is_file():
        try:
            card = json.loads(side.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"model card {side} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    return state, card or {}


def sync_card_sidecar(path: str | Path) -> bool:
    """Rewrite ``<path>.json`` from the card embedded in ``path`` when the two differ (a kill between the two
    atomic writes of :func:`save_weights` leaves the sidecar one step behind); True when it was rewritten."""
    path = Path(path)
    try:
        card = embedded_card(path)
    except (SafetensorError, OSError, ValueError):
        return False
    if card is None:
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
