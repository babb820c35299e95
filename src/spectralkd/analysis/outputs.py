"""Files written by ``spectralkd analyze``: analysis.json (the documented schema), details.json, layers.csv.

``analysis.json`` holds exactly::

    {"model", "num_images", "layers": [{"index", "shape", "intensity", "entropy", "rms", "svd_rank_99",
     "high_freq_ratio"[, "intensity_ci", "rms_ci", "entropy_ci", "high_freq_ratio_ci"]}],
     "spectra": {index: [first C//2 values of the channel spectrum]},
     "recommended": {"student_ids", "teacher_ids", "rule", "teacher_shapes"[, "student_shapes"]}
     [, "bootstrap": {"resamples", "seed", "level", "method", "over"[, "note"]}]}

The ``<measure>_ci`` keys (``[lower, upper]``, or null with fewer than 2 images) and ``bootstrap`` are there when
the percentile bootstrap over images ran (``--bootstrap B``, default 1000; files written before it, or with
``--bootstrap 0``, have neither and load the same).

``details.json`` holds everything needed to reproduce and read it (settings, data config, value range, skipped
files, the teacher depth, SVD ranks at every level, radial spatial spectra, the ``0.886·RMS/√C`` reference).
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from spectralkd.analysis.measures import AnalysisResult
from spectralkd.spectral import LayerMeasures
from spectralkd.spectral.bootstrap import CI_MEASURES
from spectralkd.paths import portable
from spectralkd.runtime.io import atomic_write_text
from spectralkd.errors import UserError

# E|FFT_k|/C for iid channels of standard deviation σ is sqrt(pi/4)·σ/sqrt(C) (see spectralkd.spectral.channel).
UNSTRUCTURED = math.sqrt(math.pi / 4)


def unstructured_intensity(rms: float, channels: int) -> float:
    """The intensity that channels without structure and this RMS would have: 0.886·RMS/√C."""
    return UNSTRUCTURED * rms / math.sqrt(channels)


def layer_entry(m: LayerMeasures) -> dict:
    """One layer of analysis.json (also a layer of a dynamics.jsonl record)."""
    return {"index": m.index, "shape": list(m.shape), "intensity": m.intensity, "entropy": m.entropy,
            "rms": m.rms, "svd_rank_99": m.svd_ranks[0.99], "high_freq_ratio": m.high_freq_ratio}


def _ci(result: AnalysisResult, i: int, name: str) -> list[float] | None:
    ci = result.interval(i, name)
    return None if ci is None else [float(ci[0]), float(ci[1])]


def analysis_dict(result: AnalysisResult, recommended: dict) -> dict:
    layers, spectra = [], {}
    for i, m in enumerate(result.layers):
        layers.append(layer_entry(m))
        if result.bootstrap:
            layers[-1].update({f"{name}_ci": _ci(result, i, name) for name in CI_MEASURES})
        spectra[str(m.index)] = [float(v) for v in m.spectrum[: m.shape[0] // 2]]
    out = {"model": result.model, "num_images": result.num_images, "layers": layers, "spectra": spectra,
           "recommended": {"student_ids": list(recommended["student_ids"]),
                           "teacher_ids": list(recommended["teacher_ids"]),
                           **{k: recommended[k] for k in ("rule", "teacher_shapes", "student_shapes")
                              if k in recommended}}}
    if result.bootstrap:
        out["bootstrap"] = dict(result.bootstrap)
    return out


def details_dict(result: AnalysisResult) -> dict:
    per_layer = []
    for name, m in zip(result.layer_names, result.layers):
        per_layer.append({
            "index": m.index, "name": name, "shape": list(m.shape), "min": m.min, "max": m.max,
            "unstructured_intensity": unstructured_intensity(m.rms, m.shape[0]),
            "svd_ranks_p99": {f"{lv:.2f}": r for lv, r in m.svd_ranks.items()},
            "radial_frequency": [float(v) for v in m.radial_frequency],
            "radial_power": [float(v) for v in m.radial_power],
        })
    return {"model": result.model, "teacher_depth": result.depth, "num_images": result.num_images,
            "skipped_images": result.skipped, "value_range": list(result.value_range), "settings": result.settings,
            "layers": per_layer}


CSV_FIELDS = ("index", "name", "channels", "height", "width", "intensity", "unstructured_intensity", "entropy", "rms",
              "svd_rank_80", "svd_rank_90", "svd_rank_95", "svd_rank_99", "high_freq_ratio", "min", "max",
              *(f"{name}_ci_{end}" for name in CI_MEASURES for end in ("lo", "hi")))  # empty: no interval


def layers_csv(result: AnalysisResult) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for i, (name, m) in enumerate(zip(result.layer_names, result.layers)):
        c, h, w = m.shape
        ranks = [m.svd_ranks.get(lv, "") for lv in (0.8, 0.9, 0.95, 0.99)]
        cis = [end for ci in (result.interval(i, n) for n in CI_MEASURES) for end in (ci or ("", ""))]
        row = [m.index, name, c, h, w, m.intensity, unstructured_intensity(m.rms, c),
               "" if m.entropy is None else m.entropy, m.rms, *ranks, m.high_freq_ratio, m.min, m.max, *cis]
        writer.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in row])
    return buf.getvalue()


def write_outputs(result: AnalysisResult, recommended: dict, out: str | Path) -> dict[str, Path]:
    """analysis.json, details.json, layers.csv in ``out`` → {name: path}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"analysis.json": json.dumps(portable(analysis_dict(result, recommended), out), indent=1) + "\n",
             "details.json": json.dumps(portable(details_dict(result), out), indent=1) + "\n",
             "layers.csv": layers_csv(result)}
    paths = {}
    for name, text in files.items():
        atomic_write_text(out / name, text)
        paths[name] = out / name
    return paths


LAYER_MEASURES = ("intensity", "rms", "entropy", "high_freq_ratio")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_analysis_types(path: Path, data: dict) -> None:
    """One line naming the first value of the wrong JSON type (a measure that is text, an index that is not whole…)."""
    def bad(where: str, value, expected: str):
        raise UserError(f"{path}: {where} is {json.dumps(value)[:40]}, expected {expected}; "
                        "not an analysis.json as `spectralkd analyze` writes it")

    for i, layer in enumerate(data["layers"]):
        if not (isinstance(layer["index"], int) and not isinstance(layer["index"], bool)):
            bad(f"layers[{i}].index", layer["index"], "a whole number")
        for name in LAYER_MEASURES:
            value = layer.get(name)
            if value is not None and not _is_number(value):
                bad(f"layers[{i}].{name}", value, "a number")
            ci = layer.get(f"{name}_ci")  # absent in files written before the bootstrap intervals
            if ci is not None and not (isinstance(ci, list) and len(ci) == 2 and all(_is_number(v) for v in ci)):
                bad(f"layers[{i}].{name}_ci", ci, "null or [lower, upper] (two numbers)")
    if "bootstrap" in data and not isinstance(data["bootstrap"], dict):
        bad("bootstrap", data["bootstrap"], "an object (resamples, seed, level, ...)")
    spectra = data.get("spectra", {})
    if not isinstance(spectra, dict):
        bad("spectra", spectra, "an object of layer index → list of numbers")
    for key, spec in spectra.items():
        if not (isinstance(spec, list) and all(_is_number(v) for v in spec)):
            bad(f"spectra[{key}]", spec, "a list of numbers")
    pairs = data.get("pairs")
    if pairs is not None:
        ok = isinstance(pairs, dict) and all(isinstance(pairs.get(k), list) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in pairs[k]) for k in ("student_ids", "teacher_ids"))
        if not ok:
            bad("pairs", pairs, "{\"student_ids\": [whole numbers], \"teacher_ids\": [whole numbers]}")
    if data.get("model") is not None and not isinstance(data["model"], str):
        bad("model", data["model"], "a model name (text)")


def load_analysis(path: str | Path) -> dict:
    """Read and check an ``analysis.json`` (or a folder holding one); layers sorted by index.

    When ``details.json`` lies beside it, its ``teacher_depth`` (the model's full depth, which may exceed the number
    of analysed layers) is added as ``"depth"``."""
    path = Path(path)
    if path.is_dir():
        if not (path / "analysis.json").is_file():
            raise UserError(f"{path} is a folder without analysis.json (nor best.safetensors, so not a run directory); "
                            "give an analysis.json, an analysis folder or a run directory")
        path = path / "analysis.json"
    if not path.is_file():
        raise UserError(f"{path} does not exist; give an analysis.json or a run directory")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc})") from None
    layers = data.get("layers") if isinstance(data, dict) else None
    if not isinstance(layers, list) or not layers or not all(isinstance(x, dict) and "index" in x for x in layers):
        raise UserError(f"{path} is not an analysis.json of `spectralkd analyze` (no 'layers' list with indices)")
    _check_analysis_types(path, data)
    data["layers"] = sorted(layers, key=lambda x: int(x["index"]))
    data.setdefault("spectra", {})
    details = path.parent / "details.json"
    if "depth" not in data and details.is_file():
        try:
            data["depth"] = int(json.loads(details.read_text())["teacher_depth"])
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError):
            pass
    return data
