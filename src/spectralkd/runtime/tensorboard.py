"""TensorBoard scalars from the run log's records (``log.tensorboard: true``; off by default).

:class:`TensorBoardLog` wraps ``torch.utils.tensorboard.SummaryWriter``: every numeric value of a ``log.jsonl``
record becomes a scalar at the record's step (its ``epoch`` or ``iter``); nested dicts are named with ``/``
(``{"val": {"Set5": {"psnr": 33.1}}}`` → ``val/Set5/psnr``) and numeric lists by index (``name/0``, ``name/1``...).
The ``tensorboard`` package is imported only when the log is enabled.
"""
from __future__ import annotations

import math
from pathlib import Path

from spectralkd.errors import UserError

MISSING_PACKAGE = ("log.tensorboard: true needs the tensorboard package, which is not installed: "
                   "pip install 'spectralkd[tensorboard]' (or set log.tensorboard=false)")


def flatten_scalars(record: dict, prefix: str = "", skip: tuple[str, ...] = ()) -> dict[str, float]:
    """``{tag: float}`` for every int/float (not bool) in ``record``, nested dicts and lists included."""
    out: dict[str, float] = {}

    def visit(name: str, value) -> None:
        if isinstance(value, bool) or value is None:
            return
        if isinstance(value, (int, float)):
            out[name] = float(value)
        elif isinstance(value, str):
            # the JSONL log spells non-finite floats as strings ("nan", "inf"); keep them as the numbers they are
            if value.lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
                out[name] = float(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                visit(f"{name}/{key}" if name else str(key), item)
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                visit(f"{name}/{i}", item)
        elif hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # 0-d tensor / numpy scalar
            visit(name, value.item())

    for key, value in record.items():
        if key not in skip:
            visit(f"{prefix}{key}", value)
    return out


class TensorBoardLog:
    """Scalars of run-log records as TensorBoard event files in ``log_dir`` (a no-op when not ``enabled``).

    On ``--resume`` pass ``purge_step`` = the first step the resumed run will log: TensorBoard then hides what an
    interrupted run had written from that step on, so no step appears twice.
    """

    def __init__(self, log_dir: str | Path, enabled: bool = True, purge_step: int | None = None):
        self.log_dir = Path(log_dir)
        self._writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError(MISSING_PACKAGE) from None
        if self.log_dir.exists() and not self.log_dir.is_dir():
            raise UserError(f"TensorBoard folder {self.log_dir} is a file; remove it or set log.tensorboard=false")
        self._writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge_step)

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    def write(self, record: dict, step_key: str = "epoch") -> int:
        """Add every numeric value of ``record`` at step ``record[step_key]``; returns how many scalars were written.

        Records without the step key (start/end events) are skipped.
        """
        if self._writer is None:
            return 0
        step = record.get(step_key)
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not math.isfinite(step):
            return 0
        scalars = flatten_scalars(record, skip=(step_key,))
        for tag, value in scalars.items():
            self._writer.add_scalar(tag, value, global_step=int(step))
        self._writer.flush()
        return len(scalars)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> "TensorBoardLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
