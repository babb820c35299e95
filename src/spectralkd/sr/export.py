"""ONNX export of SR models with dynamic batch, height and width, and a check against onnxruntime.

Exporter: ``torch.onnx.export(..., dynamo=True)`` (the torch.export-based exporter, the default since torch 2.9;
it needs the ``onnx`` and ``onnxscript`` packages, the ``[onnx]`` extra). The legacy TorchScript exporter also
works for MDBN but is deprecated. The graph has one input ``lr`` (N×3×H×W float32 RGB in [0, 1]) and one output
``sr`` (N×3×sH×sW); values are not clamped, as in torch.
"""
from __future__ import annotations

import contextlib
import io
import logging
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from spectralkd.errors import UserError
from spectralkd.runtime.io import atomic_write_bytes

OPSET = 18  # the lowest opset the dynamo exporter has implementations for (no version conversion)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _need(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise UserError(f"ONNX export needs the '{module}' package: pip install 'spectralkd[onnx]'") from None


@contextlib.contextmanager
def _quiet():
    """torch.export logs graphs and guards to stderr when it fails; the caller gets one line instead."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(previous)


def _one_line(exc: BaseException) -> str:
    """The first line of the innermost cause (the real reason, e.g. a data-dependent branch or a missing op)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [ln.strip() for ln in _ANSI.sub("", str(exc)).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0][:200] if lines else ''}"


def _in_channels(model: nn.Module) -> int:
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return conv.in_channels if conv is not None else 3


def check_onnx_output_path(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise UserError(f"output {path} is a folder; give a file name such as {path / 'model.onnx'}")
    if path.suffix.lower() != ".onnx":
        raise UserError(f"output {path} should end in .onnx")
    return path


def export_onnx(model: nn.Module, out: str | Path, sample_size: tuple[int, int] = (32, 32)) -> Path:
    """Write ``model`` to ``out`` as ONNX with dynamic batch/height/width, written atomically. The model is put in
    float32, on the CPU and in eval mode (in place).

    UserError with one line when the model cannot be exported (or the packages are missing)."""
    out = check_onnx_output_path(out)
    _need("onnx")
    _need("onnxscript")
    model = model.float().cpu().eval()
    sample = torch.rand(1, _in_channels(model), *sample_size)
    dims = {0: torch.export.Dim("batch", min=1), 2: torch.export.Dim("height", min=1),
            3: torch.export.Dim("width", min=1)}
    try:
        with _quiet():
            program = torch.onnx.export(model, (sample,), None, dynamo=True, input_names=["lr"], output_names=["sr"],
                                        dynamic_shapes=(dims,), opset_version=OPSET, verbose=False,
                                        external_data=False, optimize=True)
            data = program.model_proto.SerializeToString()
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{type(model).__name__} cannot be exported to ONNX: {_one_line(exc)}") from None
    atomic_write_bytes(out, data)
    return out


def onnx_session(path: str | Path, threads: int | None = None):
    """An onnxruntime CPU session for ``path`` (``threads`` intra-op threads; None: onnxruntime's default)."""
    ort = _need("onnxruntime")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise UserError(f"onnxruntime cannot load {path}: {_one_line(exc)}") from None


def run_onnx(session, lr: torch.Tensor) -> torch.Tensor:
    """Run an onnxruntime session on an N×C×H×W float tensor."""
    (out,) = session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(lr.float().cpu().numpy())})
    return torch.from_numpy(out)


def verify_onnx(model: nn.Module, path: str | Path, sizes=((32, 32), (45, 27)), seed: int = 0) -> dict:
    """Max |Δ| between onnxruntime and the torch fp32 model on random inputs of each LR ``size`` (H, W):
    ``{"sizes": [...], "max_abs_diff": [...]}``; shapes must match exactly."""
    session = onnx_session(path)
    model = model.float().cpu().eval()
    in_ch = _in_channels(model)
    gen = torch.Generator().manual_seed(seed)
    diffs = []
    for h, w in sizes:
        x = torch.rand(1, in_ch, h, w, generator=gen)
        with torch.inference_mode():
            ref = model(x)
        got = run_onnx(session, x)
        if got.shape != ref.shape:
            raise UserError(f"{path}: onnxruntime output shape {tuple(got.shape)} differs from torch "
                            f"{tuple(ref.shape)} at LR {h}×{w}")
        diffs.append(float((got - ref).abs().max()))
    return {"sizes": [list(s) for s in sizes], "max_abs_diff": diffs}
