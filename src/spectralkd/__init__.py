"""spectralkd: spectral analysis and spectral knowledge distillation of vision models, and MDBN super-resolution.

The public API (docs/api.md) is importable from here; names load on first use, so ``spectralkd --help`` and
``import spectralkd`` stay fast (no torch import until a name needs it).
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name → module that defines it
_API = {
    "SpectralKD": "spectralkd.distill.task",
    "SpectralKDLoss": "spectralkd.distill.losses",
    "spectral_alignment_loss": "spectralkd.distill.losses",
    "feature_alignment_loss": "spectralkd.distill.losses",
    "logit_kd_loss": "spectralkd.distill.losses",
    "MapsAndLogits": "spectralkd.features.maps",
    "block_maps": "spectralkd.features.maps",
    "module_maps": "spectralkd.features.maps",
    "analyze_to_dir": "spectralkd.analysis.pipeline",
    "train_classifier": "spectralkd.distill.trainer",
    "train_sr": "spectralkd.sr.trainer",
    "UserError": "spectralkd.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'spectralkd' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
