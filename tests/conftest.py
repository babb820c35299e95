import importlib.util
import os
from pathlib import Path

import pytest
import torch

from spectralkd.paths import shared_data_dir

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Each test session gets its own cache unless SPECTRALKD_CACHE is set (extractions, generated data)."""
    if "SPECTRALKD_CACHE" not in os.environ:
        os.environ["SPECTRALKD_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder (../shared/data); tests using it skip cleanly when it is absent."""
    root = shared_data_dir()
    if root is None:
        pytest.skip("shared data folder ../shared/data is absent (set SPECTRALKD_SHARED_DATA to use it)")
    return root


@pytest.fixture(scope="session")
def synthetic_root():
    """The generated 10-class 32 px ImageFolder set (small), created once per session."""
    from spectralkd.data import synthetic_imagefolder

    return synthetic_imagefolder(train_per_class=20, val_per_class=5)


def run_cli(*args: str):
    """Run the CLI in-process → (exit code, stdout, stderr) via capsys-free capture."""
    import contextlib
    import io

    from spectralkd.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse errors
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def cli():
    """``cli("analyze", "--model", ...)`` → (exit code, stdout, stderr), run in-process."""
    return run_cli


@pytest.fixture
def sk(monkeypatch):
    """The real CLI entry (UserError → exit 2) with only the sr commands registered."""
    from spectralkd import cli as cli_module

    monkeypatch.setattr(cli_module, "COMMAND_MODULES", ("spectralkd.sr.cli",))
    return cli_module.main


def load_benchmark(name: str):
    """The script ``benchmarks/<name>.py`` imported as a module (benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
