"""Command line: ``spectralkd <command> ...`` (also ``python -m spectralkd``).

Thin: each area registers its sub-commands (argument parsing only) and calls its library functions.
Bad input surfaces as one line on stderr and exit status 2; no traceback.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import sys

from spectralkd.errors import UserError, is_out_of_memory, one_line

# Each module defines ``register(subparsers)``, adding parsers whose defaults carry ``func(args) -> int``.
COMMAND_MODULES = (
    "spectralkd.analysis.cli",
    "spectralkd.analysis.robustness_cli",
    "spectralkd.distill.cli",
    "spectralkd.analysis.compare.cli",
    "spectralkd.sr.cli",
    "spectralkd.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spectralkd",
        description="Spectral analysis and spectral knowledge distillation of vision models; MDBN super-resolution.",
    )
    from spectralkd import __version__

    parser.add_argument("--version", action="version", version=f"spectralkd {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"spectralkd {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"spectralkd {args.command}: error:{where}: {exc.strerror or one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        what = "no space left on device" if exc.errno == errno.ENOSPC else "disk quota exceeded"
        where = f" while writing {exc.filename}" if exc.filename else ""
        print(f"spectralkd {args.command}: error: {what}{where}; files written before are intact "
              "(checkpoints are replaced only when complete)", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        where = "GPU" if type(exc).__name__ == "OutOfMemoryError" or "CUDA" in str(exc) else "RAM"
        print(f"spectralkd {args.command}: error: out of memory ({where}); use a smaller batch, input or model "
              "(files written before are intact)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"spectralkd {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
