"""YAML run configs: defaults, a file, and ``--set key=value`` overrides.

Keys are nested dicts addressed with dots (``optim.lr=1e-3``). A value after ``=`` is parsed as YAML, so
``--set data.mean=[0.5,0.5,0.5]`` gives a list and ``--set ema=false`` a bool. Unknown keys are refused with the
list of allowed keys, so a typo never silently does nothing. When the defaults come from a typed schema
(``config.classifier.defaults()``, ``config.sr.defaults()``; see ``config/schema.py``), the merged config is then
checked once against it: a wrong type or value raises one line naming the key, the value and what is allowed, and
the result is a plain nested dict with coerced values (``epochs`` an int, ``optim.lr`` a float).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from spectralkd.config.schema import defaults_of, validate
from spectralkd.errors import UserError, one_line


def _merge(base: dict, update: dict, where: str, schema: dict | None) -> dict:
    """Merge ``update`` into ``base``. ``schema`` is the matching node of the defaults: keys outside it are refused;
    an empty or absent schema node (e.g. ``model.kwargs: {}``) is free-form."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        name = f"{where}{key}"
        if schema and key not in schema:
            allowed = ", ".join(sorted(schema)) or "(none)"
            raise UserError(f"unknown config key '{name}'; allowed at this level: {allowed}")
        sub = schema.get(key) if schema else None
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, f"{name}.", sub if isinstance(sub, dict) else None)
        else:
            out[key] = value
    return out


def parse_override(item: str) -> dict:
    """``"a.b=3"`` → ``{"a": {"b": 3}}``."""
    if "=" not in item:
        raise UserError(f"--set expects key=value, got '{item}'")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise UserError(f"--set has an empty key in '{item}'")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise UserError(f"--set {key}: value '{raw}' is not valid YAML ({exc.__class__.__name__})") from None
    out: dict = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"config file {path} is not valid YAML: {one_line(exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of keys, got {type(data).__name__}")
    return data


def merge_config(cfg: dict, update: dict, defaults: dict, where: str = "") -> dict:
    """``cfg`` with the nested ``update`` merged in, unknown keys refused like a config file's (``where`` prefixes
    the message, e.g. the cohort student it came from)."""
    schema = getattr(defaults, "schema", None)
    try:
        merged = _merge(cfg, update, "", defaults)
        return validate(merged, schema) if schema is not None else merged
    except UserError as exc:
        raise UserError(f"{where}{exc}") from None


def load_config(path: str | Path | None, overrides: list[str] | None = None, defaults: dict | None = None,
                schema=None) -> dict:
    """Defaults ← file ← overrides. With ``defaults`` given, unknown keys raise :class:`UserError`; with a schema
    (``schema``, or the one ``defaults`` carries), wrong types and values too."""
    schema = schema or getattr(defaults, "schema", None)
    if defaults is None and schema is not None:
        defaults = defaults_of(schema)
    defaults = dict(defaults or {})
    cfg = copy.deepcopy(defaults)
    if path is not None:
        cfg = _merge(cfg, read_yaml(path), "", defaults)
    for item in overrides or []:
        cfg = _merge(cfg, parse_override(item), "", defaults)
    return validate(cfg, schema) if schema is not None else cfg


def run_config(command: str, config: str | Path | None, overrides: list[str] | None, defaults: dict,
               resume: str | Path | None = None, values: dict | None = None,
               require_config: bool = True) -> tuple[dict, dict | None]:
    """(config, saved config) of a training command, shared by both trainers.

    A new run: defaults ← ``config`` file ← ``--set`` overrides ← ``values`` (dotted keys set as given, e.g. the
    ``--data`` path). ``--resume RUN_DIR``: the run's saved ``config.yaml`` is the file (no ``config`` allowed), and
    the saved config is returned too, for the resume check against the keys that may change. Without
    ``require_config`` a new run may come from the defaults and overrides alone.
    """
    if resume is None:
        if config is None and require_config:
            raise UserError(f"spectralkd {command} needs --config FILE.yaml (or --resume RUN_DIR)")
        return set_values(load_config(config, overrides, defaults), values), None
    if config is not None:
        raise UserError("--resume continues a run with its saved config.yaml; change keys with --set, not --config")
    saved_path = Path(resume) / "config.yaml"
    if not saved_path.is_file():
        raise UserError(f"--resume {resume}: not a run directory (it has no config.yaml)")
    saved = load_config(saved_path, [], defaults)
    return set_values(load_config(saved_path, overrides, defaults), values), saved


def set_values(cfg: dict, values: dict | None) -> dict:
    """Set dotted keys to the given values as they are (``None`` values are skipped); returns ``cfg``."""
    for dotted, value in (values or {}).items():
        if value is None:
            continue
        node = cfg
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return cfg


def get(cfg: dict, dotted: str, default: Any = None) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node
