"""Seeding and RNG state capture/restore (weights-only-loadable: tensors, lists and ints only)."""
from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int, rank: int = 0) -> None:
    seed = int(seed) + int(rank)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_rng_states() -> dict:
    version, state, gauss = random.getstate()
    np_state = np.random.get_state()
    out = {
        "python": [version, list(state), gauss],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_states(states: dict) -> None:
    version, state, gauss = states["python"]
    random.setstate((version, tuple(state), gauss))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class RngStream:
    """A private torch RNG stream (CPU, and CUDA when available): ``with stream:`` swaps it in for the block and
    keeps where it got to, so what runs inside (a model's dropout / drop-path) neither consumes nor depends on the
    global stream (the data pipeline's). One stream per student makes a student's training independent of what else
    runs in the same process (a cohort of students, or none)."""

    def __init__(self, seed: int):
        generator = torch.Generator().manual_seed(int(seed))
        self.cpu = generator.get_state()
        self.cuda = None
        if torch.cuda.is_available():
            saved = torch.cuda.get_rng_state_all()
            torch.cuda.manual_seed_all(int(seed))
            self.cuda = torch.cuda.get_rng_state_all()
            torch.cuda.set_rng_state_all(saved)
        self._outside = None

    def __enter__(self) -> "RngStream":
        self._outside = (torch.get_rng_state(), torch.cuda.get_rng_state_all() if self.cuda is not None else None)
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)
        return self

    def __exit__(self, *exc) -> None:
        self.cpu = torch.get_rng_state()
        torch.set_rng_state(self._outside[0])
        if self.cuda is not None:
            self.cuda = torch.cuda.get_rng_state_all()
            torch.cuda.set_rng_state_all(self._outside[1])
        self._outside = None
