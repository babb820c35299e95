"""Atomic checkpoint files and safe loading.

Every write goes to a temporary file in the same folder, is flushed and fsync'd, then renamed over the target,
so a crash leaves either the old file or the new one, never a torn one. Loading never runs pickled code:
training state uses ``torch.load(weights_only=True)``; weights are safetensors with a JSON model card beside them.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save as st_save

from spectralkd.errors import UserError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the mode open() would
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    _atomic_write(Path(path), lambda h: h.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj, path: str | Path) -> None:
    """``torch.save`` to a temp file, then rename. ``obj`` should hold only tensors, containers and primitives
    so that :func:`load_torch_state` can read it with ``weights_only=True``."""
    _atomic_write(Path(path), lambda h: torch.save(obj, h))


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
