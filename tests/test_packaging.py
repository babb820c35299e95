"""Packaging: pyproject declares ranges (not pins), constraints.txt pins inside them, the wheel builds without warnings."""
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from spectralkd.paths import REPO_ROOT

PYPROJECT = REPO_ROOT / "pyproject.toml"
CONSTRAINTS = REPO_ROOT / "constraints.txt"
pytestmark = pytest.mark.skipif(not PYPROJECT.is_file(), reason="not a source checkout")


def _project() -> dict:
    return tomllib.loads(PYPROJECT.read_text())["project"]


def _pins() -> list[tuple[str, str]]:
    lines = [ln.strip() for ln in CONSTRAINTS.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return [tuple(ln.split("==")) for ln in lines]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_dependencies_are_ranges_that_the_constraints_satisfy():
    project = _project()
    pins = dict((_norm(n), v) for n, v in _pins())
    assert _pins()[0][0] == "torch"  # the Makefile installs torch first
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs += [Requirement(r) for extra in ("tensorboard", "onnx") for r in project["optional-dependencies"][extra]]
    for req in reqs:
        assert not any(s.operator in ("==", "===") for s in req.specifier), f"{req} is a pin, not a range"
        assert req.specifier, f"{req} has no lower bound"
        assert _norm(req.name) in pins, f"{req.name} is not pinned in constraints.txt"
        assert req.specifier.contains(Version(pins[_norm(req.name)])), f"constraints.txt {req.name} outside {req}"
    assert {"tensorboard", "onnx"} <= set(project["optional-dependencies"])
    assert any(r.startswith("spectralkd[") for r in project["optional-dependencies"]["test"])  # tests cover the extras


@pytest.mark.slow
def test_wheel_builds_without_warnings(tmp_path):
    import setuptools

    if Version(setuptools.__version__) < Version("77"):  # --no-build-isolation builds with this environment's
        pytest.skip(f"setuptools {setuptools.__version__} < 77 (pyproject's build requirement) installed here")
    src = tmp_path / "src-copy"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO_ROOT / name, src / name)
    shutil.copytree(REPO_ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "--no-index",
                           "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert not re.search(r"\bwarning|deprecat", output, re.IGNORECASE), output[-3000:]
    (wheel,) = (tmp_path / "dist").glob("spectralkd-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        names = zf.namelist()
    assert "License-Expression: MIT" in meta and "License-File: LICENSE" in meta
    assert re.search(r"^Requires-Dist: torch>=", meta, re.MULTILINE) and "torch==" not in meta
    assert any(n.endswith("spectralkd/distill/export.py") for n in names)
    assert any(n.endswith("licenses/LICENSE") for n in names)
