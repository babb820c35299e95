"""The run object shared by both trainers (classifier ``train``/``distill`` and ``sr train``/``sr distill``).

A run directory holds ``config.yaml`` (the resolved config), ``log.jsonl`` (one JSON object per record),
``last.pt`` (everything needed to resume; weights-only loadable) and weights files (``best.safetensors`` and others)
with their model cards. :class:`Run` owns that folder:

* :meth:`Run.prepare` decides the folder, checks a resumption against the saved config (only the trainer's
  ``mutable`` keys may change) and reads ``last.pt`` — all before anything is written, so bad input leaves an
  existing run untouched. A folder whose run failed before its first checkpoint (``config.yaml`` but no
  ``last.pt``) is restartable: the same command starts it again, ``--resume`` starts it from scratch.
* :meth:`Run.start` locks the folder (a second process on the same folder is refused; the lock of a killed process
  is released by the kernel and taken over), removes temporary files left by a kill, writes ``config.yaml`` and
  trims the log to the resumed position.
* The log (``run.log.write``) goes to ``log.jsonl`` and, with ``log.tensorboard: true``, to TensorBoard.
* :meth:`Run.save` writes weights files first and ``last.pt`` last, each atomically, so a kill leaves the previous
  consistent state; :meth:`Run.check_finite` stops every process together on a non-finite loss.

The folder is written by the main process only; under ``torchrun`` the others follow through barriers.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

import torch
import yaml

from spectralkd.errors import UserError
from spectralkd.runtime.checkpoint import atomic_torch_save, load_training_state, save_weights, sync_card_sidecar
from spectralkd.runtime.distributed import DistEnv, all_reduce_sum, barrier, broadcast_object
from spectralkd.runtime.io import atomic_write_text
from spectralkd.runtime.runlog import JsonlLog
from spectralkd.runtime.tensorboard import TensorBoardLog

CONFIG = "config.yaml"
STATE = "last.pt"
LOG = "log.jsonl"
LOCK = ".lock"


class NonFiniteLoss(UserError):
    """The loss became NaN/inf; the run stops and the last checkpoint stays as it was."""


def flatten(cfg: dict, prefix: str = "", leaves: tuple[str, ...] = ("kwargs",)) -> dict:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; dicts under a key named in ``leaves`` stay whole (free-form kwargs)."""
    out = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key not in leaves:
            out.update(flatten(value, name + ".", leaves))
        else:
            out[name] = value
    return out


def changed_keys(saved: dict, cfg: dict, mutable: tuple[str, ...]) -> list[tuple[str, object, object]]:
    """(key, saved value, new value) for every key that differs and may not change."""
    before, after = flatten(saved), flatten(cfg)
    return [(k, before.get(k), after.get(k)) for k in list(after) + [k for k in before if k not in after]
            if after.get(k) != before.get(k) and k not in mutable]


def _temp_files(folder: Path) -> list[Path]:
    """Temporary files of :func:`spectralkd.runtime.io.atomic_write` (``.<name>.<random>.tmp``)."""
    return [p for p in folder.glob(".*.tmp") if p.is_file()]


class RunLock:
    """An exclusive ``flock`` on ``RUN/.lock`` held for the life of the process's run.

    The kernel drops the lock when its process dies (also on ``kill -9``), so a lock left by a killed process is
    stale by construction and simply taken over. The file records the holder's pid and host for the message.
    """

    def __init__(self, folder: Path):
        self.path = folder / LOCK
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = ""
            try:
                info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
                holder = f" by process {info.get('pid')} on {info.get('host')} since {info.get('since')}"
            except (ValueError, OSError):
                pass
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise UserError(f"run directory {self.path.parent} is in use{holder}; wait for that run to end "
                                "or stop it first") from None
            raise
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self.fd = fd

    def release(self) -> None:
        # The file stays (removing it would race with a process that opened it and waits to lock it); an unlocked
        # .lock file means nothing is training there.
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


class RunRecords:
    """The run's records: every one goes to ``log.jsonl`` and, with ``log.tensorboard: true``, its numeric values to
    TensorBoard scalars at the record's ``step_key`` (epoch or iteration)."""

    def __init__(self, jsonl: JsonlLog, step_key: str):
        self.jsonl, self.step_key, self.tensorboard = jsonl, step_key, None

    def write(self, record: dict) -> None:
        self.jsonl.write(record)
        if self.tensorboard is not None and self.step_key in record:
            self.tensorboard.write(record, self.step_key)

    def truncate_after(self, key: str, last_value) -> None:
        self.jsonl.truncate_after(key, last_value)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None


class Run:
    """One run directory, opened by :meth:`prepare` and written after :meth:`start` (see the module docstring)."""

    def __init__(self, path: Path, cfg: dict, env: DistEnv, state: dict | None, progress_key: str):
        self.path, self.cfg, self.env, self.state, self.progress_key = path, cfg, env, state, progress_key
        self.log = RunRecords(JsonlLog(path / LOG, enabled=env.is_main), progress_key)
        self.lock = RunLock(path)
        self.started = False

    # ---- before anything is written ----
    @classmethod
    def prepare(cls, cfg: dict, env: DistEnv, *, resume: str | Path | None, saved_cfg: dict | None,
                mutable: tuple[str, ...], default_name: str, progress_key: str,
                state_schema: dict | None = None) -> "Run":
        """The run to train in: a new folder (``cfg['out']`` or ``default_name``) or the one being resumed.

        ``saved_cfg`` is the resumed folder's ``config.yaml`` as loaded (with the trainer's defaults); ``cfg`` the
        config to continue with (the saved one plus overrides). ``progress_key`` names the position in ``last.pt``
        (``epoch`` or ``iter``); ``state_schema`` adds the types of other keys the trainer restores from it.
        """
        if resume is None:
            path = Path(broadcast_object(str(cfg.get("out") or default_name)))
            if (path / STATE).exists():
                raise UserError(f"run directory {path} already holds a run; continue it with --resume {path} "
                                "or choose another output folder")
            return cls(path, cfg, env, None, progress_key)
        path = Path(resume)
        if not (path / CONFIG).is_file():
            raise UserError(f"--resume {path}: not a run directory (it has no {CONFIG})")
        changed = changed_keys(saved_cfg or {}, cfg, mutable)
        if changed:
            key, old, new = changed[0]
            raise UserError(f"--resume {path}: config key '{key}' differs from the saved run ({old!r} → {new!r}); "
                            f"only {', '.join(mutable)} may change")
        state = None
        if (path / STATE).is_file():  # the keys the trainer restores, type-checked: one line for a damaged file
            state = load_training_state(path / STATE, {"model": dict, progress_key: int, **(state_schema or {})})
        elif env.is_main:
            print(f"spectralkd: {path} stopped before its first checkpoint; starting it again from the beginning",
                  file=sys.stderr)
        cfg["out"] = str(path)
        return cls(path, cfg, env, state, progress_key)

    @property
    def position(self) -> int:
        """Epochs or iterations already done (0 for a new run)."""
        return int(self.state[self.progress_key]) if self.state else 0

    # ---- writing ----
    def start(self) -> "Run":
        """Lock the folder, clean up after a kill, save the config, trim the log to the resumed position."""
        refused = None
        if self.env.is_main:
            self.path.mkdir(parents=True, exist_ok=True)
            try:
                self.lock.acquire()
            except UserError as exc:
                refused = str(exc)
        refused = broadcast_object(refused)  # every process stops together when the folder is in use
        if refused:
            raise UserError(refused)
        if self.env.is_main:
            for tmp in _temp_files(self.path):
                tmp.unlink(missing_ok=True)
            for weights in self.path.glob("*.safetensors"):
                sync_card_sidecar(weights)
            if self.state is None:  # a new run, or one restarted before its first checkpoint: no old records
                (self.path / LOG).unlink(missing_ok=True)
            write_config(self.cfg, self.path / CONFIG)
            self.log.truncate_after(self.progress_key, self.position)
            if (self.cfg.get("log") or {}).get("tensorboard"):  # the package is checked here, before any training
                self.log.tensorboard = TensorBoardLog(self.path / "tensorboard",
                                                      purge_step=self.position + 1 if self.state else None)
        self.started = True
        barrier()
        return self

    def jsonl(self, name: str) -> JsonlLog:
        """Another JSON-lines file of the run (e.g. ``dynamics.jsonl``), kept in step with ``log.jsonl``: removed for
        a new run (or one restarted before its first checkpoint), records beyond the resumed position dropped on
        resume. Written by the main process only; call after :meth:`start`, before writing the next checkpoint."""
        records = JsonlLog(self.path / name, enabled=self.env.is_main)
        if self.env.is_main:
            if self.state is None:
                records.path.unlink(missing_ok=True)
            records.truncate_after(self.progress_key, self.position)
        return records

    def save(self, state: dict, weights: dict[str, tuple[dict, dict]] | None = None) -> None:
        """Weights files (name → (state dict, model card)), then ``last.pt`` (main process only, each atomic)."""
        if not self.env.is_main:
            return
        for name, (tensors, card) in (weights or {}).items():
            save_weights(self.path / name, tensors, card)
        atomic_torch_save(state, self.path / STATE)

    def check_finite(self, loss: torch.Tensor, where: str, parts: dict | None = None) -> None:
        """Raise :class:`NonFiniteLoss` on every process when the loss is NaN/inf on any of them."""
        bad = torch.tensor([0.0 if torch.isfinite(loss.detach()).all() else 1.0])
        if self.env.distributed:
            all_reduce_sum(bad)
        if bad.item() > 0:
            detail = ", ".join(f"{k}={float(v):.4g}" for k, v in (parts or {}).items() if k != "loss")
            raise NonFiniteLoss(f"loss became non-finite ({float(loss.detach()):.4g}{'; ' + detail if detail else ''}) "
                                f"at {where}; run stopped, the last checkpoint is left as it was; lower optim.lr or "
                                "set optim.clip_grad")

    def close(self) -> None:
        self.log.close()
        self.lock.release()

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_config(cfg: dict, path: str | Path) -> None:
    """The resolved config as YAML (atomic)."""
    atomic_write_text(Path(path), yaml.safe_dump(cfg, sort_keys=False))
