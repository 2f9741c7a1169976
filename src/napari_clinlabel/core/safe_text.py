"""Text leaving the package for other programs: CSV cells (formula injection) and plot labels.

Usable from every core layer, like :mod:`napari_clinlabel.core.errors`.
"""

from __future__ import annotations

import re
from typing import Any

# OWASP "CSV Injection": a cell a spreadsheet may read as a formula or a DDE command
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def csv_cell(value: Any) -> Any:
    """``value`` safe for a CSV cell: text starting with ``= + - @`` TAB or CR gets a leading
    ``'`` (OWASP); numbers, and text that is just a number (``-1.5``), are left as they are.
    Line breaks inside text become LF (quoted by the writer), so no CR can split a row."""
    if not isinstance(value, str):
        return value
    # a bare CR is no line end to Python's writer (LF is), so it would go out unquoted and split
    # the row for a reader: every line break becomes LF, which the writer quotes
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    if not value.startswith(_FORMULA_START) or _NUMBER.fullmatch(value):
        return text
    return "'" + text


def csv_row(values: list[Any]) -> list[Any]:
    """:func:`csv_cell` applied to every cell of a row."""
    return [csv_cell(v) for v in values]


def plot_text(text: Any) -> str:
    """``text`` for a matplotlib label or title: ``$`` escaped so it never starts mathtext."""
    # matplotlib counts "$" minus "\$": with every "$" escaped the count is 0, never mathtext,
    # and it shows "\$" as "$", so the text appears as written
    return str(text).replace("$", r"\$")


__all__ = ["csv_cell", "csv_row", "plot_text"]
