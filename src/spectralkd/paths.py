"""Where shared data and caches live."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path | None:
    """The shared data folder (``../shared/data`` beside the project), or None when absent.

    ``SPECTRALKD_SHARED_DATA`` overrides the location.
    """
    env = os.environ.get("SPECTRALKD_SHARED_DATA")
    candidates = [Path(env)] if env else [REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    return None


def shared_path(*parts: str) -> Path | None:
    """A file or folder inside the shared data folder, or None when it is not there."""
    root = shared_data_dir()
    if root is None:
        return None
    path = root.joinpath(*parts)
    return path if path.exists() else None


def cache_dir() -> Path:
    """Cache for extracted archives and generated data (``SPECTRALKD_CACHE`` or ``~/.cache/spectralkd``)."""
    path = Path(os.environ.get("SPECTRALKD_CACHE") or Path.home() / ".cache" / "spectralkd")
    path.mkdir(parents=True, exist_ok=True)
    return path
