"""What every benchmark writes beside its figures: the machine, versions, command and date, and a JSON file under
benchmarks/results/ that accumulates sections (so separate ``--only`` / ``--skip-*`` invocations add up).

A result file looks like ``{"benchmark": NAME, "sections": {SECTION: {"header": ..., "settings": ...,
"results": ..., "output": [printed lines]}}, ...}``; each section carries its own header because sections may come
from different runs. ``tools/fill_bench_tables.py`` turns these files into the tables of docs/benchmarks.md and the
README.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# A run counts as taken on a loaded machine when the 1-minute load average, not counting the benchmark's own
# threads, exceeds this share of the cores (the "idle" runs of docs/benchmarks.md had ≈ 1 on 2 cores with the
# benchmark itself running 1 thread).
LOADED_SHARE = 0.75


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def is_loaded(load_start: list[float] | None, load_end: list[float] | None, threads: int) -> bool | None:
    """True when other work was using the cores (see LOADED_SHARE); None when the load average is unknown.

    The 1-minute load average at the end describes the run's last minute (minus the benchmark's own threads); the
    one at the start still carries the tail of whatever ran before (a job paused for the benchmark decays over about
    a minute), so it decides only when the end reading is missing."""
    cores = os.cpu_count() or 1
    if load_start is None and load_end is None:
        return None
    others = (load_end[0] - threads) if load_end else load_start[0]
    return others > LOADED_SHARE * cores


def git_commit() -> dict:
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": bool(status) if status is not None else None}


def versions() -> dict:
    import numpy
    import timm
    import torch

    import spectralkd

    return {"python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__,
            "numpy": numpy.__version__, "spectralkd": spectralkd.__version__, **git_commit()}


def command() -> str:
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(ROOT)
    except ValueError:
        pass
    return shlex.join(["python", str(script), *sys.argv[1:]])


def header(threads: int) -> dict:
    """Machine, thread count, versions, the exact command and the date, taken at the start of a run."""
    return {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "command": command(),
            "threads": threads,
            "machine": {"cpu_model": cpu_model(), "cores": os.cpu_count(), "arch": platform.machine(),
                        "loadavg_start": loadavg()},
            "versions": versions()}


def finish(head: dict) -> dict:
    """Add the load average at the end and the ``loaded`` verdict to a header from :func:`header`."""
    machine = head["machine"]
    machine["loadavg_end"] = loadavg()
    machine["loaded"] = is_loaded(machine["loadavg_start"], machine["loadavg_end"], head["threads"])
    return head


class Recorder:
    """print() that also keeps the lines, so the JSON holds the printed text beside the numbers."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.extend(text.splitlines() or [""])


def section(head: dict, settings: dict, results: dict, output: list[str]) -> dict:
    return {"header": finish(head), "settings": settings, "results": results, "output": list(output)}


def merge(path: Path, benchmark: str, sections: dict, derive: Callable[[dict], None] | None = None) -> dict:
    """Put ``sections`` into the result file at ``path`` (keeping its other sections and keys), let ``derive``
    recompute summary keys from the sections, and write it atomically. Returns the file's content."""
    from spectralkd.runtime.io import atomic_write_text

    path = Path(path)
    data = json.loads(path.read_text()) if path.exists() else {}
    data["benchmark"] = benchmark
    data.setdefault("sections", {}).update(sections)
    if derive is not None:
        derive(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"→ {path}", flush=True)
    return data
