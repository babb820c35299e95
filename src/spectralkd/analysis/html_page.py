"""The shared pieces of the self-contained HTML reports of ``analyze`` and ``compare``: the page frame and its CSS,
number formatting, and plots embedded as base64 PNG."""
from __future__ import annotations

import base64
import html
from pathlib import Path

CSS = """
body { font-family: system-ui, sans-serif; max-width: %dpx; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; } th { background: #f3f3f3; }
tr.pick { background: #fff1dc; }
td.ci, small.ci { color: #555; white-space: nowrap; }
img { max-width: 100%%; } figure { margin: 1em 0; } figcaption { color: #666; font-size: 0.85em; }
dt { font-weight: bold; margin-top: 0.6em; } code { background: #f3f3f3; padding: 0 3px; }
p.footer { color: #666; font-size: 0.85em; }
"""


def page(title: str, body: str, width: int = 1100) -> str:
    """A complete HTML document; ``title`` is escaped here, ``body`` is HTML the caller escaped."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>\n'
            f"<style>{CSS % width}</style></head><body>\n{body}\n</body></html>\n")


def fmt(value, digits: int = 4) -> str:
    """A table cell: ``–`` for missing, ``digits`` significant digits for floats, escaped text otherwise."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return html.escape(str(value))


def embed_png(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(alt)}</figcaption></figure>")
