"""Extract an ImageFolder tarball once into the cache, refusing members that would escape the target.

Extraction is bounded: the sizes the tar headers declare are summed as the headers are read, and the archive is
refused (before anything is written) once the total passes ``SPECTRALKD_MAX_EXTRACT_RATIO`` × the archive's size
(default 100; at least 64 MiB is always allowed), ``SPECTRALKD_MAX_EXTRACT_BYTES`` (default 256 GiB; suffixes K, M,
G, T accepted) or the free space of the cache's disk.
"""
from __future__ import annotations

import errno
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


DEFAULT_MAX_RATIO = 100.0
DEFAULT_MAX_BYTES = 256 << 30
MIN_ALLOWED_BYTES = 64 << 20  # a tiny archive may always expand this far (small image sets compress well)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _env_number(name: str, default: float, integer: bool) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        if integer:
            unit = text[-1].upper() if text[-1].upper() in "KMGT" else ""
            value: float = int(float(text[: len(text) - len(unit)]) * _UNITS[unit])
        else:
            value = float(text)
    except ValueError:
        value = -1
    if not value > 0 or value != value or value == float("inf"):
        allowed = "a whole number of bytes > 0 (suffix K, M, G or T allowed)" if integer else "a number > 0"
        raise UserError(f"environment variable {name}={text!r} is not valid; expected {allowed}")
    return value


def extract_limit(archive_size: int) -> tuple[int, str]:
    """(bytes an archive of ``archive_size`` bytes may expand to, which limit that is) from the environment."""
    ratio = _env_number("SPECTRALKD_MAX_EXTRACT_RATIO", DEFAULT_MAX_RATIO, integer=False)
    cap = int(_env_number("SPECTRALKD_MAX_EXTRACT_BYTES", DEFAULT_MAX_BYTES, integer=True))
    by_ratio = max(int(ratio * archive_size), MIN_ALLOWED_BYTES)
    if cap <= by_ratio:
        return cap, f"SPECTRALKD_MAX_EXTRACT_BYTES={cap}"
    return by_ratio, f"{ratio:g} x the archive's size, SPECTRALKD_MAX_EXTRACT_RATIO"


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


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


def _checked_members(archive: Path, tar: tarfile.TarFile, archive_size: int, base: Path) -> list[tarfile.TarInfo]:
    """Every member, checked as its header is read (so a bomb is refused before its data is even decompressed)."""
    limit, which = extract_limit(archive_size)
    free = shutil.disk_usage(base).free
    total = 0
    files: set[str] = set()
    members = []
    for member in tar:  # lazily: the next header is read only after this one passed
        _check_member(archive, member)
        if member.islnk() and member.linkname.rstrip("/") not in files:
            raise UserError(f"archive {archive} has a hard link '{member.name}' to '{member.linkname}', which is not "
                            "a file earlier in the archive; refusing to extract")
        if member.isreg():
            files.add(member.name.rstrip("/"))
            total += member.size
            if total > limit:
                raise UserError(f"archive {archive} ({_human(archive_size)}) expands to more than {_human(limit)} "
                                f"(the limit: {which}); refusing to extract (raise the limit if it is genuine)")
            if total > free:
                raise UserError(f"archive {archive} expands to more than {_human(total)} but only {_human(free)} "
                                f"are free in {base}; refusing to extract (set SPECTRALKD_CACHE to a larger disk)")
        members.append(member)
    return members


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
                members = _checked_members(archive, tar, stat.st_size, base)
                tar.extractall(tmp, members=members, filter="data")
        except (tarfile.TarError, EOFError, OSError, KeyError) as exc:
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                raise UserError(f"no space left on device while extracting {archive} into {base}; "
                                "free space or set SPECTRALKD_CACHE to a larger disk") from None
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
