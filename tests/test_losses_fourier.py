"""Spatial alignment of layer pairs with different H×W: ideal Fourier resampling checked against
scipy.signal.resample, the Nyquist convention by hand, zero loss for band-limited copies, gradients, errors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spectralkd.config.classifier import defaults
from spectralkd.distill.losses import SpectralKDLoss, feature_alignment_loss, spectral_alignment_loss
from spectralkd.errors import UserError
from spectralkd.spectral import fourier_resample

signal = pytest.importorskip("scipy.signal")


def _resample(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Independent ideal resampling: scipy's FFT resampling along H, then along W."""
    return signal.resample(signal.resample(x, h, axis=-2), w, axis=-1)


def _pool(x: np.ndarray, c: int) -> np.ndarray:
    return x.reshape(x.shape[0], c, x.shape[1] // c, *x.shape[2:]).mean(axis=2)


def _np_loss(s: np.ndarray, t: np.ndarray, kind: str = "spectral") -> float:
    """The published per-pair losses written with numpy on equal-size maps (channels pooled to the narrower)."""
    c = min(s.shape[1], t.shape[1])
    s, t = _pool(s, c), _pool(t, c)
    if kind == "feature_mse":
        return float(((s - t) ** 2).mean())
    fs, ft = np.fft.rfft2(s, norm="ortho"), np.fft.rfft2(t, norm="ortho")
    if kind == "magnitude":
        return float(((np.abs(fs) - np.abs(ft)) ** 2).mean())
    d = fs - ft
    return float((np.stack([d.real, d.imag], -1) ** 2).mean())


SIZES = [  # (student H×W, teacher H×W): odd and even, student larger and teacher larger, axes independent
    ((8, 8), (4, 4)), ((4, 4), (8, 8)), ((9, 7), (5, 3)), ((5, 3), (9, 7)), ((14, 14), (7, 7)),
    ((7, 7), (14, 14)), ((8, 6), (6, 8)), ((6, 9), (10, 4)), ((4, 4), (7, 7)), ((16, 16), (2, 2)),
]


@pytest.mark.parametrize("size_in, size_out", [((8, 8), (4, 4)), ((9, 7), (5, 3)), ((8, 6), (3, 4)), ((7, 9), (6, 2)),
                                               ((14, 14), (7, 7)), ((6, 6), (1, 1)), ((6, 5), (2, 5))])
def test_fourier_resample_matches_scipy(size_in, size_out):
    x = np.random.default_rng(0).standard_normal((2, 3, *size_in))
    got = fourier_resample(torch.from_numpy(x), size_out).numpy()
    assert got.shape == (2, 3, *size_out)
    np.testing.assert_allclose(got, _resample(x, *size_out), atol=1e-12)


def test_nyquist_convention_samples_the_band_limited_signal():
    """8 → 4 samples: a cosine at the small grid's Nyquist frequency (2 cycles per 8 px) keeps its full amplitude
    (both ±2 coefficients fold into the Nyquist bin), a sine there samples to zero, as sampling cos/sin at every
    other pixel gives; 3 cycles (above the band) is removed and 1 cycle passes unchanged."""
    n = torch.arange(8, dtype=torch.float64)
    row = lambda v: v.view(1, 1, 1, 8).expand(1, 1, 1, 8).repeat(1, 1, 8, 1)  # noqa: E731  constant along H
    cos2, sin2 = row(torch.cos(2 * torch.pi * 2 * n / 8)), row(torch.sin(2 * torch.pi * 2 * n / 8))
    cos3, cos1 = row(torch.cos(2 * torch.pi * 3 * n / 8 + 0.3)), row(torch.cos(2 * torch.pi * n / 8 + 0.3))
    m = torch.arange(4, dtype=torch.float64)
    alternating = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    assert torch.allclose(fourier_resample(cos2, (8, 4))[0, 0, 0], alternating)
    assert fourier_resample(sin2, (8, 4)).abs().max() < 1e-12
    assert fourier_resample(cos3, (8, 4)).abs().max() < 1e-12
    assert torch.allclose(fourier_resample(cos1, (8, 4))[0, 0, 0], torch.cos(2 * torch.pi * m / 4 + 0.3))
    # the same along H (the full, not the half, FFT axis), with a phase: cos(π m + φ) → cos φ · (−1)^m
    colv = torch.cos(2 * torch.pi * 2 * n / 8 + 0.7).view(1, 1, 8, 1).repeat(1, 1, 1, 6)
    want = (np.cos(0.7) * (-1.0) ** m).view(4, 1).expand(4, 6)
    assert torch.allclose(fourier_resample(colv, (4, 6))[0, 0], want)


@pytest.mark.parametrize("s_size, t_size", SIZES)
def test_fourier_loss_equals_published_loss_on_ideally_resampled_maps(s_size, t_size):
    g = np.random.default_rng(1)
    s, t = g.standard_normal((3, 8, *s_size)), g.standard_normal((3, 4, *t_size))  # student pooled 8 → 4 channels
    h, w = min(s_size[0], t_size[0]), min(s_size[1], t_size[1])
    rs, rt = _resample(s, h, w), _resample(t, h, w)
    for kind in ("spectral", "magnitude", "feature_mse"):
        got = feature_alignment_loss([torch.from_numpy(s).float()], [torch.from_numpy(t).float()], kind,
                                     spatial="fourier").item()
        assert got == pytest.approx(_np_loss(rs, rt, kind), rel=1e-4), kind
    assert spectral_alignment_loss([torch.from_numpy(s).float()], [torch.from_numpy(t).float()], "fourier").item() \
        == pytest.approx(_np_loss(rs, rt), rel=1e-4)


def test_band_loss_uses_the_common_grid_and_equal_sizes_are_unchanged():
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 4, 4, generator=g)
    small = fourier_resample(s, (4, 4))
    for emphasis in ("low", "high"):
        got = feature_alignment_loss([s], [t], "band", emphasis, 3.0, spatial="fourier").item()
        assert got == pytest.approx(feature_alignment_loss([small], [t], "band", emphasis, 3.0).item(), rel=1e-5)
    same = torch.randn(2, 4, 4, 4, generator=g)
    for kind in ("spectral", "feature_mse", "magnitude", "band"):
        for spatial in ("fourier", "interpolate"):  # equal H×W: exactly the strict (published) numbers
            assert feature_alignment_loss([same], [t], kind, spatial=spatial).item() == \
                feature_alignment_loss([same], [t], kind).item()


@pytest.mark.parametrize("small, factor", [((4, 4), 2), ((5, 3), 3), ((7, 6), 2)])
def test_band_limited_copy_at_higher_resolution_costs_zero(small, factor):
    g = np.random.default_rng(3)
    t = g.standard_normal((2, 6, *small))
    big = (small[0] * factor, small[1] * factor)
    copy = _resample(t, *big)  # band-limited: scipy's ideal upsampling
    t_, copy_ = torch.from_numpy(t).float(), torch.from_numpy(copy).float()
    for kind in ("spectral", "magnitude", "band", "feature_mse"):
        assert feature_alignment_loss([copy_], [t_], kind, spatial="fourier").item() < 1e-10, kind  # student larger
        assert feature_alignment_loss([t_], [copy_], kind, spatial="fourier").item() < 1e-10, kind  # teacher larger
    # bilinear interpolation is not an ideal resampler: the same copy costs something there
    assert feature_alignment_loss([copy_], [t_], "spectral", spatial="interpolate").item() > 1e-3
    # content above the common band is invisible to the Fourier-aligned loss
    n = np.arange(big[1])
    above = np.cos(2 * np.pi * (small[1] // 2 + 1) * n / big[1])
    shifted = torch.from_numpy(copy + above).float()
    assert feature_alignment_loss([shifted], [t_], "spectral", spatial="fourier").item() < 1e-10


def test_interpolate_is_bilinear_resizing():
    """Halving with bilinear, align_corners=False averages 2×2 blocks: checked against numpy."""
    g = np.random.default_rng(4)
    s, t = g.standard_normal((2, 4, 8, 8)), g.standard_normal((2, 4, 4, 4))
    blocks = s.reshape(2, 4, 4, 2, 4, 2).mean(axis=(3, 5))
    got = spectral_alignment_loss([torch.from_numpy(s).float()], [torch.from_numpy(t).float()], "interpolate").item()
    assert got == pytest.approx(_np_loss(blocks, t), rel=1e-5)
    assert torch.allclose(F.interpolate(torch.from_numpy(s), size=(4, 4), mode="bilinear", align_corners=False),
                          torch.from_numpy(blocks))


@pytest.mark.parametrize("spatial", ["fourier", "interpolate"])
def test_gradients_reach_the_student_only_and_stay_in_the_common_band(spatial):
    g = torch.Generator().manual_seed(5)
    s = torch.randn(2, 8, 8, 8, generator=g, requires_grad=True)
    t = torch.randn(2, 4, 4, 4, generator=g, requires_grad=True)
    spectral_alignment_loss([s], [t], spatial).backward()
    assert t.grad is None
    assert s.grad is not None and s.grad.abs().sum() > 0
    if spatial == "fourier":  # the loss sees only frequencies |k| ≤ 2 of 8: the gradient has nothing above them
        spec = torch.fft.fft2(s.grad.double())
        k = torch.fft.fftfreq(8) * 8
        outside = (k.abs() > 2)[:, None] | (k.abs() > 2)[None, :]
        assert spec[..., outside].abs().max() < 1e-5 * spec.abs().max()


def test_teacher_larger_gradients():
    g = torch.Generator().manual_seed(6)
    s = torch.randn(2, 4, 5, 5, generator=g, requires_grad=True)
    t = torch.randn(2, 8, 10, 10, generator=g, requires_grad=True)
    crit = SpectralKDLoss(torch.nn.CrossEntropyLoss(), mode="fft", spatial="fourier")
    logits = torch.randn(2, 3, requires_grad=True)
    total, parts = crit(logits, torch.tensor([0, 1]), student_maps=[s], teacher_maps=[t])
    total.backward()
    assert parts["loss_fft"] > 0 and s.grad.abs().sum() > 0 and t.grad is None


def test_strict_default_refuses_different_sizes_in_one_line():
    s, t = torch.zeros(2, 4, 8, 8), torch.zeros(2, 8, 4, 4)
    with pytest.raises(UserError) as exc:
        spectral_alignment_loss([s], [t])
    msg = str(exc.value)
    assert "\n" not in msg and "(2, 4, 8, 8)" in msg and "(2, 8, 4, 4)" in msg and "spatial='fourier'" in msg
    with pytest.raises(UserError, match="spatial_align"):
        SpectralKDLoss(torch.nn.CrossEntropyLoss(), mode="fft")(torch.zeros(2, 3), torch.tensor([0, 1]),
                                                                student_maps=[s], teacher_maps=[t])
    with pytest.raises(UserError, match="alignment 'sinc' is not supported; allowed: strict, fourier, fourier_centered, interpolate"):
        SpectralKDLoss(torch.nn.CrossEntropyLoss(), spatial="sinc")
    with pytest.raises(UserError, match="smaller than 1×1"):
        spectral_alignment_loss([torch.zeros(2, 4, 8, 8)], [torch.zeros(2, 4, 0, 4)], "fourier")
    assert defaults()["distill"]["spatial_align"] == "strict"


def _cell_centre_samples(coef: dict, n: tuple[int, int]) -> np.ndarray:
    """A smooth periodic image f(u, v) = Σ a·cos(2π(ky·u + kx·v) + φ) on [0, 1)², sampled by hand at the centres
    ((i + ½)/H, (j + ½)/W) of an H×W grid of cells: what a patch token at that cell sees."""
    u = (np.arange(n[0]) + 0.5) / n[0]
    v = (np.arange(n[1]) + 0.5) / n[1]
    out = np.zeros(n)
    for (ky, kx), (a, phi) in coef.items():
        out += a * np.cos(2 * np.pi * (ky * u[:, None] + kx * v[None, :]) + phi)
    return out


def _smooth(small: tuple[int, int], seed: int = 0) -> dict:
    """Random frequencies strictly inside the small grid's band (|k| < n/2 per axis, no Nyquist)."""
    g = np.random.default_rng(seed)
    ky_max, kx_max = (small[0] - 1) // 2, (small[1] - 1) // 2
    return {(ky, kx): (g.uniform(0.5, 1.5), g.uniform(0, 2 * np.pi))
            for ky in range(-ky_max, ky_max + 1) for kx in range(0, kx_max + 1)}


@pytest.mark.parametrize("big, small", [((8, 8), (4, 4)), ((9, 9), (3, 3)), ((6, 8), (4, 3)), ((14, 7), (5, 7)),
                                        ((16, 16), (7, 7))])
def test_centered_resampling_lands_on_the_cell_centres(big, small):
    """Patch-token geometry: the same smooth image seen by a fine grid (teacher, patch 4) and a coarse one (student,
    patch 8). Sampled at cell centres, the coarse grid's values are exactly the fine map resampled with
    centered=True; the shared-origin convention is off by (N/n − 1)/2 fine pixels, so it misses them."""
    coef = _smooth(small)
    fine = torch.from_numpy(_cell_centre_samples(coef, big))[None, None]
    coarse = _cell_centre_samples(coef, small)
    got = fourier_resample(fine, small, centered=True)[0, 0].numpy()
    np.testing.assert_allclose(got, coarse, atol=1e-9)
    if big != small:
        assert np.abs(fourier_resample(fine, small)[0, 0].numpy() - coarse).max() > 1e-2
    # the same as scipy: shift the fine map by s = (N/n − 1)/2 pixels (Fourier shift theorem), then resample
    x = np.random.default_rng(1).standard_normal(big)
    k = [np.fft.fftfreq(b) for b in big]
    s = [(b / n - 1) / 2 for b, n in zip(big, small)]
    ramp = np.exp(2j * np.pi * (s[0] * k[0][:, None] + s[1] * k[1][None, :]))
    for axis, b in enumerate(big):  # the large grid's own Nyquist is dropped by either method; keep it real here
        if b % 2 == 0:
            idx = [slice(None)] * 2
            idx[axis] = b // 2
            ramp[tuple(idx)] = 1.0
    shifted = np.fft.ifft2(np.fft.fft2(x) * ramp).real
    want = _resample(shifted, *small)
    got = fourier_resample(torch.from_numpy(x), small, centered=True).numpy()
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_fourier_centered_loss_is_zero_for_the_same_image_at_two_patch_sizes():
    coef = _smooth((4, 4), seed=2)
    t = torch.from_numpy(np.stack([_cell_centre_samples(coef, (8, 8))] * 6)[None]).float()   # 1×6×8×8 teacher
    s = torch.from_numpy(np.stack([_cell_centre_samples(coef, (4, 4))] * 3)[None]).float()   # 1×3×4×4 student
    for kind in ("spectral", "magnitude", "band", "feature_mse"):
        assert feature_alignment_loss([s], [t], kind, spatial="fourier_centered").item() < 1e-10, kind
        assert feature_alignment_loss([t], [s], kind, spatial="fourier_centered").item() < 1e-10, kind
    # the shared-origin convention sees the coarse grid a quarter of a coarse cell away: a phase error, not zero
    assert spectral_alignment_loss([s], [t], spatial="fourier").item() > 1e-2
    # magnitudes do not see a shift
    assert feature_alignment_loss([s], [t], "magnitude", spatial="fourier").item() < 1e-10


@pytest.mark.parametrize("s_size, t_size", [((4, 4), (8, 8)), ((9, 7), (5, 3)), ((6, 9), (10, 4))])
def test_fourier_centered_loss_equals_published_loss_on_centre_resampled_maps(s_size, t_size):
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 4, *s_size, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(2, 8, *t_size, generator=g, dtype=torch.float64)
    size = (min(s_size[0], t_size[0]), min(s_size[1], t_size[1]))
    s_r, t_r = (fourier_resample(x, size, centered=True).numpy(force=True) for x in (s, t))
    want = _np_loss(s_r, t_r)
    got = spectral_alignment_loss([s], [t], spatial="fourier_centered")
    assert abs(got.item() - want) < 1e-6 * max(1.0, want)
    got.backward()
    assert s.grad is not None and torch.isfinite(s.grad).all() and not t.requires_grad
