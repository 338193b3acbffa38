"""Plain-text tables for terminals: fixed columns, long cells wrapped, no colour codes."""

from __future__ import annotations

import shutil
import sys
import textwrap
from collections.abc import Sequence


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], max_width: int | None = None) -> str:
    """Columns sized to their content; on a terminal, the widest column wraps to fit it.

    Piped output is never wrapped, so `grep` and `less -S` see one row per line.
    """
    if max_width is None:
        max_width = max(80, shutil.get_terminal_size().columns) if sys.stdout.isatty() else 1 << 30
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(str(cell)))
    gaps = 2 * (len(headers) - 1)
    while sum(widths) + gaps > max_width:
        widest = max(range(len(widths)), key=widths.__getitem__)
        if widths[widest] <= 12:
            break
        widths[widest] -= 1
    lines = [_line(headers, widths), _line(["-" * w for w in widths], widths)]
    for row in rows:
        wrapped = [textwrap.wrap(str(cell), widths[i]) or [""] for i, cell in enumerate(row)]
        for k in range(max(len(w) for w in wrapped)):
            lines.append(_line([w[k] if k < len(w) else "" for w in wrapped], widths))
    return "\n".join(line.rstrip() for line in lines)


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=False))
