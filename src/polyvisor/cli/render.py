"""Human output: aligned tables, key/value blocks and trees; machine output: JSON text.

A deliberately small renderer so the CLI needs nothing beyond click.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["dump_json", "key_values", "table", "tree"]


def _width(text: str) -> int:
    # East Asian wide characters take two terminal cells; combining marks take none.
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    # A newline or tab inside a cell would break the alignment of every row below it.
    return str(value).replace("\r", " ").replace("\n", " ").replace("\t", " ")


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * max(width - _width(text), 0)
    return fill + text if right else text + fill


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, right: Iterable[int] = ()) -> str:
    """Return rows under headers in columns two spaces apart; columns listed in ``right`` are right-aligned."""
    right_columns = set(right)
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [_width(header) for header in headers]
    for row in cells:
        for index, text in enumerate(row):
            widths[index] = max(widths[index], _width(text))
    lines = []
    for row in [list(headers), *cells]:
        padded = [_pad(text, widths[i], i in right_columns) for i, text in enumerate(row)]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def key_values(pairs: Iterable[tuple[str, object]]) -> str:
    """Return ``key: value`` lines with the values aligned."""
    items = [(key, _cell(value)) for key, value in pairs]
    width = max((_width(key) for key, _ in items), default=0)
    return "\n".join(f"{_pad(key + ':', width + 1, False)} {value}".rstrip() for key, value in items)


def tree(nodes: Sequence[tuple[int, str]]) -> list[str]:
    """Return lines drawing a tree given (depth, text) pairs in depth-first order; roots have depth 0."""
    depths = [depth for depth, _ in nodes]
    last = []
    for i, depth in enumerate(depths):
        is_last = True
        for later in depths[i + 1 :]:
            if later <= depth:
                is_last = later < depth
                break
        last.append(is_last)
    ancestors: dict[int, bool] = {}
    lines = []
    for (depth, text), is_last in zip(nodes, last, strict=True):
        ancestors[depth] = is_last
        if depth == 0:
            lines.append(text)
            continue
        rails = "".join("    " if ancestors.get(level, True) else "│   " for level in range(1, depth))
        lines.append(rails + ("└── " if is_last else "├── ") + text)
    return lines


def dump_json(data: Any) -> str:
    """Return ``data`` as indented JSON text, keys in the order the records define them."""
    return json.dumps(data, indent=2, ensure_ascii=False)
