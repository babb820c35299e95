"""One JSON object per line (``log.jsonl``), written by the main process only."""
from __future__ import annotations

import json
import math
from pathlib import Path

from spectralkd.runtime.io import atomic_write_text


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class JsonlLog:
    def __init__(self, path: str | Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            handle.write(json.dumps(_clean(record)) + "\n")
            handle.flush()

    def truncate_after(self, key: str, last_value) -> None:
        """Drop records whose ``key`` is beyond ``last_value`` (used on resume, so a log never repeats epochs)."""
        if not self.enabled or not self.path.is_file():
            return
        kept = [r for r in read_jsonl(self.path) if r.get(key, -1) <= last_value]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line torn by a crash is skipped, the rest stays readable
    return out
