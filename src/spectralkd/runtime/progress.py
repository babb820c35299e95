"""Progress for both trainers: a tqdm bar on an interactive run, or a one-line status every few minutes for runs in
the background (whose stderr goes to a log file), never both."""
from __future__ import annotations

import sys
import time

from tqdm import tqdm


class Progress:
    """``update(n, **postfix)`` per step; ``status(text)`` is printed only without a bar, at most every
    ``status_every_s`` seconds (``None``: never)."""

    def __init__(self, total: int, desc: str, bar: bool, initial: int = 0, status_every_s: float | None = None,
                 leave: bool = False):
        self.bar = tqdm(total=total, initial=initial, desc=desc, leave=leave, disable=not bar, file=sys.stderr,
                        mininterval=1.0)
        self.desc, self.has_bar = desc, bar
        self.status_every_s = None if bar else status_every_s
        self.last_status = time.perf_counter()

    def update(self, n: int = 1, **postfix) -> None:
        self.bar.update(n)
        if postfix:
            self.bar.set_postfix(**postfix, refresh=False)

    def status(self, text) -> None:
        """Print ``text`` (a string, or a function giving it, called only when due) if a status line is due."""
        if self.status_every_s is None:
            return
        now = time.perf_counter()
        if now - self.last_status >= self.status_every_s:
            self.last_status = now
            print(f"{self.desc}: {text() if callable(text) else text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
