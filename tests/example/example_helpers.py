"""Helpers of the example's generator tests: reading the CSV files it writes."""

from __future__ import annotations

import csv
from pathlib import Path

SCALE = 0.05  # 250 physicians: every kind of noise shows, fast enough for unit tests


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def all_rows(paths: list[Path]) -> list[dict[str, str]]:
    return [row for p in paths for row in read_rows(p)]
