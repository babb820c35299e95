"""MDBN super-resolution: model, MATLAB bicubic, Y-channel metrics, SR data, tiled/tuned inference, training,
branch analysis and spectral distillation. See docs/sr.md. Names load on first use (``spectralkd --help`` stays
fast)."""
from __future__ import annotations

import importlib

_API = {"MDBN": "spectralkd.sr.mdbn", "receptive_radius": "spectralkd.sr.mdbn", "load_mdbn": "spectralkd.sr.loading",
        "load_sr_model": "spectralkd.sr.loading", "upscale": "spectralkd.sr.tiling"}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'spectralkd.sr' has no attribute {name!r}")
