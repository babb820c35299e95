"""Extract an ImageFolder tarball once into the cache, refusing members that would escape the target."""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from spectralkd.errors import UserError, one_line
from spectralkd.paths import cache_dir

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def is_archive(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and name.endswith(ARCHIVE_SUFFIXES)


def _check_member(archive: Path, member: tarfile.TarInfo) -> None:
    name = member.name
    parts = PurePosixPath(name).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise UserError(f"archive {archive} has an unsafe member '{name}' (absolute path or '..'); refusing to extract")
    if member.issym() or member.islnk():
        target = member.linkname
        if target.startswith("/") or ".." in PurePosixPath(target).parts:
            raise UserError(f"archive {archive} has a link '{name}' pointing outside ('{target}'); refusing to extract")
    if member.isdev():
        raise UserError(f"archive {archive} has a device file '{name}'; refusing to extract")


def extract_once(archive: Path, root: Path | None = None) -> Path:
    """Extract ``archive`` into ``<cache>/extracted/<name>-<key>`` once and return that folder.

    The key depends on the archive's absolute path, size and mtime, so a changed archive is extracted afresh.
    Extraction goes to a temporary folder that is renamed when complete, so an interrupted run never leaves a
    half-extracted tree that later runs would trust.
    """
    archive = Path(archive).resolve()
    stat = archive.stat()
    key = hashlib.sha1(f"{archive}|{stat.st_size}|{int(stat.st_mtime)}".encode()).hexdigest()[:12]
    base = Path(root) if root else cache_dir() / "extracted"
    base.mkdir(parents=True, exist_ok=True)
    stem = archive.name.split(".")[0]
    target = base / f"{stem}-{key}"
    if target.is_dir():
        return target
    tmp = Path(tempfile.mkdtemp(prefix=f".{stem}-", dir=base))
    try:
        try:
            with tarfile.open(archive) as tar:
                members = tar.getmembers()
                for member in members:
                    _check_member(archive, member)
                tar.extractall(tmp, members=members, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise UserError(f"archive {archive} cannot be read: {one_line(exc)}") from None
        try:
            os.replace(tmp, target)
        except OSError:
            if not target.is_dir():  # another process won the race only if target now exists
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
