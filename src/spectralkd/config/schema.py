"""Typed config schemas (pydantic v2): the declared type and range of every key, and one-line errors.

A schema is a pydantic model whose fields carry the default and a description; :func:`defaults_of` derives the
defaults dict from it and :func:`validate` checks a merged config once, returning a plain nested dict (numbers
coerced: ``epochs`` an int, ``optim.lr`` a float, lists as lists). A wrong type or value raises one
:class:`~spectralkd.errors.UserError` naming the key, the value and what is allowed.
"""
from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from spectralkd.errors import UserError


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):  # YAML true/false is not a number
        raise ValueError("a boolean is not a number")
    return value


_NUM = BeforeValidator(_no_bool)
Int = Annotated[int, _NUM]
PosInt = Annotated[int, _NUM, Field(ge=1)]
NonNegInt = Annotated[int, _NUM, Field(ge=0)]
Float = Annotated[float, _NUM]
PosFloat = Annotated[float, _NUM, Field(gt=0)]
NonNegFloat = Annotated[float, _NUM, Field(ge=0)]
Prob = Annotated[float, _NUM, Field(ge=0, le=1)]
Fraction = Annotated[float, _NUM, Field(gt=0, le=1)]           # (0, 1]
OpenUnit = Annotated[float, _NUM, Field(gt=0, lt=1)]           # (0, 1)
HalfOpenUnit = Annotated[float, _NUM, Field(ge=0, lt=1)]       # [0, 1)
Device = Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?)$")]
MeanList = Annotated[list[Prob], Field(min_length=1)]
StdList = Annotated[list[PosFloat], Field(min_length=1)]
DEVICE_TEXT = "auto, cpu, cuda or cuda:N"


class Section(BaseModel):
    """A config section: unknown keys refused, numbers given as text (``1e-3``) coerced, no NaN/inf."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, coerce_numbers_to_str=True,
                              validate_default=True)


class Defaults(dict):
    """A defaults dict that remembers its schema, so ``load_config(path, sets, defaults())`` validates against it."""

    schema: type[BaseModel] | None = None


def defaults_of(schema: type[BaseModel]) -> Defaults:
    """The defaults of ``schema`` as a nested dict (a :class:`Defaults` carrying ``schema``)."""
    out = Defaults(schema().model_dump(mode="python"))
    out.schema = schema
    return out


# --- what is allowed, in words (from the JSON schema of the model) ---------------------------------------------

def _num(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _range(node: dict) -> str:
    def pick(open_keys, closed_keys):
        for key in open_keys:
            if key in node:
                return node[key], True
        for key in closed_keys:
            if key in node:
                return node[key], False
        return None, False

    # JSON-schema names, or pydantic's own ones where a before-validator keeps it from translating them
    lo, lo_open = pick(("exclusiveMinimum", "gt"), ("minimum", "ge"))
    hi, hi_open = pick(("exclusiveMaximum", "lt"), ("maximum", "le"))
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{_num(lo)}, {_num(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f" {'>' if lo_open else '≥'} {_num(lo)}"
    if hi is not None:
        return f" {'<' if hi_open else '≤'} {_num(hi)}"
    return ""


def _describe(node: dict, defs: dict) -> str:
    if "x-allowed" in node:
        return node["x-allowed"]
    if "$ref" in node:
        sub = defs[node["$ref"].rsplit("/", 1)[-1]]
        return f"a mapping with keys {', '.join(sub.get('properties', {}))}"
    if "anyOf" in node:
        parts = [_describe(n, defs) for n in node["anyOf"]]
        parts = ["null"] + [p for p in parts if p != "null"] if "null" in parts else parts
        return " or ".join(parts)
    if "const" in node:
        return repr(node["const"]) if not isinstance(node["const"], str) else node["const"]
    if "enum" in node:
        return "one of " + ", ".join(str(v) for v in node["enum"])
    kind = node.get("type")
    if kind == "null":
        return "null"
    if kind == "integer":
        return "an integer" + _range(node)
    if kind == "number":
        return "a number" + _range(node)
    if kind == "boolean":
        return "true or false"
    if kind == "string":
        return "text" + (f" matching {node['pattern']}" if "pattern" in node else "")
    if kind == "array":
        n_min, n_max = node.get("minItems"), node.get("maxItems")
        count = (f"{n_min} " if n_min == n_max and n_min is not None else
                 f"at least {n_min} " if n_min and n_min > 1 and n_max is None else "")
        item = _describe(node.get("items", {}), defs) if node.get("items") else "values"
        item = re.sub(r"^an? ", "", item)
        item = re.sub(r"^(integer|number)", r"\1s", item)
        return f"a list of {count}{item}".replace("  ", " ")
    if kind == "object":
        return "a mapping"
    return "a valid value"


def _walk(schema: type[BaseModel], loc: tuple) -> tuple[list[str], dict, dict]:
    """The config key path a pydantic error location points into, and that key's JSON-schema node."""
    js = schema.model_json_schema()
    defs = js.get("$defs", {})
    node, path = js, []
    for part in loc:
        target = defs[node["$ref"].rsplit("/", 1)[-1]] if "$ref" in node else node
        props = target.get("properties")
        if not isinstance(part, str) or not props or part not in props:
            break
        path.append(part)
        node = props[part]
    return path, node, defs


def validate(cfg: dict, schema: type[BaseModel]) -> dict:
    """``cfg`` checked against ``schema`` → a plain nested dict with coerced values; else one-line UserError."""
    try:
        return schema.model_validate(cfg).model_dump(mode="python")
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        path, node, defs = _walk(schema, tuple(err["loc"]))
        value: Any = cfg
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if err["type"] == "extra_forbidden":  # normally refused earlier, by load_config's merge
            raise UserError(f"unknown config key '{'.'.join(map(str, err['loc']))}'") from None
        if err["type"] == "value_error" and node.get("x-allowed") is None and "assertion" not in err["msg"].lower():
            why = err["msg"].removeprefix("Value error, ")
        else:
            why = None
        key = ".".join(path) or "(top level)"
        allowed = _describe(node, defs) if path else "a mapping of keys"
        shown = _show(value)
        if why and not why.startswith("a boolean"):
            raise UserError(f"config key '{key}': {shown} is not allowed; {why}") from None
        raise UserError(f"config key '{key}': {shown} is not allowed; expected {allowed}") from None


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return str(value)


class LogSection(Section):
    """``log``: where a run's records go besides log.jsonl (both trainers)."""
    tensorboard: bool = Field(False, description="also write log.jsonl's scalars to RUN/tensorboard at each record's "
                                                 "epoch or iteration (needs the tensorboard package)")
