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


def portable_path(path: str | os.PathLike, base: str | os.PathLike | None = None) -> str:
    """A path as it may appear in a file we ship: relative to ``base`` (the output folder) or to the working
    directory when below it, else only its last two parts (``folder/file``); never an absolute path."""
    p = Path(path)
    if not p.is_absolute():
        return str(path)
    for root in (base, Path.cwd()):
        if root is None:
            continue
        try:
            return str(p.relative_to(Path(root).resolve())) or "."
        except ValueError:
            pass
        try:
            return str(p.resolve().relative_to(Path(root).resolve())) or "."
        except (ValueError, OSError):
            pass
    return str(Path(*p.parts[-2:])) if len(p.parts) > 2 else p.name


def _portable_text(text: str, base) -> str:
    if os.path.isabs(text) and "\n" not in text:
        return portable_path(text, base)
    if "/" not in text or not any(ch.isspace() for ch in text):
        return text
    import shlex

    try:
        tokens = shlex.split(text)
    except ValueError:
        return text
    changed = False
    for i, tok in enumerate(tokens):
        key, eq, value = tok.partition("=") if tok.startswith("-") or "=" in tok else ("", "", tok)
        if os.path.isabs(value):
            tokens[i] = f"{key}{eq}{portable_path(value, base)}"
            changed = True
    return shlex.join(tokens) if changed else text


def portable(obj, base: str | os.PathLike | None = None):
    """``obj`` (JSON-like) with every absolute path in its strings (also inside command lines) made portable by
    :func:`portable_path`; everything else unchanged."""
    if isinstance(obj, dict):
        return {k: portable(v, base) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [portable(v, base) for v in obj]
    if isinstance(obj, os.PathLike):
        return portable_path(obj, base)
    if isinstance(obj, str):
        return _portable_text(obj, base)
    return obj
