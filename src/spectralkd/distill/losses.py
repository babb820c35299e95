"""Distillation objectives: the SpectralKD spectral alignment loss, logit KD, their combination, and ablations.

The published SpectralKD loss (Tian et al.) pairs student and teacher block maps (B×C×H×W), average-pools the
wider one over channels to the narrower width, takes ``rfft2`` over (H, W) with ``norm="ortho"`` in float32,
stacks real and imaginary parts and takes the mean squared error. rfft2 is linear and orthonormal, so that MSE is
computed exactly without a transform, from the maps' squared difference and the power of the spectrum's
self-conjugate columns (Parseval; :func:`half_spectrum_energy`) — same value, same gradients, a fraction of the
time of a forward and inverse FFT. The total objective is

    total = (1 − α)·CE(label smoothing) + α·KD(logits) + β·w_fft·spectral

with the logit term absent in mode ``fft`` and everything but CE absent in mode ``none``.

Feature-loss variants (``distill.feature_loss``), all using the same channel alignment:

* ``spectral`` — the published loss above.
* ``feature_mse`` — plain MSE of the aligned maps. By Parseval, ``sum |rfft2(d)|²`` over the half spectrum is
  ``(sum |d|² + P_edge) / 2`` (``P_edge``: the power in the self-conjugate columns, DC and, for even W, Nyquist),
  and the half spectrum has ``H·(W//2+1)·2`` stacked values versus ``H·W`` pixels, so
  ``spectral = feature_mse · W/(4·(W//2+1)) + P_edge/(4·H·(W//2+1))`` — the element-count factor is 0.4375 at
  W = 14. The ratio is close to that factor only for spatially white differences; for smooth differences, whose
  power sits in the DC column, the edge term is large (0.7–0.875× the feature MSE; 0.875 for a constant one).
* ``magnitude`` — MSE of ``|rfft2|`` only (phase discarded: a spatially shifted map costs nothing).
* ``band`` — the spectral loss with a per-frequency weight ``1 + strength·r`` (``high``) or ``1 + strength·(1−r)``
  (``low``), ``r`` the radial frequency scaled to [0, 1], weights normalised to mean 1 over the half spectrum so
  ``strength=0`` gives the spectral loss exactly.

Spatial alignment (``spatial``, config ``distill.spatial_align``) when a pair's maps differ in H×W:

* ``strict`` (default) — refused with one line naming both shapes and the option.
* ``fourier`` — along each axis the larger map is ideally (sinc) resampled to the smaller size in the ``rfft2``
  ortho domain (:mod:`spectralkd.spectral.resample`: keep the frequencies the smaller grid holds, fold ±n/2 into
  its Nyquist bin when n is even, scale by ``sqrt(N_small/N_large)``). Every loss above is then the same loss
  between the resampled map and the other one; a band-limited copy of the teacher at a higher resolution costs 0.
* ``interpolate`` — the larger map is resized with bilinear interpolation (``align_corners=False``, no
  antialiasing) to the smaller H×W, the usual choice of other toolkits, then the same loss.

Channel pooling and spatial resampling are both linear and act on different axes, so their order does not matter;
the channels are pooled first. Teacher maps are detached: gradients reach the student only.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from spectralkd.errors import UserError
from spectralkd.spectral.resample import fourier_resample, fourier_resample_spectrum

MODES = ("none", "soft", "hard", "fft")
FEATURE_LOSSES = ("spectral", "feature_mse", "magnitude", "band")
BAND_EMPHASIS = ("low", "high")
SPATIAL_ALIGN = ("strict", "fourier", "fourier_centered", "interpolate")


def check_spatial(spatial: str) -> str:
    if spatial not in SPATIAL_ALIGN:
        raise UserError(f"spatial alignment '{spatial}' is not supported; allowed: {', '.join(SPATIAL_ALIGN)}")
    return spatial


def _pool_windows(c_in: int, c_out: int) -> list[tuple[int, int]]:
    """Adaptive average pooling's windows: i → [floor(i·c_in/c_out), ceil((i+1)·c_in/c_out))."""
    return [((i * c_in) // c_out, -((-(i + 1) * c_in) // c_out)) for i in range(c_out)]


@lru_cache(maxsize=32)
def _pool_matrix(c_in: int, c_out: int) -> torch.Tensor:
    """c_out×c_in weights of adaptive average pooling (windows of :func:`_pool_windows`)."""
    weight = torch.zeros(c_out, c_in, dtype=torch.float64)
    for i, (lo, hi) in enumerate(_pool_windows(c_in, c_out)):
        weight[i, lo:hi] = 1.0 / (hi - lo)
    return weight.float()


@lru_cache(maxsize=32)
def _pool_starts(c_in: int, c_out: int) -> tuple[torch.Tensor, int] | None:
    """(window starts, window size) when every adaptive-pooling window has the same size (96→64: size 2), else None."""
    windows = _pool_windows(c_in, c_out)
    sizes = {hi - lo for lo, hi in windows}
    if len(sizes) != 1:
        return None
    return torch.tensor([lo for lo, _ in windows], dtype=torch.long), sizes.pop()


def pool_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Adaptive average pooling of a B×C×H×W map over the channel axis down to ``channels``.

    The same windows as ``F.adaptive_avg_pool3d(x, (channels, None, None))`` in the published code: for C
    divisible by ``channels`` consecutive groups are averaged (384→192 averages channels 2k and 2k+1), otherwise
    windows follow adaptive pooling's floor/ceil bounds. Computed as a group mean, a sum of channel gathers when all
    windows have one size (96→64), or else one small matrix product; on CPU each is several times faster than the
    generic 3-D pooling kernel (benchmarks/bench_distill.py), and on the CIFAR-10 recipe's 128×96×8×8 teacher maps
    the gathers take 0.26 ms against 1.35 ms for the matrix product (1 thread).
    """
    c = x.shape[1]
    if c == channels:
        return x
    if c % channels == 0:
        return x.unflatten(1, (channels, c // channels)).mean(dim=2)
    uniform = _pool_starts(c, channels)
    if uniform is not None:  # equal windows (96→64: channels ⌊1.5i⌋, ⌊1.5i⌋+1): k gathers, no dense matrix product
        starts, size = uniform
        starts = starts.to(x.device)
        total = x.index_select(1, starts)
        for j in range(1, size):
            total = total + x.index_select(1, starts + j)
        return total / size
    weight = _pool_matrix(c, channels).to(device=x.device, dtype=x.dtype)
    return torch.einsum("oc,bchw->bohw", weight, x)


def align_channels(student: torch.Tensor, teacher: torch.Tensor, where: str = "pair",
                   spatial: str = "strict") -> tuple[torch.Tensor, torch.Tensor]:
    """Check the shapes and pool the wider map over channels to the narrower width (H×W untouched).

    With ``spatial="strict"`` the maps must have equal H×W; otherwise any sizes of at least 1×1 pass.
    """
    if student.dim() != 4 or teacher.dim() != 4:
        raise UserError(f"{where}: maps must be B×C×H×W, got student {tuple(student.shape)} and teacher {tuple(teacher.shape)}")
    if student.shape[-2:] != teacher.shape[-2:] and check_spatial(spatial) == "strict":
        raise UserError(f"{where}: student map {tuple(student.shape)} and teacher map {tuple(teacher.shape)} differ in "
                        "spatial size (H×W); pair layers with equal H×W or set spatial='fourier' "
                        "(distill.spatial_align: fourier)")
    if min(student.shape[-2:]) < 1 or min(teacher.shape[-2:]) < 1:
        raise UserError(f"{where}: student map {tuple(student.shape)} or teacher map {tuple(teacher.shape)} is smaller "
                        "than 1×1; pair a layer that keeps spatial extent")
    if student.shape[0] != teacher.shape[0]:
        raise UserError(f"{where}: batch sizes differ (student {student.shape[0]}, teacher {teacher.shape[0]})")
    cs, ct = student.shape[1], teacher.shape[1]
    if cs < ct:
        teacher = pool_channels(teacher, cs)
    elif cs > ct:
        student = pool_channels(student, ct)
    return student, teacher


def _spectrum(x: torch.Tensor) -> torch.Tensor:
    return torch.fft.rfft2(x.float(), dim=(-2, -1), norm="ortho")


@lru_cache(maxsize=32)
def _edge_columns(w: int) -> torch.Tensor:
    """W×k: the rfft2 ortho self-conjugate columns' 1-D transform rows along W — ``1/√W`` (column 0) and, for even
    W, ``(−1)^w/√W`` (column W/2)."""
    cols = [torch.ones(w, dtype=torch.float64)]
    if w % 2 == 0:
        cols.append(torch.tensor([(-1.0) ** i for i in range(w)], dtype=torch.float64))
    return torch.stack(cols, dim=1) / math.sqrt(w)


def half_spectrum_energy(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``Σ |rfft2(s − t, norm="ortho")|²`` over the half spectrum (H×(W//2+1) per map), exactly, without a transform.

    Parseval: the full ortho spectrum holds ``Σ d²`` (``d = s − t``). The half spectrum keeps one of each conjugate
    pair of columns plus the self-conjugate ones — column 0 and, for even W, column W/2 — so it holds
    ``(Σ d² + E)/2`` with ``E`` their power. Column 0 is the ortho transform over H of ``Σ_w d / √W`` and column W/2
    that of ``Σ_w (−1)^w d / √W``, so (Parseval over H) ``E`` is the sum of the squares of those two W-sums. Only
    elementwise passes and one thin matrix product per map, forward and backward, instead of a forward and an
    inverse FFT.
    """
    w = s.shape[-1]
    cols = _edge_columns(w).to(device=s.device, dtype=s.dtype)
    total = F.mse_loss(s, t, reduction="sum")
    edge = F.mse_loss(torch.mm(cols.t(), s.reshape(-1, w).t()), torch.mm(cols.t(), t.reshape(-1, w).t()),
                      reduction="sum")
    return (total + edge) / 2


def _spectral_mse(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The published pair loss on equal-shape maps: MSE of the stacked (real, imag) rfft2 ortho spectra of s and t
    (both already float32 and channel-aligned), through :func:`half_spectrum_energy`."""
    h, w = s.shape[-2:]
    count = s.numel() // (h * w) * h * (w // 2 + 1) * 2  # B·C·H·(W//2+1)·2 stacked values
    return half_spectrum_energy(s, t) / count


@lru_cache(maxsize=32)
def _band_weights_cached(h: int, w: int, emphasis: str, strength: float) -> torch.Tensor:
    fy = torch.fft.fftfreq(h, dtype=torch.float64).abs()
    fx = torch.fft.rfftfreq(w, dtype=torch.float64)
    radius = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    radius = radius / radius.max() if radius.max() > 0 else radius
    weight = 1.0 + strength * (radius if emphasis == "high" else 1.0 - radius)
    return (weight / weight.mean()).float()


def band_weights(h: int, w: int, emphasis: str = "low", strength: float = 3.0) -> torch.Tensor:
    """H×(W//2+1) weights over the rfft2 half spectrum, mean 1, rising towards low or high radial frequency."""
    if emphasis not in BAND_EMPHASIS:
        raise UserError(f"band emphasis '{emphasis}' is not supported; allowed: {', '.join(BAND_EMPHASIS)}")
    if not strength >= 0:
        raise UserError(f"band strength must be ≥ 0, got {strength}")
    return _band_weights_cached(int(h), int(w), emphasis, float(strength))


def common_size(a: torch.Tensor, b: torch.Tensor) -> tuple[int, int]:
    """The grid both maps can be compared on: the smaller H and the smaller W (independently)."""
    return min(a.shape[-2], b.shape[-2]), min(a.shape[-1], b.shape[-1])


def resample_to(x: torch.Tensor, size: tuple[int, int], spatial: str) -> torch.Tensor:
    """``x`` at ``size`` (≤ its own per axis): ideal Fourier resampling or bilinear interpolation."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if spatial in ("fourier", "fourier_centered"):
        return fourier_resample(x.float(), size, centered=spatial == "fourier_centered")
    return F.interpolate(x.float(), size=tuple(size), mode="bilinear", align_corners=False)


def _spectrum_at(x: torch.Tensor, size: tuple[int, int], centered: bool = False) -> torch.Tensor:
    """rfft2 ortho spectrum of ``x`` ideally resampled to ``size``: its own coefficients on the smaller grid."""
    return fourier_resample_spectrum(_spectrum(x), tuple(x.shape[-2:]), size, centered)


def _spectral_from(fs: torch.Tensor, ft: torch.Tensor, kind: str, emphasis: str, strength: float,
                   size: tuple[int, int]) -> torch.Tensor:
    if kind == "magnitude":
        return F.mse_loss(fs.abs(), ft.abs())
    sq = torch.view_as_real(fs - ft).square()
    if kind == "band":
        weight = band_weights(size[0], size[1], emphasis, strength).to(sq.device)
        return (sq * weight[..., None]).mean()
    return sq.mean()


def _pair_loss(s: torch.Tensor, t: torch.Tensor, kind: str, emphasis: str, strength: float,
               spatial: str = "strict") -> torch.Tensor:
    if s.shape[-2:] != t.shape[-2:]:
        size = common_size(s, t)
        if spatial == "interpolate" or kind == "feature_mse":
            return _pair_loss(resample_to(s, size, spatial), resample_to(t, size, spatial), kind, emphasis, strength)
        # fourier: compare the spectra on the frequencies both grids hold (no inverse transform needed)
        centered = spatial == "fourier_centered"
        return _spectral_from(_spectrum_at(s, size, centered), _spectrum_at(t, size, centered), kind, emphasis,
                              strength, size)
    if kind == "feature_mse":
        return F.mse_loss(s.float(), t.float())
    if kind == "magnitude":
        return F.mse_loss(_spectrum(s).abs(), _spectrum(t).abs())
    if kind == "spectral":
        return _spectral_mse(s.float(), t.float())
    # band: rfft2 is linear, so rfft2(s) − rfft2(t) = rfft2(s − t): one transform per pair instead of two.
    sq = torch.view_as_real(_spectrum(s.float() - t.float())).square()  # ...×H×(W//2+1)×2: real, imaginary stacked
    weight = band_weights(s.shape[-2], s.shape[-1], emphasis, strength).to(sq.device)
    return (sq * weight[..., None]).mean()


def feature_alignment_loss(student_maps: Sequence[torch.Tensor], teacher_maps: Sequence[torch.Tensor],
                           kind: str = "spectral", emphasis: str = "low", strength: float = 3.0,
                           spatial: str = "strict") -> torch.Tensor:
    """Mean over layer pairs of the chosen feature loss (see module docstring), always computed in float32.

    ``spatial`` says what happens when a pair's H×W differ: ``strict`` (error), ``fourier`` (ideal resampling,
    grids sharing their origin), ``fourier_centered`` (ideal resampling at the cell centres) or ``interpolate``.
    """
    check_spatial(spatial)
    if kind not in FEATURE_LOSSES:
        raise UserError(f"feature loss '{kind}' is not supported; allowed: {', '.join(FEATURE_LOSSES)}")
    if len(student_maps) != len(teacher_maps):
        raise UserError(f"{len(student_maps)} student maps but {len(teacher_maps)} teacher maps; pair them one to one")
    if not student_maps:
        raise UserError("no layer pairs to align; give student_ids and teacher_ids")
    device_type = student_maps[0].device.type
    with torch.autocast(device_type=device_type, enabled=False):
        total, same_shape = None, {}
        for i, (s, t) in enumerate(zip(student_maps, teacher_maps)):
            s, t = align_channels(s.float(), t.detach().float(), where=f"layer pair {i}", spatial=spatial)
            if kind == "band" and s.shape == t.shape:
                same_shape.setdefault(tuple(s.shape), []).append(s - t)  # one stacked FFT per shape, below
                continue
            loss = _pair_loss(s, t, kind, emphasis, strength, spatial)
            total = loss if total is None else total + loss
        for shape, diffs in same_shape.items():
            # rfft2 is linear, so rfft2(s) − rfft2(t) = rfft2(s − t); pairs of one shape share a single transform.
            sq = torch.view_as_real(_spectrum(torch.stack(diffs))).square()  # P×B×C×H×(W//2+1)×2
            sq = sq * band_weights(shape[-2], shape[-1], emphasis, strength).to(sq.device)[..., None]
            loss = sq.flatten(1).mean(dim=1).sum()  # the sum over pairs of each pair's mean
            total = loss if total is None else total + loss
        return total / len(student_maps)


def spectral_alignment_loss(student_maps: Sequence[torch.Tensor], teacher_maps: Sequence[torch.Tensor],
                            spatial: str = "strict") -> torch.Tensor:
    """The published SpectralKD loss: mean over pairs of MSE between stacked (real, imag) ``rfft2`` spectra.

    ``spatial="fourier"`` compares maps of different H×W on the frequencies both grids hold (module docstring).
    """
    return feature_alignment_loss(student_maps, teacher_maps, "spectral", spatial=spatial)


def logit_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float = 1.0,
                  kind: str = "soft") -> torch.Tensor:
    """``soft``: τ²·KL(teacher‖student) at temperature τ (batchmean); ``hard``: CE to the teacher's argmax."""
    teacher_logits = teacher_logits.detach().float()
    student_logits = student_logits.float()
    if kind == "soft":
        if not tau > 0:
            raise UserError(f"distillation temperature tau must be > 0, got {tau}")
        return F.kl_div(F.log_softmax(student_logits / tau, dim=1), F.log_softmax(teacher_logits / tau, dim=1),
                        reduction="batchmean", log_target=True) * (tau * tau)
    if kind == "hard":
        return F.cross_entropy(student_logits, teacher_logits.argmax(dim=1))
    raise UserError(f"logit KD kind '{kind}' is not supported; allowed: soft, hard")


def uses_feature_term(mode: str, beta: float, w_fft: float) -> bool:
    """Whether :class:`SpectralKDLoss` with these settings has a feature-alignment term (and so needs maps)."""
    return mode != "none" and float(beta) * float(w_fft) != 0.0


class SpectralKDLoss(nn.Module):
    """``(1−α)·CE + α·KD + β·w_fft·feature`` with the published modes; returns ``(total, components)``.

    Modes: ``none`` → CE only (a plain training objective); ``fft`` → (1−α)·CE + β·w_fft·feature; ``soft``/``hard``
    → all three terms. ``base_criterion`` takes (logits, targets) — label-smoothed CE, or soft-target CE under
    Mixup/CutMix. Components are detached floats-as-tensors: ``loss_ce``, ``loss_kd``, ``loss_fft`` (already
    weighted) and ``loss``.
    """

    def __init__(self, base_criterion: nn.Module, mode: str = "fft", alpha: float = 0.9, tau: float = 1.0,
                 beta: float = 1.0, w_fft: float = 0.2, feature_loss: str = "spectral", band_emphasis: str = "low",
                 band_strength: float = 3.0, spatial: str = "strict"):
        super().__init__()
        self.spatial = check_spatial(spatial)
        if mode not in MODES:
            raise UserError(f"distillation mode '{mode}' is not supported; allowed: {', '.join(MODES)}")
        if feature_loss not in FEATURE_LOSSES:
            raise UserError(f"feature loss '{feature_loss}' is not supported; allowed: {', '.join(FEATURE_LOSSES)}")
        if not 0.0 <= alpha <= 1.0:
            raise UserError(f"distillation alpha must be in [0, 1], got {alpha}")
        if feature_loss == "band":
            band_weights(2, 2, band_emphasis, band_strength)  # validates emphasis/strength up front
        self.base_criterion = base_criterion
        self.mode, self.alpha, self.tau, self.beta, self.w_fft = mode, float(alpha), float(tau), float(beta), float(w_fft)
        self.feature_loss, self.band_emphasis, self.band_strength = feature_loss, band_emphasis, float(band_strength)

    @property
    def uses_teacher(self) -> bool:
        return self.mode != "none"

    @property
    def uses_features(self) -> bool:
        return uses_feature_term(self.mode, self.beta, self.w_fft)

    @property
    def uses_logits(self) -> bool:
        return self.mode in ("soft", "hard")

    def forward(self, student_logits: torch.Tensor, targets: torch.Tensor, teacher_logits: torch.Tensor | None = None,
                student_maps: Sequence[torch.Tensor] = (), teacher_maps: Sequence[torch.Tensor] = (),
                kd_logits: torch.Tensor | None = None):
        """``kd_logits``: the logits the KD term is applied to when they are not ``student_logits`` (the
        distillation head of a distillation-token student, whose class head gets the label term)."""
        ce = self.base_criterion(student_logits.float(), targets)
        zero = ce.new_zeros(())
        if self.mode == "none":
            return ce, {"loss": ce.detach(), "loss_ce": ce.detach()}
        total = (1.0 - self.alpha) * ce
        parts = {"loss_ce": ((1.0 - self.alpha) * ce).detach()}
        if self.uses_features:
            feat = self.beta * self.w_fft * feature_alignment_loss(
                student_maps, teacher_maps, self.feature_loss, self.band_emphasis, self.band_strength, self.spatial)
            total = total + feat
            parts["loss_fft"] = feat.detach()
        else:
            parts["loss_fft"] = zero
        if self.uses_logits:
            if teacher_logits is None:
                raise UserError(f"distillation mode '{self.mode}' needs teacher logits")
            kd = self.alpha * logit_kd_loss(student_logits if kd_logits is None else kd_logits, teacher_logits,
                                            self.tau, self.mode)
            total = total + kd
            parts["loss_kd"] = kd.detach()
        parts["loss"] = total.detach()
        return total, parts


__all__ = [
    "MODES", "FEATURE_LOSSES", "SPATIAL_ALIGN", "check_spatial", "common_size", "resample_to", "pool_channels",
    "align_channels", "band_weights", "half_spectrum_energy", "feature_alignment_loss", "spectral_alignment_loss",
    "logit_kd_loss", "uses_feature_term", "SpectralKDLoss",
]
