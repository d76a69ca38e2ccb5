"""What `effnet scale`, `effnet benchmark` and the solver's table share: the number and
variant parsers, and the text and CSV writers for a list of dataclass rows.

Light to import (argparse, csv and the scaling arithmetic; no torch), so a command's `--help` and its argument
errors print at once.
"""

from __future__ import annotations

import argparse
import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import astuple, fields
from typing import Any

from effnet_lightning.model import scaling as sc

__all__ = ["csv_table", "positive", "real", "text_table", "variant"]


def real(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a real number such as 0, 0.5 or -2, got {text!r}") from None


def positive(text: str) -> float:
    value = real(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive multiplier such as 1.4, got {text!r}")
    return value


def variant(text: str) -> str:
    try:
        return sc.official(text).name
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def text_table(header: str, lines: Iterable[str], notes: Iterable[str] = ()) -> str:
    """The header, a rule as wide as it, one line per row, then the notes that explain the columns."""
    return "\n".join([header, "-" * len(header), *lines, *notes])


def csv_table(row_type: type, rows: Sequence[Any]) -> str:
    """A header of `row_type`'s field names, then one line per dataclass row; None is written as empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([f.name for f in fields(row_type)])
    for row in rows:
        writer.writerow(["" if v is None else v for v in astuple(row)])
    return out.getvalue().rstrip("\n")
