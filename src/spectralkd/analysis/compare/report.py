"""compare.json and report.html of ``spectralkd compare``."""
from __future__ import annotations

import html
import json
from pathlib import Path

from spectralkd.analysis.html_page import embed_png, fmt, page
from spectralkd.paths import portable
from spectralkd.runtime.io import atomic_write_text


def render(result: dict, plots: dict[str, Path]) -> str:
    teacher = result["teacher"]
    rows = []
    for s in result["students"]:
        m = s["measures"]
        d = s["intensity_distance"]
        rows.append(
            f"<tr><td>{html.escape(s['label'])}</td><td>{html.escape(str(s['model']))}</td><td>{s['depth']}</td>"
            + "".join(f"<td>{fmt(m[k]['correlation'], 3)}</td>" for k in ("intensity", "rms", "entropy", "high_freq_ratio"))
            + f"<td>{fmt(m['intensity']['mean_distance'], 3)}</td><td>{fmt(m['intensity']['relative_distance'], 3)}</td>"
            f"<td>{fmt(d['aligned'], 3)}</td><td>{fmt(d['not_aligned'], 3)}</td><td>{html.escape(s['pairs_source'])}</td></tr>")
    spectra = []
    for s in result["students"]:
        for p in s["spectra"]:
            spectra.append(f"<tr><td>{html.escape(s['label'])}</td><td>{p['student_layer']}</td><td>{p['teacher_layer']}</td>"
                           f"<td>{fmt(p['correlation'], 3)}</td><td>{fmt(p['mean_distance'], 3)}</td></tr>")
    epochs = []
    for s in result["students"]:
        for e in (s.get("dynamics") or {}).get("epochs", []):
            if "measures" not in e:
                epochs.append(f"<tr><td>{html.escape(s['label'])}</td><td>{e['epoch']}</td>"
                              "<td colspan=6>non-finite measures</td></tr>")
                continue
            m, d = e["measures"], e["intensity_distance"]
            epochs.append(f"<tr><td>{html.escape(s['label'])}</td><td>{e['epoch']}</td>"
                          f"<td>{fmt(m['intensity']['correlation'], 3)}</td>"
                          f"<td>{fmt(m['intensity']['relative_distance'], 3)}</td><td>{fmt(d['aligned'], 3)}</td>"
                          f"<td>{fmt(d['not_aligned'], 3)}</td><td>{fmt(m['rms']['correlation'], 3)}</td>"
                          f"<td>{fmt(m['entropy']['correlation'], 3)}</td></tr>")
    over_training = "" if not epochs else f"""<h2>Over training</h2>
<p>Students whose run directory holds <code>dynamics.jsonl</code> (trained with <code>monitor.every</code> &gt; 0): their
per-layer measures on the run's fixed probe batch after each recorded epoch (0 = initial weights), compared with the
teacher as above. The teacher's curves come from its own analysis (other images), so read levels with care and trends
with confidence.</p>
<table><tr><th>student</th><th>epoch</th><th>corr. intensity</th><th>intensity distance (relative)</th>
<th>|Δ intensity| aligned</th><th>|Δ intensity| not aligned</th><th>corr. RMS</th><th>corr. entropy</th></tr>
{''.join(epochs)}</table>"""
    figures = "".join(embed_png(p, caption) for caption, p in plots.items())
    body = f"""<h1>Distillation dynamics: teacher <code>{html.escape(teacher['label'])}</code> ({html.escape(str(teacher['model']))},
{teacher['depth']} layers)</h1>
<p>Every curve is placed at relative depth i/(L−1). Correlations are Pearson correlations of each student's curve with
the teacher's after both are resampled to a common grid (1 = the same shape); distances are mean absolute differences
of the values (relative = divided by the teacher's mean). The last columns compare each student layer with its teacher
counterpart — its distillation partner when it was aligned by a loss, else the teacher curve at the same relative depth
— and average over the aligned and the not-aligned layers separately. Each model's channel entropy uses the bins
over <em>its own</em> global value range (the paper's definition), so compare entropy curves by shape, not level.</p>
<h2>Similarity to the teacher</h2>
<table><tr><th>student</th><th>model</th><th>layers</th><th>corr. intensity</th><th>corr. RMS</th><th>corr. entropy</th>
<th>corr. high-freq.</th><th>intensity distance</th><th>relative</th><th>|Δ intensity| aligned</th>
<th>|Δ intensity| not aligned</th><th>counterparts by</th></tr>
{''.join(rows)}</table>
<h2>Plots</h2>
{figures}
<h2>Channel spectra of matched layers</h2>
<p>Spectra resampled to 64 normalised channel frequencies over the range both cover (0 to 0.5 − 1/C of the narrower); correlation of shape and mean absolute distance.</p>
<table><tr><th>student</th><th>student layer</th><th>teacher layer</th><th>correlation</th><th>mean distance</th></tr>
{''.join(spectra)}</table>
{over_training}
<p class="footer">Written by spectralkd compare; numbers in compare.json beside this page.</p>"""
    return page(f"spectralkd compare: {teacher['label']}", body, width=1150)


def write_compare(result: dict, plots: dict[str, Path], out: Path) -> tuple[Path, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "compare.json", out / "report.html"
    atomic_write_text(json_path, json.dumps(portable(result, out), indent=1) + "\n")
    atomic_write_text(html_path, render(result, plots))
    return json_path, html_path
