"""Spectral measures of feature maps: pure tensor functions (no models), CPU/GPU, float32/float64.

* :mod:`.channel` — SpectralKD's channel spectrum and frequency intensity L(X)
* :mod:`.entropy` — channel entropy on a global histogram grid
* :mod:`.stats` — RMS and SVD energy rank (channel-order independent)
* :mod:`.spatial` — radially averaged 2-D power spectrum, high-frequency ratio
* :mod:`.similarity` — comparing per-layer curves of models of different depth
* :mod:`.running` — streaming accumulation over many batches
* :mod:`.bootstrap` — percentile-bootstrap intervals over images of the per-layer measures
* :mod:`.resample` — ideal (Fourier) downsampling of maps, in the rfft2 domain
"""
from spectralkd.spectral.channel import channel_spectrum, frequency_intensity
from spectralkd.spectral.resample import fourier_resample, fourier_resample_spectrum
from spectralkd.spectral.entropy import channel_entropy, histogram_edges, value_range
from spectralkd.spectral.running import LayerMeasures, RunningMeasures, measure_all
from spectralkd.spectral.similarity import curve_correlation, mean_layer_distance, resample_curve
from spectralkd.spectral.spatial import high_frequency_ratio, radial_power_spectrum
from spectralkd.spectral.stats import energy_ranks, rms, svd_rank

__all__ = [
    "channel_spectrum", "frequency_intensity", "channel_entropy", "histogram_edges", "value_range",
    "LayerMeasures", "RunningMeasures", "measure_all", "curve_correlation", "mean_layer_distance",
    "resample_curve", "fourier_resample", "fourier_resample_spectrum", "high_frequency_ratio",
    "radial_power_spectrum", "energy_ranks", "rms", "svd_rank",
]
