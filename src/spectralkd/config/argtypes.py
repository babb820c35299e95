"""argparse ``type=`` functions for numeric CLI flags, with the same ranges and wording as the config schema.

``p.add_argument("--crop-pct", type=fraction)`` refuses ``--crop-pct -1`` at parse time with
``argument --crop-pct: -1 is not allowed; expected a number in (0, 1]`` (exit status 2).
"""
from __future__ import annotations

import argparse
import math


def _number(text: str, expected: str, kind=float):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not allowed; expected {expected}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"'{text}' is not allowed; expected {expected}")
    return value


def _checked(kind, expected: str, ok):
    def parse(text: str):
        value = _number(text, expected, kind)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text} is not allowed; expected {expected}")
        return value

    parse.__name__ = expected  # argparse names the type in some messages
    return parse


nonneg_int = _checked(int, "an integer ≥ 0", lambda v: v >= 0)
pos_int = _checked(int, "an integer ≥ 1", lambda v: v >= 1)
fraction = _checked(float, "a number in (0, 1]", lambda v: 0 < v <= 1)      # crop_pct
unit = _checked(float, "a number in [0, 1]", lambda v: 0 <= v <= 1)          # mean entries (images in [0, 1])
pos_float = _checked(float, "a number > 0", lambda v: v > 0)                 # std entries
