"""Spectral dynamics in ``spectralkd compare``: a student run's ``dynamics.jsonl`` (config ``monitor`` of the
classifier trainer) against the teacher, epoch by epoch.

Each record holds the student's per-layer measures of every block/stage map on a fixed probe batch after some
epoch (0 = the initial weights). Every record is compared with the teacher's analysis exactly as the final weights
are (:func:`~spectralkd.analysis.compare.measures.compare_pair`: correlation and distance of each measure's curve at
relative depth, and the intensity distance over aligned / not-aligned layers), so the numbers show whether training
moved the student's curves towards the teacher's or away from them.
"""
from __future__ import annotations

import math
from pathlib import Path

from spectralkd.analysis.compare.measures import MEASURES, compare_pair
from spectralkd.errors import UserError
from spectralkd.runtime.runlog import read_jsonl

DYNAMICS = "dynamics.jsonl"  # the file the trainer writes (spectralkd.distill.monitor.DYNAMICS)


def _number(v) -> float | None:
    """A measure from the file: numbers as they are; the log's text for a non-finite float ("nan", "inf") as it."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and v.lower() in ("nan", "inf", "-inf"):
        return float(v)
    return None


def _usable(record) -> bool:
    """A well-formed record (its measures turned into floats in place)."""
    epoch = record.get("epoch") if isinstance(record, dict) else None
    layers = record.get("layers") if isinstance(record, dict) else None
    if not (isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0 and isinstance(layers, list)
            and layers and all(isinstance(x, dict) and isinstance(x.get("index"), int) for x in layers)):
        return False
    for x in layers:
        for name in MEASURES:
            x[name] = _number(x.get(name))
    return all(x[name] is not None for x in layers for name in MEASURES)


def read_dynamics(path: str | Path) -> list[dict]:
    """The records of a ``dynamics.jsonl`` sorted by epoch (the last one kept for an epoch written twice); records
    that only note a measuring error are left out. A record of the wrong form: one line naming the file."""
    path = Path(path)
    by_epoch: dict[int, dict] = {}
    for n, record in enumerate(read_jsonl(path), 1):
        if isinstance(record, dict) and record.get("error"):
            continue
        if not _usable(record):
            raise UserError(f"{path}: record {n} is not a dynamics record of `spectralkd distill` with monitor "
                            "(expected an epoch ≥ 0 and a list of layers with index, intensity, rms, entropy and "
                            "high_freq_ratio)")
        by_epoch[record["epoch"]] = {**record, "layers": sorted(record["layers"], key=lambda x: x["index"])}
    return [by_epoch[e] for e in sorted(by_epoch)]


def as_analysis(record: dict) -> dict:
    """A dynamics record in the shape of an analysis.json (no spectra), for the comparison functions."""
    return {"model": record.get("model"), "num_images": record.get("probe_images"), "layers": record["layers"],
            "spectra": {}}


def _finite(record: dict) -> bool:
    return all(math.isfinite(x[name]) for x in record["layers"] for name in MEASURES)


def dynamics_similarity(teacher: dict, records: list[dict], pairs: dict | None, source: str | Path) -> dict:
    """compare.json's ``dynamics`` entry of one student: per recorded epoch, each measure's correlation and
    (relative) distance to the teacher's curve, and the intensity distance over aligned / not-aligned layers."""
    epochs = []
    for record in records:
        if not _finite(record):
            epochs.append({"epoch": record["epoch"], "non_finite": True})
            continue
        res = compare_pair(teacher, as_analysis(record), pairs)
        epochs.append({"epoch": record["epoch"], "measures": res["measures"],
                       "intensity_distance": res["intensity_distance"]})
    first = records[0] if records else {}
    probes = sorted({r.get("probe_images") for r in records if r.get("probe_images") is not None})
    return {"file": str(source), "split": first.get("split"), "probe_images": probes[0] if len(probes) == 1 else probes,
            "depth": len(first.get("layers", [])), "epochs": epochs}
