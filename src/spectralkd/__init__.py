"""spectralkd: spectral analysis and spectral knowledge distillation of vision models, and MDBN super-resolution."""

__version__ = "0.1.0"
