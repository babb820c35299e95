"""Channel entropy: how spread the values of each C-vector are over a global histogram grid.

Definition (SpectralKD's analysis, as its authors' code computes it). Take the global minimum ``lo`` and
maximum ``hi`` over all analysed layers together. For every layer and every spatial position (b, h, w),
histogram the C-vector ``x[b, :, h, w]`` into ``bins`` equal bins over ``[lo, hi]`` with ``numpy.histogram``'s convention: edges
``numpy.linspace(lo, hi, bins + 1)`` in the data's dtype, bin k holds ``edge_k <= v < edge_{k+1}``, the last bin
is closed. With ``p = counts / C`` the Shannon entropy ``-Σ p log2 p`` (bits, 0·log 0 = 0) is averaged over
B, H, W → one value per layer, between 0 (all channels in one bin) and ``log2(min(C, bins))``.

Because every layer shares one grid, the entropy mixes the spread of a layer's activations with the scale of the
other layers: a layer with small activations next to a layer with large ones falls into few bins.

Implementation: no Python loop over positions. A chunk of images is mapped to bin indices arithmetically,
``floor((v - lo) · bins / (hi - lo) + δ)``, where δ exceeds the rounding error of that arithmetic and of the
float edges; the estimate is then the right bin or one too high, and one comparison with the exact lower edge
fixes it, so every value lands in the same bin as with ``numpy.histogram`` (edge values included; where the
bound on δ is too loose — a range tiny against its magnitude — numpy's own two-sided correction is used). The
position's offset (``position · (bins + 1)`` counting slots) is folded into the same fused multiply-add, and one
``bincount`` counts all positions of the chunk; a position's entropy is ``log2 C - Σ_k n_k log2 n_k / C`` with
``n log2 n`` looked up in a table. Memory is bounded by the chunk size.
If lo == hi numpy widens the range to ``[lo - 0.5, hi + 0.5]``; so does :func:`histogram_edges`.

"Exact" means: the same bins as ``numpy.histogram`` on the same data, whose edges are in the data's dtype (float32
for float32 maps). Bins are sensitive to the edges' precision: with edges computed in float64 instead, the few
values within float32 rounding of an edge land in the neighbouring bin (3 of 451,584 N(0, 0.7²) float32 values at
100 bins in a check with numpy), so implementations that differ only there agree to about 1e-5 of the values.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from spectralkd.errors import UserError
from spectralkd.spectral.channel import check_map

# Values histogrammed at once: bounds the index, mask and float work buffers (about 13-17 bytes per value).
ENTROPY_CHUNK_ELEMENTS = 1 << 17

_NP_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def value_range(maps: Sequence[torch.Tensor]) -> tuple[float, float]:
    """Global (min, max) over all maps together; non-finite values → :class:`UserError` naming the layer."""
    lo, hi = math.inf, -math.inf
    for i, x in enumerate(maps):
        mn, mx = torch.aminmax(x.detach().float() if x.dtype not in _NP_DTYPES else x.detach())
        mn, mx = float(mn), float(mx)
        if not (math.isfinite(mn) and math.isfinite(mx)):
            raise UserError(f"layer {i} has NaN or infinite values; the entropy needs finite activations")
        lo, hi = min(lo, mn), max(hi, mx)
    if lo > hi:
        raise UserError("no maps given; the entropy needs at least one layer")
    return lo, hi


def histogram_edges(lo: float, hi: float, bins: int, dtype: torch.dtype = torch.float32) -> np.ndarray:
    """The bin edges ``numpy.histogram(v, bins, range=(lo, hi))`` uses for data of ``dtype``."""
    if int(bins) < 1:
        raise UserError(f"bins must be a positive integer, got {bins}")
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise UserError(f"histogram range ({lo}, {hi}) must be finite with min <= max")
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, int(bins) + 1, endpoint=True, dtype=_NP_DTYPES.get(dtype, np.float32))


class ChannelHistogram:
    """Entropy (bits) of the channel histogram of every position, on one fixed grid; reusable across maps.

    ``edges`` are from :func:`histogram_edges`. Values outside [lo, hi] (possible only when the range came from
    another pass on a nondeterministic device) are counted in the first/last bin.
    """

    def __init__(self, edges: np.ndarray, device: torch.device | str = "cpu", chunk_elements: int = ENTROPY_CHUNK_ELEMENTS):
        self.bins = len(edges) - 1
        self.dtype = torch.float64 if edges.dtype == np.float64 else torch.float32
        self.device = torch.device(device)
        self.lo = float(edges[0])
        self.scale = self.bins / (float(edges[-1]) - float(edges[0]))
        e = torch.from_numpy(np.ascontiguousarray(edges)).to(device=self.device, dtype=self.dtype)
        inf = torch.tensor([math.inf], dtype=self.dtype, device=self.device)
        self.lower = torch.cat([-inf, e[1:-1]])  # lower edge of each bin, -inf for bin 0
        self.upper = torch.cat([e[1:-1], inf])  # upper edge, +inf for the closed last bin
        # δ: bound on |(edge_k - lo) · scale - k| plus the rounding of the arithmetic in the data's dtype.
        pos = (edges.astype(np.float64) - self.lo) * self.scale
        eps = float(np.finfo(edges.dtype).eps)
        magnitude = max(abs(float(edges[0])), abs(float(edges[-1]))) * self.scale + self.bins
        self._edge_error = float(np.max(np.abs(pos - np.arange(self.bins + 1))))
        self._eps, self._magnitude = eps, magnitude
        self.delta = 2 * self._edge_error + 8 * eps * magnitude
        self.one_sided = 2 * self.delta < 0.5  # else fall back to numpy's two-sided correction
        self.hi = float(edges[-1])
        self._slots: torch.Tensor | None = None  # lower edges tiled per position (fast path), see _fast_sum
        self.chunk_elements = int(chunk_elements)
        self._tables: dict[int, torch.Tensor] = {}

    def _nlog2n(self, c: int) -> torch.Tensor:
        if c not in self._tables:
            n = torch.arange(c + 1, dtype=torch.float64, device=self.device)
            self._tables[c] = n * torch.log2(n.clamp(min=1))
        return self._tables[c]

    def bin_index(self, v: torch.Tensor, out: torch.Tensor | None = None,
                  work: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """int64 bin index of every value, exactly as ``numpy.histogram`` assigns it.

        ``out`` (int64) and ``work`` (float buffer in the histogram dtype, bool mask), all of v's shape, are
        optional preallocated buffers; with them nothing is allocated.
        """
        v = v.to(self.dtype)
        if out is None:
            out = torch.empty(v.shape, dtype=torch.int64, device=v.device)
        f, m = work or (torch.empty(v.shape, dtype=self.dtype, device=v.device),
                        torch.empty(v.shape, dtype=torch.bool, device=v.device))
        torch.sub(v, self.lo, out=f)
        f.mul_(self.scale)
        if self.one_sided:
            f.add_(self.delta)  # the estimate is now the right bin or one too high
        out.copy_(f)  # truncation == floor for the in-range (non-negative) values
        out.clamp_(0, self.bins - 1)
        torch.index_select(self.lower, 0, out.view(-1), out=f.view(-1))
        torch.lt(v, f, out=m)
        out.add_(m, alpha=-1)
        if not self.one_sided:  # numpy's own correction: the estimate may also be one too low
            torch.index_select(self.upper, 0, out.view(-1), out=f.view(-1))
            torch.ge(v, f, out=m)
            out.add_(m)
        return out

    def _chunks(self, x: torch.Tensor):
        """(first image, slice) pairs of the B×C×P view; each slice (whole images, or part of one image) holds
        about ``chunk_elements`` values."""
        b, c, p = x.shape
        if c * p <= self.chunk_elements:
            step = max(1, self.chunk_elements // (c * p))
            for i in range(0, b, step):
                yield i, x[i:i + step]
        else:
            step = max(1, self.chunk_elements // c)
            for i in range(b):
                for j in range(0, p, step):
                    yield i, x[i:i + 1, :, j:j + step]

    def per_image(self, x: torch.Tensor) -> torch.Tensor:
        """Σ over the positions of each image of a B×C×H×W map of the entropy (bits) of each position's channel
        histogram → float64 [B] (divide by H·W for the image's mean entropy)."""
        x = check_map(x)
        b, c, h, w = x.shape
        x3 = x.reshape(b, c, h * w)
        mn, mx = (float(v) for v in torch.aminmax(x3))
        in_range = self.lo <= mn and mx <= self.hi
        totals = self._fast_sum(x3) if in_range else None
        if totals is None:
            totals = self._generic_sum(x3)
        return h * w * math.log2(c) - totals / c

    def sum(self, x: torch.Tensor) -> float:
        """Σ over the positions of a B×C×H×W map of the entropy (bits) of each position's channel histogram."""
        return float(self.per_image(x).sum())

    def _fast_delta(self, positions: int) -> float:
        # rounding of offset + v·scale in the data's dtype grows with the largest offset positions·(bins+1)
        return 2 * self._edge_error + 8 * self._eps * (self._magnitude + positions * (self.bins + 1))

    def _fast_sum(self, x3: torch.Tensor) -> torch.Tensor | None:
        """Σ n·log2 n over the positions of each image (float64 [B]) with the position offset folded into the float
        estimate.

        Each position owns ``bins + 1`` counting slots; the estimate ``pos·(bins+1) + (v - lo)·scale + δ`` (one
        fused op) is the right slot or one too high, and one comparison with the tiled lower edges (-inf for bin
        0, +inf for the spare slot ``bins`` that catches v == hi) fixes it. Needs in-range values and a small δ.
        """
        b, c, p = x3.shape
        max_positions = max(1, self.chunk_elements // c) if c * p > self.chunk_elements else \
            max(1, self.chunk_elements // (c * p)) * p
        delta = self._fast_delta(max_positions)
        if 2 * delta >= 0.5:
            return None
        stride = self.bins + 1
        if self._slots is None or self._slots.numel() < max_positions * stride:
            inf = torch.tensor([math.inf], dtype=self.dtype, device=self.device)
            one = torch.cat([self.lower, inf])
            self._slots = one.repeat(max_positions)
        table = self._nlog2n(c)
        base = torch.arange(max_positions, dtype=torch.float64, device=x3.device) * stride + (delta - self.lo * self.scale)
        base = base.to(self.dtype)
        totals = torch.zeros(b, dtype=torch.float64, device=x3.device)
        dev, i32 = x3.device, torch.int32  # slot indices stay far below 2**31; int32 halves the memory traffic
        counts = torch.zeros(max_positions * stride, dtype=i32, device=dev)
        out = f = m = ones = None
        for first, chunk in self._chunks(x3):
            cb, _, cp = chunk.shape
            n, npos = cb * c * cp, cb * cp
            if out is None or out.numel() < n:
                out, m = torch.empty(n, dtype=i32, device=dev), torch.empty(n, dtype=i32, device=dev)
                f = torch.empty(n, dtype=self.dtype, device=dev)
                ones = torch.ones(1, dtype=i32, device=dev).expand(n)
            o, ff, mm = out[:n].view(cb, c, cp), f[:n].view(cb, c, cp), m[:n].view(cb, c, cp)
            torch.add(base[:npos].view(cb, 1, cp), chunk, alpha=self.scale, out=ff)
            o.copy_(ff)  # truncation == floor: every estimate is positive
            torch.index_select(self._slots, 0, o.view(-1), out=ff.view(-1))
            torch.lt(chunk, ff, out=mm)
            o.sub_(mm)
            used = counts[:npos * stride]
            used.zero_()
            used.index_add_(0, o.view(-1), ones[:n])
            totals[first:first + cb] += table.index_select(0, used).view(cb, cp * stride).sum(dim=1)
        return totals

    def _generic_sum(self, x3: torch.Tensor) -> torch.Tensor:
        """Σ n·log2 n over the positions of each image (float64 [B]) via :meth:`bin_index` (clamps out-of-range
        values into the edge bins)."""
        b, c, p = x3.shape
        table = self._nlog2n(c)
        totals = torch.zeros(b, dtype=torch.float64, device=x3.device)
        buffers = None
        for first, chunk in self._chunks(x3):
            cb, _, cp = chunk.shape
            n = cb * c * cp
            if buffers is None or buffers[0].numel() < n:
                buffers = (torch.empty(n, dtype=torch.int64, device=x3.device),
                           torch.empty(n, dtype=self.dtype, device=x3.device),
                           torch.empty(n, dtype=torch.bool, device=x3.device))
            out, f, m = (buf[:n].view(cb, c, cp) for buf in buffers)
            self.bin_index(chunk, out, (f, m))
            out += (torch.arange(cb * cp, device=x3.device, dtype=torch.int64) * self.bins).view(cb, 1, cp)
            counts = torch.bincount(out.view(-1), minlength=cb * cp * self.bins)
            totals[first:first + cb] += table[counts].view(cb, cp * self.bins).sum(dim=1)
        return totals

    def positions(self, x: torch.Tensor) -> torch.Tensor:
        """Entropy (bits) of every position → float64 [B, H, W] (for inspection and tests; ``sum`` is faster)."""
        x = check_map(x)
        b, c, h, w = x.shape
        idx = self.bin_index(x.reshape(b, c, h * w))
        idx = idx + (torch.arange(b * h * w, device=x.device) * self.bins).view(b, 1, h * w)
        counts = torch.bincount(idx.view(-1), minlength=b * h * w * self.bins).view(b * h * w, self.bins)
        return (math.log2(c) - self._nlog2n(c)[counts].sum(dim=1) / c).view(b, h, w)


def channel_entropy(maps: Sequence[torch.Tensor], bins: int = 100,
                    value_range_: tuple[float, float] | None = None) -> torch.Tensor:
    """Mean Shannon entropy (bits) of the per-position channel histograms of each map → float64 tensor [L].

    ``maps`` are B×C×H×W tensors (layers may differ in shape); the ``bins`` equal bins span the global
    min..max of all maps together unless ``value_range_`` gives it. See the module docstring for the definition.
    """
    maps = [check_map(x, f"layer {i}") for i, x in enumerate(maps)]
    if not maps:
        raise UserError("channel_entropy needs at least one map")
    lo, hi = value_range_ if value_range_ is not None else value_range(maps)
    dtype = torch.float64 if any(x.dtype == torch.float64 for x in maps) else torch.float32
    hist = ChannelHistogram(histogram_edges(lo, hi, bins, dtype), device=maps[0].device)
    return torch.tensor([hist.sum(x) / (x.shape[0] * x.shape[2] * x.shape[3]) for x in maps], dtype=torch.float64)
