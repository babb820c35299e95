"""The package's layers: imports flow one way (docs/DEVELOPING.md). Parsed with ``ast``, function-level imports
included, so a hidden upward import fails here instead of becoming an import cycle later."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "spectralkd"

# Top to bottom: a module may import from its own area and from areas listed before it, never after.
ORDER = ["errors", "paths", "runtime", "config", "spectral", "data", "features", "analysis", "distill", "sr", "__init__",
         "cli", "demo", "__main__"]
# Areas whose order among themselves does not matter are not allowed to meet at all where listed here.
FORBIDDEN = {("analysis", "distill"), ("spectral", "features"), ("spectral", "data"), ("spectral", "runtime")}
# sr may take from distill only the loss.
ALLOWED_FROM = {("sr", "distill"): {"spectralkd.distill.losses"}}


def area_of(module: str) -> str:
    parts = module.split(".")
    assert parts[0] == "spectralkd"
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1] if len(parts) > 1 else parts
    return ".".join(parts) if parts != ["spectralkd", "__init__"] else "spectralkd"


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every ``import``/``from ... import`` of spectralkd in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    pkg = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "spectralkd"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this module's package
                base = pkg.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "spectralkd":
                continue
            # `from spectralkd.x import y`: y may itself be a module (spectralkd.x.y) or a name of spectralkd.x
            for a in node.names:
                sub = PACKAGE.parent.joinpath(*f"{mod}.{a.name}".split("."))
                is_module = sub.is_dir() or sub.with_suffix(".py").is_file()
                out.append((node.lineno, f"{mod}.{a.name}" if is_module else mod))
    return out


def violations() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = area_of(module_name(path))
        for line, target in imports_of(path):
            there = area_of(target)
            where = f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}"
            if there == here:
                continue
            if (here, there) in FORBIDDEN:
                found.append(f"{where} ({here} must not import {there})")
            elif ORDER.index(there) > ORDER.index(here):
                found.append(f"{where} (upward: {here} is below {there})")
            elif (here, there) in ALLOWED_FROM and not any(
                    target == ok or target.startswith(ok + ".") for ok in ALLOWED_FROM[(here, there)]):
                found.append(f"{where} ({here} may import from {there} only {sorted(ALLOWED_FROM[(here, there)])})")
    return found


def test_no_upward_imports():
    assert violations() == []


def test_checker_catches_an_upward_import(tmp_path):
    # The checker itself must be able to fail: plant a runtime module that imports distill.
    fake = tmp_path / "spectralkd"
    (fake / "runtime").mkdir(parents=True)
    (fake / "distill").mkdir()
    (fake / "sr").mkdir()
    (fake / "runtime" / "bad.py").write_text("def f():\n    from spectralkd.distill.trainer import run\n")
    (fake / "sr" / "worse.py").write_text("from spectralkd.distill import model_setup\nfrom ..distill.losses import x\n")
    (fake / "distill" / "model_setup.py").write_text("")
    (fake / "distill" / "ok.py").write_text("from spectralkd.runtime import io\nfrom . import losses\n")
    globals()["PACKAGE"], saved = fake, PACKAGE
    try:
        found = violations()
    finally:
        globals()["PACKAGE"] = saved
    assert sorted(found) == [
        "spectralkd/runtime/bad.py:2 imports spectralkd.distill.trainer (upward: runtime is below distill)",
        "spectralkd/sr/worse.py:1 imports spectralkd.distill.model_setup (sr may import from distill only "
        "['spectralkd.distill.losses'])",
    ]


@pytest.mark.parametrize("area", ["runtime", "config", "spectral", "data", "features", "analysis", "distill", "sr"])
def test_every_area_exists(area):
    assert (PACKAGE / area).is_dir() or (PACKAGE / f"{area}.py").is_file()
