"""Writing deliveries: one CSV per source and partition, formatted by DuckDB from NumPy columns.

Sources build their rows as NumPy arrays, one partition at a time, and hand them over with a
``select`` that turns codes into text (names, ids, dates). DuckDB writes the CSV, so no Python
object is made per row and memory stays bounded by the largest partition. The same columns and
``select`` always give the same bytes.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import numpy as np


@dataclass(frozen=True)
class Source:
    """One landing-zone feed: where its files go and what they hold."""

    name: str
    cadence: str  # daily | weekly | monthly | quarterly | rarely
    partition_format: str  # strftime of the partition folder under landing/<name>/
    columns: tuple[str, ...]
    description: str

    @property
    def file_name(self) -> str:
        return f"{self.name}.csv"

    def path(self, landing_dir: Path, partition: date) -> Path:
        """File of one partition, e.g. landing/rx_weekly/2026-10-31/rx_weekly.csv."""
        folder = partition.strftime(self.partition_format)
        return Path(landing_dir) / self.name / folder / self.file_name


# lookup lists used in selects, by name; each connection declares them once as variables, so
# a delivery's select stays short to parse however long the list (943 zip3 cities)
_LOOKUPS: dict[str, tuple[str, ...]] = {}
_LOOKUP_USE = re.compile(r"getvariable\('(lookup_[0-9a-f]+)'\)")


def sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sql_list(values: Iterable[str]) -> str:
    """A DuckDB list literal."""
    return "[" + ", ".join(sql_text(v) for v in values) + "]"


def pick(values: Sequence[str], code: str) -> str:
    """SQL for the text of a 0-based ``code`` column in ``values``."""
    values = tuple(values)
    name = "lookup_" + hashlib.sha1("\0".join(values).encode()).hexdigest()[:16]
    _LOOKUPS[name] = values
    return f"getvariable('{name}')[{code} + 1]"


class Landing:
    """Writes deliveries under ``landing_dir`` and keeps count of files, rows and seconds."""

    def __init__(self, landing_dir: Path) -> None:
        self.root = Path(landing_dir)
        self.con = duckdb.connect(config={"preserve_insertion_order": True})
        self.files: dict[str, list[Path]] = defaultdict(list)
        self.rows: dict[str, int] = defaultdict(int)
        self.declared: set[str] = set()
        self.checked: set[str] = set()
        self.seconds: dict[str, float] = defaultdict(float)

    def write(
        self, source: Source, partition: date, columns: dict[str, np.ndarray], select: str
    ) -> Path:
        """Write one delivery: ``select`` reads the arrays as table ``t`` and must yield the
        source's columns in order. Any file already at that path is replaced."""
        path = source.path(self.root, partition)
        path.parent.mkdir(parents=True, exist_ok=True)
        for name in set(_LOOKUP_USE.findall(select)) - self.declared:
            self.con.execute(f"set variable {name} = {sql_list(_LOOKUPS[name])}")
            self.declared.add(name)
        self.con.register("t", {k: np.ascontiguousarray(v) for k, v in columns.items()})
        try:
            if source.name not in self.checked:
                found = tuple(self.con.sql(select).columns)
                if found != source.columns:
                    raise ValueError(f"{source.name}: select yields {found}, not {source.columns}")
                self.checked.add(source.name)
            copied = self.con.execute(
                f"copy ({select}) to {sql_text(str(path))} (format csv, header true, delimiter ',')"
            ).fetchone()[0]
        finally:
            self.con.unregister("t")
        self.files[source.name].append(path)
        self.rows[source.name] += int(copied)
        return path

    @contextmanager
    def timed(self, source: Source) -> Iterator[None]:
        """Charge the time spent inside to ``source`` (drawing its rows and writing them)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[source.name] += time.perf_counter() - started

    def close(self) -> None:
        self.con.close()
