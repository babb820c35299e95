"""``spectralkd compare`` as a library call: inputs (analysis.json files or run directories) → compare folder."""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Sequence

import yaml

from spectralkd.analysis.compare.dynamics import DYNAMICS, dynamics_similarity, read_dynamics
from spectralkd.analysis.compare.measures import compare, load_analysis
from spectralkd.analysis.compare.plots import dynamics_plot, measures_plot, spectra_plot
from spectralkd.analysis.compare.report import write_compare
from spectralkd.config.classifier import defaults
from spectralkd.errors import UserError
from spectralkd.analysis.pipeline import analyze_to_dir
from spectralkd.data import default_data
from spectralkd.runtime.checkpoint import load_weights
from spectralkd.features import create_model, load_into


def _run_pairs(card: dict) -> dict | None:
    """The layer pairs a run aligned: the card's resolved ids (``None`` there: no feature term, e.g. logit KD only);
    for a card without that key, explicit ids in its config when its feature term was on. Pairs given as module
    names cannot be matched to the analysed block indices: ``None`` (layers are then paired by relative depth)."""
    def ints(ids) -> bool:
        return isinstance(ids, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in ids)

    if "pairs" in card:
        p = card["pairs"]
        if isinstance(p, dict) and p.get("student_ids") and ints(p["student_ids"]) and ints(p.get("teacher_ids")):
            return {k: [int(x) for x in p[k]] for k in ("student_ids", "teacher_ids")}
        return None
    cfg = card.get("config") if isinstance(card.get("config"), dict) else {}
    d = {**defaults()["distill"], **(cfg.get("distill") or {})}  # absent keys: the trainer's defaults
    s, t = d["student_ids"], d["teacher_ids"]
    feature_term = d["mode"] != "none" and float(d["w_fft"]) * float(d["beta"]) != 0
    if (cfg.get("teacher") or {}).get("name") and feature_term and ints(s) and ints(t) and s:
        return {"student_ids": [int(x) for x in s], "teacher_ids": [int(x) for x in t]}
    return None


def safe_name(label: str) -> str:
    """A label as one harmless folder-name component: labels are text, never paths (``../x`` stays inside)."""
    name = re.sub(r"[^A-Za-z0-9._+-]+", "_", str(label)).strip("._") or "input"
    return name[:80]


def _run_data(run_dir: Path, data_info: dict):
    """The data a run trained on: the card's ``path`` (older cards), else the run's own config.yaml."""
    data = data_info.get("path")
    if data in (None, "", "None") and (run_dir / "config.yaml").is_file():
        try:
            data = ((yaml.safe_load((run_dir / "config.yaml").read_text()) or {}).get("data") or {}).get("path")
        except yaml.YAMLError:
            data = None
    return default_data() if data in (None, "", "None") or not isinstance(data, str) else data


def analyze_run(run_dir: Path, out: Path, num_images: int, batch_size: int, device="cpu",
                progress: bool = True) -> tuple[dict, dict | None]:
    """Analyse a training/distillation run's best weights on the run's validation data → (analysis, pairs)."""

    best = run_dir / "best.safetensors"
    if not best.is_file():
        raise UserError(f"run directory {run_dir} has no best.safetensors (has it finished an epoch?)")
    state, card = load_weights(best)
    if not card.get("model"):
        raise UserError(f"{best} has no model card naming the model (expected {best.name}.json beside it)")
    model = create_model(card["model"], model_kwargs=card.get("model_kwargs") or {})
    load_into(model, state, str(best))
    data_info = card.get("data") or {}
    data = _run_data(run_dir, data_info)
    overrides = {k: data_info.get(k) for k in ("mean", "std", "interpolation", "crop_pct")}
    written = analyze_to_dir(model, card["model"], data, out, num_images=num_images, batch_size=batch_size,
                         input_size=data_info.get("input_size"), data_overrides=overrides, device=device,
                         progress=progress, settings={"run_dir": str(run_dir), "weights": str(best),
                                                      "val_top1": card.get("top1")})
    analysis = dict(written.analysis)
    pairs = _run_pairs(card)
    if pairs:
        analysis["pairs"] = pairs
    return analysis, pairs


def _dynamics(teacher: dict, inputs: Sequence[str | Path], students: list[dict],
              pairs: Sequence[dict | None]) -> list[tuple[str, list[dict], dict]]:
    """Each student input that is a folder holding dynamics.jsonl: its per-epoch similarity to the teacher, added to
    its compare.json entry as ``dynamics``; (label, records, that entry) for the plot."""
    found = []
    for item, student, p in zip(inputs, students, pairs):
        path = Path(item) / DYNAMICS
        records = read_dynamics(path) if Path(item).is_dir() and path.is_file() else []
        if records:
            student["dynamics"] = dynamics_similarity(teacher, records, p, path)
            found.append((student["label"], records, student["dynamics"]))
    return found


def run_compare(inputs: Sequence[str | Path], labels: Sequence[str] | None, out: str | Path,
                num_images: int = 256, batch_size: int = 64, device="cpu", progress: bool = True) -> dict:
    """Compare the first input (the teacher) with the others; writes compare.json, plots and report.html (and, for
    student run directories with a dynamics.jsonl, dynamics.png and per-epoch numbers)."""
    out = Path(out)
    if len(inputs) < 2:
        raise UserError("compare needs at least two inputs: the teacher first, then one or more students")
    labels = list(labels) if labels else [Path(p).name if Path(p).is_dir() else Path(p).parent.name or str(p)
                                          for p in inputs]
    if len(labels) != len(inputs):
        raise UserError(f"--labels gives {len(labels)} names for {len(inputs)} inputs")
    analyses, pairs = [], []
    for i, (item, label) in enumerate(zip(inputs, labels)):
        path = Path(item)
        if path.is_dir() and (path / "best.safetensors").is_file():
            print(f"spectralkd compare: analysing run {path} ({label})", file=sys.stderr)
            analysis, p = analyze_run(path, out / "analyses" / f"{i}-{safe_name(label)}", num_images, batch_size,
                                      device, progress)
        else:
            analysis = load_analysis(path)
            p = analysis.get("pairs")
        analyses.append(analysis)
        pairs.append(p)
    result = compare(analyses, labels, pairs)
    out.mkdir(parents=True, exist_ok=True)
    plots = {"per-layer measures against relative depth": measures_plot(analyses, labels, out / "measures.png", pairs),
             "channel spectra of matched layers": spectra_plot(analyses, labels, out / "spectra.png", pairs)}
    over_epochs = _dynamics(analyses[0], inputs[1:], result["students"], pairs[1:])
    if over_epochs:
        plots["students over training epochs (dynamics.jsonl)"] = dynamics_plot(analyses[0], labels[0], over_epochs,
                                                                              out / "dynamics.png")
    json_path, html_path = write_compare(result, plots, out)
    result["files"] = {"json": str(json_path), "report": str(html_path)}
    return result
