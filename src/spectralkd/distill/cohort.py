"""Cohorts: several students trained on one data stream and one teacher pass per batch.

``spectralkd distill --config BASE.yaml --cohort COHORT.yaml --out OUT`` where ``COHORT.yaml`` lists the students as
config overrides with a name::

    cohort:
      - {name: spec, distill: {feature_loss: spectral}}
      - {name: mse,  distill: {feature_loss: feature_mse}}

Each student has its own optimizer, scheduler, EMA, log, checkpoints and run folder ``OUT/<name>/`` (a complete
run folder: ``spectralkd eval``/``compare`` read it as any other). ``OUT/cohort.yaml`` records the members, so
``spectralkd distill --resume OUT`` continues them all. Students may differ in loss, weights, layer pairs,
optimizer, schedule, EMA and architecture (``model``, ``optim``, ``sched``, ``ema``, ``distill``); everything else —
seed, data, augmentation, teacher, epochs, precision — is shared, and a cohort whose members differ there is refused.
Each student's model randomness has its own RNG stream, so a cohort member is the same student as one trained
alone with the same seed.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

from spectralkd.config import load_config, merge_config, read_yaml, run_config, set_values
from spectralkd.config.classifier import defaults
from spectralkd.distill.trainer import RunSpec, train_students
from spectralkd.errors import UserError
from spectralkd.runtime.io import atomic_write_text
from spectralkd.runtime.run import flatten

COHORT_FILE = "cohort.yaml"
PER_STUDENT = ("model.", "optim.", "sched.", "ema.", "distill.")  # sections a student may set; and its "out"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def is_cohort_dir(path: str | Path) -> bool:
    return (Path(path) / COHORT_FILE).is_file()


def read_cohort(path: str | Path) -> list[dict]:
    """The members of a cohort file: ``[{"name": ..., **overrides}]``, names unique and usable as folder names."""
    members = read_yaml(path).get("cohort")
    if not isinstance(members, list) or not members:
        raise UserError(f"cohort file {path} needs 'cohort:' with a list of students, e.g. "
                        "[{name: spec, distill: {feature_loss: spectral}}]")
    names = []
    for i, member in enumerate(members):
        if not isinstance(member, dict) or not isinstance(member.get("name"), str):
            raise UserError(f"cohort file {path}: student {i + 1} needs a name, e.g. {{name: spec, ...}}")
        if not NAME.match(member["name"]):
            raise UserError(f"cohort file {path}: student name '{member['name']}' must be 1-64 letters, digits, "
                            "'_', '-' or '.' (it names the student's run folder)")
        names.append(member["name"])
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"cohort file {path}: student name '{duplicates[0]}' appears more than once")
    return members


def _check_shared(specs: list[RunSpec]) -> None:
    """Everything outside the per-student sections must be equal across the cohort."""
    first = flatten(specs[0].cfg)
    for spec in specs[1:]:
        other = flatten(spec.cfg)
        for key in sorted(set(first) | set(other)):
            if key.startswith(PER_STUDENT) or key == "out":
                continue
            if first.get(key) != other.get(key):
                raise UserError(f"cohort student '{spec.name}' sets {key}={other.get(key)!r} but '{specs[0].name}' "
                                f"has {first.get(key)!r}; a cohort shares seed, data, augmentation, teacher and "
                                "schedule length (students may differ in model, optim, sched, ema and distill)")


def cohort_specs(command: str, config: str | None, cohort: str | None, overrides: list[str] | None,
                 resume: str | None, data: str | None, out: str | None) -> tuple[Path, list[RunSpec]]:
    """The cohort folder and one :class:`RunSpec` per student (new, or resumed from ``OUT/<name>``)."""
    overrides = overrides or []
    values = {"data.path": None if data is None else str(data)}
    if resume is not None:
        if cohort is not None or config is not None:
            raise UserError("--resume continues a cohort with its saved cohort.yaml and configs; change keys with --set")
        folder = Path(resume)
        specs = []
        for member in read_cohort(folder / COHORT_FILE):
            cfg, saved = run_config(command, None, overrides, defaults(), folder / member["name"], values)
            specs.append(RunSpec(member["name"], cfg, saved, folder / member["name"], str(folder / member["name"])))
    else:
        if config is None:
            raise UserError(f"spectralkd {command} --cohort needs --config BASE.yaml (the students' shared settings)")
        members = read_cohort(cohort)
        folder = Path(out or f"runs/{command}-cohort-{time.strftime('%Y%m%d-%H%M%S')}")
        base = load_config(config, overrides, defaults())
        specs = []
        for member in members:
            cfg = merge_config(base, {k: v for k, v in member.items() if k != "name"}, defaults(),
                               where=f"cohort student '{member['name']}': ")
            run_folder = folder / member["name"]
            set_values(cfg, {**values, "out": str(run_folder)})
            specs.append(RunSpec(member["name"], cfg, None, None, str(run_folder)))
    _check_shared(specs)
    return folder, specs


def train_cohort(command: str, config: str | None = None, cohort: str | None = None,
                 overrides: list[str] | None = None, resume: str | None = None, data: str | None = None,
                 out: str | None = None, argv: list[str] | None = None) -> dict:
    """Train a cohort (see the module docstring); returns ``{"cohort": folder, "students": {name: summary}}``."""
    folder, specs = cohort_specs(command, config, cohort, overrides, resume, data, out)

    def record_members() -> None:  # once every student's run folder is checked and started
        atomic_write_text(folder / COHORT_FILE, "# the students of this cohort; each one's resolved config is "
                          "<name>/config.yaml\ncohort:\n" + "".join(f"  - {{name: {s.name}}}\n" for s in specs))

    summaries = train_students(command, specs, argv, on_start=record_members)
    return {"cohort": str(folder), "students": {s.name: summary for s, summary in zip(specs, summaries)}}
