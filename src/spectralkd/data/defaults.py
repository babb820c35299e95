"""The default data when a command gets no ``--data``: shared CIFAR-10 if present, else the generated set."""
from __future__ import annotations

import sys
from pathlib import Path

from spectralkd.data.synthetic import synthetic_imagefolder
from spectralkd.paths import shared_path

CIFAR10_ARCHIVE = "cifar10-jpg.tar.gz"


def shared_cifar10() -> Path | None:
    return shared_path(CIFAR10_ARCHIVE)


def default_data(notice: bool = True) -> Path:
    """Path of the default data set, with a one-line notice on stderr saying which one it is."""
    cifar = shared_cifar10()
    if cifar is not None:
        if notice:
            print(f"spectralkd: no --data given; using the shared CIFAR-10 at {cifar}", file=sys.stderr)
        return cifar
    root = synthetic_imagefolder()
    if notice:
        print(f"spectralkd: no --data given and no shared CIFAR-10 found; using the generated image set at {root}",
              file=sys.stderr)
    return root
