"""MDBN super-resolution: model, MATLAB bicubic, Y-channel metrics, SR data, tiled/tuned inference, training,
branch analysis and spectral distillation. See docs/sr.md."""
from spectralkd.sr.loading import load_mdbn, load_sr_model
from spectralkd.sr.mdbn import MDBN, receptive_radius
from spectralkd.sr.tiling import upscale

__all__ = ["MDBN", "load_mdbn", "load_sr_model", "receptive_radius", "upscale"]
