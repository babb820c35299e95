"""What a model card says about its data: a name, the class list and a content hash — never a path of the machine.

``data_identity`` is cheap: an archive is hashed by its bytes (CIFAR-10's 170 MB tarball in well under a second per
100 MB), a folder by the sorted list of its files' relative paths and sizes (a ``stat`` per file, no reading), which
changes whenever a file is added, removed, renamed or changes size.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

from spectralkd.data.archive import is_archive
from spectralkd.errors import UserError


def _hash_archive(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash_folder(root: Path) -> str:
    entries = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = Path(folder).relative_to(root).as_posix()
        for name in files:
            if name.startswith("."):
                continue
            entries.append((f"{rel}/{name}" if rel != "." else name, os.stat(os.path.join(folder, name)).st_size))
    digest = hashlib.sha256()
    for rel, size in sorted(entries):
        digest.update(f"{rel}\t{size}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def data_identity(path: str | os.PathLike, classes: Sequence[str] | None = None) -> dict:
    """``{"name", "classes", "hash", "hashed"}`` of a data folder or archive, for a model card.

    ``name`` is the folder's or archive's own name (no parent folders); ``hash`` is ``sha256:<hex>`` of the
    archive's bytes, or of the folder's sorted ``relative path<TAB>size`` lines; ``hashed`` says which.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"data path {path} does not exist")
    path = path.resolve()
    if path.is_dir():
        digest, hashed = _hash_folder(path), "file names and sizes"
    elif is_archive(path):
        digest, hashed = _hash_archive(path), "archive bytes"
    else:
        raise UserError(f"data path {path} is neither a folder nor a .tar/.tar.gz/.tgz archive")
    return {"name": path.name, "classes": list(classes) if classes is not None else None,
            "hash": f"sha256:{digest}", "hashed": hashed}
