"""Spectral dynamics over training (config ``monitor``): the student's per-layer measures on a fixed probe batch.

With ``monitor.every = N > 0``, each student's measures (intensity L(X), RMS, channel entropy, high-frequency ratio,
SVD rank — :func:`spectralkd.analysis.measures.probe_measures`, the computation of ``spectralkd analyze``) of *every*
block/stage map are taken at epoch 0 (the initial weights), every N epochs and at the last epoch, on the same
``monitor.probe_images`` images: the first ones, class-interleaved, of the validation split — the held-out training
images when ``data.holdout > 0``, else ``<data>/val`` — with the evaluation transform. All blocks are measured (not
only the distilled ones) so that ``spectralkd compare`` can overlay each epoch's curve on the teacher's analysis at
relative depth, exactly as it overlays the final weights. One JSON object per recorded epoch goes to ``RUN/dynamics.jsonl``::

    {"epoch": 0, "split": "holdout", "holdout": 500, "holdout_seed": 0, "probe_images": 64, "weights": "model",
     "model": "resnet18", "aligned_layers": [1, 3] | null, "measure_s": 0.4,
     "layers": [{"index", "shape", "intensity", "entropy", "rms", "svd_rank_99", "high_freq_ratio"}, ...]}

The record of an epoch is written before that epoch's checkpoint, and :meth:`spectralkd.runtime.run.Run.jsonl` trims
the file to the checkpoint's epoch on resume, so a resumed run neither repeats nor loses records. Main process only;
measuring uses no random numbers, so a monitored run trains exactly as an unmonitored one.
"""
from __future__ import annotations

import sys
import time

import torch

from spectralkd.analysis.measures import probe_measures
from spectralkd.analysis.outputs import layer_entry
from spectralkd.data import ImageFiles, eval_transform
from spectralkd.distill.data_setup import DataBundle, interleaved_by_class
from spectralkd.distill.loop import Student
from spectralkd.errors import UserError

DYNAMICS = "dynamics.jsonl"


def probe_batch(data: DataBundle, count: int) -> torch.Tensor:
    """The first ``count`` validation images in class-interleaved order, evaluation-transformed, as one tensor."""
    items = data.val_items or []
    if not items:
        raise UserError("monitor.every > 0 needs validation images for the probe batch; the validation split is empty")
    dataset = ImageFiles(items, eval_transform(data.data_cfg))
    order = interleaved_by_class([label for _, label in items])[:count]
    return torch.stack([dataset[i][0] for i in order])


class Monitor:
    """Writes each student's dynamics records (main process); build it with :meth:`start`."""

    def __init__(self, every: int, epochs: int, images: torch.Tensor, where: dict, logs: dict):
        self.every, self.epochs, self.images, self.where, self.logs = every, epochs, images, where, logs

    @classmethod
    def start(cls, students: list[Student], data: DataBundle) -> "Monitor | None":
        """Trim every student's dynamics.jsonl to its checkpoint; when monitoring, record epoch 0 of new students."""
        logs = {id(s): s.run.jsonl(DYNAMICS) for s in students}
        cfg = students[0].run.cfg
        every = int(cfg["monitor"]["every"] or 0)
        if not every or not students[0].run.env.is_main:
            return None
        holdout = int(cfg["data"]["holdout"] or 0)
        where = {"split": "holdout", "holdout": holdout, "holdout_seed": int(cfg["data"]["holdout_seed"])} \
            if holdout else {"split": "val"}
        monitor = cls(every, int(cfg["epochs"]), probe_batch(data, int(cfg["monitor"]["probe_images"])), where, logs)
        print(f"spectralkd: monitor: per-layer measures every {every} epoch(s) on {monitor.images.shape[0]} "
              f"{'held-out' if holdout else 'val'} images → <run>/{DYNAMICS}", file=sys.stderr)
        for s in students:
            if s.run.position == 0:
                monitor.record(s, 0)
        return monitor

    def due(self, epoch: int) -> bool:
        return epoch == 0 or epoch % self.every == 0 or epoch == self.epochs

    def record(self, s: Student, epoch: int) -> None:
        """Measure ``s``'s student (its weights, not the EMA) after ``epoch`` epochs, if that epoch is due."""
        if not self.due(epoch):
            return
        model, start = s.training.task.student, time.perf_counter()
        was_training = model.training
        try:
            layers = [layer_entry(m) for m in probe_measures(model, self.images, device=s.training.device)]
            error = None
        except UserError as exc:  # e.g. non-finite maps: noted in the record, training goes on
            layers, error = [], str(exc)
            print(f"spectralkd: monitor{' [' + s.name + ']' if s.name else ''}: epoch {epoch}: {exc}", file=sys.stderr)
        finally:
            model.train(was_training)
        aligned = s.training.task.student_layers
        record = {"epoch": epoch, **self.where, "probe_images": int(self.images.shape[0]), "weights": "model",
                  "model": s.run.cfg["model"]["name"],
                  "aligned_layers": list(aligned) if aligned and all(isinstance(i, int) for i in aligned) else None,
                  "measure_s": round(time.perf_counter() - start, 3), "layers": layers}
        self.logs[id(s)].write({**record, "error": error} if error else record)
