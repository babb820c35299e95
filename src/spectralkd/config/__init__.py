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
from spectralkd.errors import UserError
from spectralkd.runtime.io import atomic_write_text


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
        raise UserError(f"config file {path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of keys, got {type(data).__name__}")
    return data


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


def save_config(cfg: dict, path: str | Path) -> None:

    atomic_write_text(Path(path), yaml.safe_dump(cfg, sort_keys=False))


def get(cfg: dict, dotted: str, default: Any = None) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node
