"""report.html: one self-contained page (plots embedded as base64 PNG) that a person reads in a browser."""
from __future__ import annotations

import html
from pathlib import Path

from spectralkd.analysis.html_page import embed_png, fmt as _fmt, page
from spectralkd.analysis.outputs import unstructured_intensity
from spectralkd.analysis.measures import AnalysisResult
from spectralkd.analysis.recommend import describe_pairs
from spectralkd.paths import portable
from spectralkd.runtime.io import atomic_write_text

MEASURES = [
    ("Frequency intensity L(X)",
     "For every position the C-vector of channel values is Fourier-transformed along the channels; the layer's "
     "spectrum is the mean of |FFT<sub>k</sub>|/C over images and positions, and L(X) is its mean over k "
     "(SpectralKD's measure; the paper distils the layers where it is highest). For channels without structure "
     "L(X) ≈ 0.886·RMS/√C, shown as the dashed line: the intensity follows the scale of the activations first. "
     "Only the gap between the two curves reflects structure across channels, and channel order is arbitrary."),
    ("Channel spectrum",
     "The first C/2 bins of that spectrum against the normalised channel frequency k/C. Bin 0 is the channel "
     "mean; a spectrum that falls off means neighbouring channels (in the network's arbitrary order) are similar."),
    ("Channel entropy",
     "Each position's C values are put into equal bins spanning the global minimum..maximum over all analysed "
     "layers (numpy.histogram convention); the Shannon entropy of that histogram in bits, averaged over "
     "positions. Because the grid is shared, layers with small activations next to large ones score low."),
    ("RMS", "Root mean square of all activations of the layer: the scale that drives the intensity."),
    ("SVD rank 99",
     "Per image, the (H·W)×C token matrix; the smallest number of singular directions holding 99 % of its energy "
     "(sum of squared singular values); the 99th percentile over images. It does not depend on channel order. "
     "details.json and layers.csv also give the 80/90/95 % ranks."),
    ("High-frequency ratio",
     "Each channel map's 2-D power spectrum (rfft2, both halves of the plane counted, so Parseval holds); the share "
     "of the non-DC energy above half the Nyquist frequency (normalised radius ρ > 0.5). High values mean "
     "fine, pixel-to-pixel spatial detail."),
    ("Intervals",
     "With the bootstrap on (<code>--bootstrap B</code>, default 1000 resamples), each interval is a percentile "
     "bootstrap interval over the analysed images: the images are drawn with replacement B times, the measure is "
     "recomputed on every resample, and the interval spans the middle 95 % of those values (the same resamples for "
     "every layer; the RMS and the high-frequency ratio are recomputed as the square root of a mean and a ratio of "
     "means, not averaged per image). It shows how much a value depends on which images of this source were "
     "analysed. It is <em>not</em> an interval over training seeds, models or data sets."),
]


def _ci_text(ci) -> str:
    return "–" if ci is None else f"{_fmt(ci[0])} – {_fmt(ci[1])}"


def _with_ci(result: AnalysisResult, i: int, measure: str, value) -> str:
    """A measure's cell: the value, with its interval below in small type when there is one."""
    ci = result.interval(i, measure)
    return _fmt(value) + ("" if ci is None else f'<br><small class="ci">{_ci_text(ci)}</small>')


def _bootstrap_note(result: AnalysisResult) -> str:
    b = result.bootstrap
    if not b:
        return "No intervals (the bootstrap was off: <code>--bootstrap 0</code>)."
    level = round(100 * b.get("level", 0.95))
    text = (f"Intervals: {level} % percentile bootstrap over the {result.num_images} analysed images "
            f"({b['resamples']} resamples, seed {b['seed']}); they show how the values vary with the choice of "
            "images, not across training seeds.")
    return text + (f" <b>{html.escape(b['note'])}.</b>" if b.get("note") else "")


def render(result: AnalysisResult, recommended: dict, plots: dict[str, Path]) -> str:
    s = portable(result.settings)
    rows = []
    teacher_ids = set(recommended.get("teacher_ids", []))
    for i, (name, m) in enumerate(zip(result.layer_names, result.layers)):
        c, h, w = m.shape
        mark = ' class="pick"' if m.index in teacher_ids else ""
        rows.append(
            f"<tr{mark}><td>{m.index}</td><td>{html.escape(name)}</td><td>{c}×{h}×{w}</td><td>{_fmt(m.intensity)}</td>"
            f'<td class="ci">{_ci_text(result.interval(i, "intensity"))}</td>'
            f"<td>{_fmt(unstructured_intensity(m.rms, c))}</td><td>{_with_ci(result, i, 'entropy', m.entropy)}</td>"
            f"<td>{_with_ci(result, i, 'rms', m.rms)}</td><td>{_fmt(m.svd_ranks.get(0.99))}</td>"
            f"<td>{_with_ci(result, i, 'high_freq_ratio', m.high_freq_ratio)}</td></tr>")
    level = round(100 * result.bootstrap.get("level", 0.95))
    settings = "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in s.items())
    measures = "".join(f"<dt>{t}</dt><dd>{d}</dd>" for t, d in MEASURES)
    figures = "".join(embed_png(p, name.replace(".png", "").replace("_", " ")) for name, p in plots.items())
    pairs = describe_pairs(recommended).replace(" <- ", "↔")
    body = f"""<h1>Spectral analysis of <code>{html.escape(result.model)}</code></h1>
<p>{result.num_images} images analysed ({result.skipped} unreadable skipped); {len(result.layers)} of {result.depth}
layers; activation range {result.value_range[0]:.4g} .. {result.value_range[1]:.4g}.</p>
<h2>Recommended distillation pairs (student ↔ teacher)</h2>
<p><code>{html.escape(pairs) or "–"}</code> — the highest-intensity teacher layers, those in the first half mapped to
the student's first layers and those in the second half to its last layers (stage models: stage by stage; across
architectures: each teacher layer to the student layer at the same relative depth; rule used:
<code>{html.escape(str(recommended.get("rule", "–")))}</code>). Sizes are C×H×W; pairs whose H×W differ need
<code>distill.spatial_align: fourier</code> (<code>fourier_centered</code> between token grids of different patch
sizes).
Highlighted rows below. Use them with <code>distill.student_ids/teacher_ids: auto</code> and this analysis.json.</p>
<h2>Plots</h2>
{figures}
<h2>Per layer</h2>
<p>{_bootstrap_note(result)}</p>
<table><tr><th>index</th><th>layer</th><th>C×H×W</th><th>intensity</th><th>intensity {level} % CI</th>
<th>0.886·RMS/√C</th><th>entropy [bits]</th><th>RMS</th><th>SVD rank 99</th><th>high-freq. ratio</th></tr>
{''.join(rows)}
</table>
<h2>What the measures mean</h2>
<dl>{measures}</dl>
<h2>Settings</h2><ul>{settings}</ul>
<p class="footer">Written by spectralkd analyze. Files beside this page: analysis.json,
details.json, layers.csv and the PNG plots.</p>"""
    return page(f"spectralkd analysis: {result.model}", body)


def write_report(result: AnalysisResult, recommended: dict, plots: dict[str, Path], out: str | Path) -> Path:
    path = Path(out) / "report.html"
    atomic_write_text(path, render(result, recommended, plots))
    return path
