"""SpectralKD losses against independent computations (numpy FFTs, Parseval, hand-computed KD values)."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from spectralkd.distill.losses import (
    SpectralKDLoss, band_weights, feature_alignment_loss, half_spectrum_energy, logit_kd_loss, pool_channels,
    spectral_alignment_loss,
)
from spectralkd.errors import UserError


def _np_spectral(s: np.ndarray, t: np.ndarray) -> float:
    """Published loss per pair, written with numpy: pool the wider map in channel pairs, rfft2 ortho, stack, MSE."""
    cs, ct = s.shape[1], t.shape[1]
    if ct > cs:
        t = t.reshape(t.shape[0], cs, ct // cs, *t.shape[2:]).mean(axis=2)
    elif cs > ct:
        s = s.reshape(s.shape[0], ct, cs // ct, *s.shape[2:]).mean(axis=2)
    fs = np.fft.rfft2(s, norm="ortho")
    ft = np.fft.rfft2(t, norm="ortho")
    a = np.stack([fs.real, fs.imag], -1)
    b = np.stack([ft.real, ft.imag], -1)
    return float(((a - b) ** 2).mean())


def test_channel_pooling_averages_pairs_of_channels():
    x = torch.randn(2, 384, 3, 3)
    pooled = pool_channels(x, 192)
    assert pooled.shape == (2, 192, 3, 3)
    assert torch.allclose(pooled[:, 7], (x[:, 14] + x[:, 15]) / 2, atol=1e-6)
    assert torch.allclose(pooled, (x[:, 0::2] + x[:, 1::2]) / 2, atol=1e-6)


@pytest.mark.parametrize("c_in, c_out", [(96, 64), (7, 3), (5, 4), (384, 192), (5, 3)])
def test_channel_pooling_matches_torch_adaptive_pooling(c_in, c_out):
    x = torch.randn(2, c_in, 3, 5)
    want = torch.nn.functional.adaptive_avg_pool3d(x, (c_out, None, None))  # the published code's call
    assert torch.allclose(pool_channels(x, c_out), want, atol=1e-6)
    # window bounds by hand for 7 → 3: [0, 3), [2, 5), [4, 7)
    if (c_in, c_out) == (7, 3):
        assert torch.allclose(pool_channels(x, 3)[:, 1], x[:, 2:5].mean(dim=1), atol=1e-6)


def test_spectral_loss_matches_numpy_over_pairs_both_pooling_directions():
    g = torch.Generator().manual_seed(0)
    s1, t1 = torch.randn(3, 4, 6, 6, generator=g), torch.randn(3, 8, 6, 6, generator=g)   # teacher pooled 8 → 4
    s2, t2 = torch.randn(3, 6, 5, 7, generator=g), torch.randn(3, 3, 5, 7, generator=g)   # student pooled 6 → 3, odd W
    got = spectral_alignment_loss([s1, s2], [t1, t2]).item()
    want = (_np_spectral(s1.numpy(), t1.numpy()) + _np_spectral(s2.numpy(), t2.numpy())) / 2
    assert got == pytest.approx(want, rel=1e-5)


def test_parseval_relation_to_feature_mse():
    """sum over the half spectrum = (sum |d|^2 + power in the self-conjugate columns 0 and W/2) / 2."""
    g = torch.Generator().manual_seed(1)
    b, c, h, w = 4, 8, 14, 14
    s, t = torch.randn(b, c, h, w, generator=g), torch.randn(b, c, h, w, generator=g)
    spec = feature_alignment_loss([s], [t], "spectral").item()
    mse = feature_alignment_loss([s], [t], "feature_mse").item()
    d = (s - t).numpy().astype(np.float64)
    assert mse == pytest.approx(float((d ** 2).mean()), rel=1e-6)
    full = np.fft.fft2(d, norm="ortho")
    edge = float((np.abs(full[..., [0, w // 2]]) ** 2).sum())
    half_sum = (mse * d.size + edge) / 2
    assert spec == pytest.approx(half_sum / (b * c * h * (w // 2 + 1) * 2), rel=1e-5)
    # "about half": 14/(2·2·8) = 0.4375 from the element count, plus the edge-column share.
    assert 0.4 < spec / mse < 0.6


@pytest.mark.parametrize("h, w", [(8, 8), (5, 7), (6, 1), (1, 2), (3, 2), (7, 10)])
def test_half_spectrum_energy_matches_numpy_rfft2(h, w):
    """The transform-free sum equals numpy's rfft2 half spectrum, odd/even H and W, W = 1 and 2 included."""
    g = torch.Generator().manual_seed(h * 100 + w)
    s, t = (torch.randn(2, 3, h, w, generator=g, dtype=torch.float64) for _ in range(2))
    want = float((np.abs(np.fft.rfft2((s - t).numpy(), norm="ortho")) ** 2).sum())
    assert half_spectrum_energy(s, t).item() == pytest.approx(want, rel=1e-9)
    s32, t32 = s.float(), t.float()
    assert half_spectrum_energy(s32, t32).item() == pytest.approx(want, rel=1e-5)
    # and the pair loss is its mean over the stacked (real, imaginary) values of the half spectrum
    stacked = 2 * 3 * h * (w // 2 + 1) * 2
    assert spectral_alignment_loss([s32], [t32]).item() == pytest.approx(want / stacked, rel=1e-5)


@pytest.mark.parametrize("shape, teacher_channels", [((3, 4, 6, 6), 8), ((2, 3, 5, 7), 3), ((2, 4, 4, 8), 6)])
def test_spectral_loss_gradient_matches_autograd_through_rfft2(shape, teacher_channels):
    """Same gradient as differentiating the published computation (pool, rfft2 ortho, stack, MSE) through torch.fft."""
    g = torch.Generator().manual_seed(3)
    s = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(shape[0], teacher_channels, *shape[2:], generator=g, dtype=torch.float64)
    spectral_alignment_loss([s], [t]).backward()
    ref = s.detach().clone().requires_grad_()
    pooled = torch.nn.functional.adaptive_avg_pool3d(t, (shape[1], None, None))
    fs, ft = torch.fft.rfft2(ref, norm="ortho"), torch.fft.rfft2(pooled, norm="ortho")
    torch.nn.functional.mse_loss(torch.view_as_real(fs), torch.view_as_real(ft)).backward()
    assert torch.allclose(s.grad, ref.grad, rtol=1e-5, atol=1e-9)  # the loss runs in float32


def test_teacher_maps_get_no_gradient_and_student_does():
    s = torch.randn(2, 4, 4, 4, requires_grad=True)
    t = torch.randn(2, 8, 4, 4, requires_grad=True)
    spectral_alignment_loss([s], [t]).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_fft_in_float32_under_bf16_autocast():
    s = torch.randn(2, 4, 8, 8).to(torch.bfloat16)
    t = torch.randn(2, 4, 8, 8).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = spectral_alignment_loss([s], [t])
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(_np_spectral(s.float().numpy(), t.float().numpy()), rel=1e-5)


def test_spatial_mismatch_names_both_shapes():
    with pytest.raises(UserError, match=r"\(2, 4, 8, 8\).*\(2, 8, 4, 4\)"):
        spectral_alignment_loss([torch.zeros(2, 4, 8, 8)], [torch.zeros(2, 8, 4, 4)])
    with pytest.raises(UserError, match="1 student maps but 2 teacher maps"):
        spectral_alignment_loss([torch.zeros(1, 4, 2, 2)], [torch.zeros(1, 4, 2, 2)] * 2)


def test_magnitude_ignores_circular_shift_but_spectral_does_not():
    x = torch.randn(2, 4, 8, 8)
    shifted = torch.roll(x, shifts=(3, 2), dims=(-2, -1))
    assert feature_alignment_loss([shifted], [x], "magnitude").item() < 1e-10
    assert feature_alignment_loss([shifted], [x], "spectral").item() > 0.1


def test_band_weights_and_emphasis():
    w = band_weights(8, 8, "low", 3.0)
    assert w.shape == (8, 5)
    assert w.mean().item() == pytest.approx(1.0, rel=1e-6)
    assert w[0, 0] == w.max() and w[4, 4] == w.min()  # DC heaviest, corner (Nyquist, Nyquist) lightest
    x = torch.randn(2, 3, 8, 8)
    offset = x + 0.7  # a difference only at the DC component
    plain = feature_alignment_loss([offset], [x], "spectral").item()
    assert feature_alignment_loss([offset], [x], "band", "low", 0.0).item() == pytest.approx(plain, rel=1e-6)
    low = feature_alignment_loss([offset], [x], "band", "low", 3.0).item()
    high = feature_alignment_loss([offset], [x], "band", "high", 3.0).item()
    assert low == pytest.approx(plain * w[0, 0].item(), rel=1e-5)
    assert high < plain < low
    with pytest.raises(UserError, match="band emphasis 'mid'"):
        band_weights(4, 4, "mid")


def test_soft_kd_hand_computed():
    student = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0], [math.log(3.0), 0.0]])
    # tau = 1: p_t = (3/4, 1/4), p_s = (1/2, 1/2): KL = 3/4 ln(3/2) + 1/4 ln(1/2)
    kl1 = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert logit_kd_loss(student, teacher, 1.0, "soft").item() == pytest.approx(kl1, rel=1e-6)
    # tau = 2: p_t = (√3, 1)/(√3 + 1); times tau² = 4
    r = math.sqrt(3.0)
    p = (r / (r + 1), 1 / (r + 1))
    kl2 = sum(pi * math.log(pi / 0.5) for pi in p) * 4
    assert logit_kd_loss(student, teacher, 2.0, "soft").item() == pytest.approx(kl2, rel=1e-6)


def test_hard_kd_is_ce_to_teacher_argmax():
    student = torch.tensor([[2.0, 0.0, 0.0]])
    teacher = torch.tensor([[0.0, 5.0, 1.0]])
    want = -math.log(math.exp(0.0) / (math.exp(2.0) + 2.0))
    assert logit_kd_loss(student, teacher, 1.0, "hard").item() == pytest.approx(want, rel=1e-6)


def test_spectralkd_total_and_modes():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 5, generator=g, requires_grad=True)
    t_logits = torch.randn(4, 5, generator=g)
    labels = torch.tensor([0, 1, 2, 3])
    sm, tm = [torch.randn(4, 6, 4, 4, generator=g)], [torch.randn(4, 12, 4, 4, generator=g)]
    ce = nn.CrossEntropyLoss(label_smoothing=0.1)
    a, beta, w = 0.9, 1.5, 0.2
    ce_v = ce(logits, labels).item()
    kd_v = logit_kd_loss(logits, t_logits, 2.0, "soft").item()
    fft_v = spectral_alignment_loss(sm, tm).item()

    total, parts = SpectralKDLoss(ce, "soft", a, 2.0, beta, w)(logits, labels, t_logits, sm, tm)
    assert total.item() == pytest.approx((1 - a) * ce_v + a * kd_v + beta * w * fft_v, rel=1e-5)
    assert parts["loss_fft"].item() == pytest.approx(beta * w * fft_v, rel=1e-5)
    total.backward()
    assert logits.grad is not None

    total, parts = SpectralKDLoss(ce, "fft", a, 2.0, beta, w)(logits, labels, t_logits, sm, tm)
    assert "loss_kd" not in parts
    assert total.item() == pytest.approx((1 - a) * ce_v + beta * w * fft_v, rel=1e-5)

    total, parts = SpectralKDLoss(ce, "none", a)(logits, labels)
    assert total.item() == pytest.approx(ce_v, rel=1e-6) and set(parts) == {"loss", "loss_ce"}

    total, _ = SpectralKDLoss(ce, "hard", a, 2.0, beta, 0.0)(logits, labels, t_logits)  # logit-KD only
    hard_v = logit_kd_loss(logits, t_logits, 1.0, "hard").item()
    assert total.item() == pytest.approx((1 - a) * ce_v + a * hard_v, rel=1e-5)

    with pytest.raises(UserError, match="distillation mode 'kl'"):
        SpectralKDLoss(ce, "kl")
    with pytest.raises(UserError, match="feature loss 'l1'"):
        SpectralKDLoss(ce, "fft", feature_loss="l1")
