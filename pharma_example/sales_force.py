"""The field force: zip3 -> territory -> district -> region, one rep per territory.

Territories are runs of consecutive zip3s holding about the same number of physicians, so the
field force grows with the scale (one territory per ~300 physicians, at most 600) while each
rep's workload does not. Every quarter the alignment changes a little: a few boundary zip3s
move to the neighbouring territory (the quarterly re-alignment), some reps leave (their
territory may stay vacant for a quarter) and new reps are hired.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from .calendar import add_months, quarter_start
from .geography import ZIP3, ZIP3_CUMULATIVE
from .people import FIRST_NAMES, LAST_NAMES
from .streams import stream, unique_draw

PHYSICIANS_PER_TERRITORY = 300
MAX_TERRITORIES = 600
ALIGNMENT_EPOCH = date(2025, 1, 1)  # alignments evolve quarter by quarter from here
BOUNDARY_MOVES = 0.15  # share of territory boundaries that shift each quarter (at least one)
REP_TURNOVER, VACANCY = 0.06, 0.5  # reps leaving a quarter (at least one); half leave a vacancy


def territories_for(n_physicians: int) -> int:
    return int(np.clip(round(n_physicians / PHYSICIANS_PER_TERRITORY), 4, MAX_TERRITORIES))


@dataclass(frozen=True)
class Alignment:
    """The alignment in force during one quarter."""

    quarter: date
    territory: np.ndarray  # per zip3 (index into geography.ZIP3): territory number
    district: np.ndarray  # per territory: district number
    region: np.ndarray  # per territory: region number
    rep: np.ndarray  # per territory: index into SalesForce's reps, -1 = vacant


@dataclass(frozen=True)
class SalesForce:
    alignments: dict[date, Alignment]
    rep_id: np.ndarray  # REP#####
    rep_first: np.ndarray  # index into people.FIRST_NAMES
    rep_last: np.ndarray  # index into people.LAST_NAMES

    def at(self, day: date) -> Alignment:
        return self.alignments[quarter_start(day)]

    def rep_names(self) -> list[str]:
        return [
            f"{FIRST_NAMES[f]} {LAST_NAMES[k]}"
            for f, k in zip(self.rep_first, self.rep_last, strict=True)
        ]


def _boundaries(n_territories: int) -> np.ndarray:
    """Start index of each territory in zip3 order: equal shares of the physicians."""
    cuts = np.searchsorted(ZIP3_CUMULATIVE, np.arange(1, n_territories) / n_territories)
    starts = np.concatenate([[0], cuts]).astype(np.int64)
    for t in range(1, n_territories):  # at least one zip3 per territory
        starts[t] = max(starts[t], starts[t - 1] + 1)
    for t in range(n_territories - 1, 0, -1):
        starts[t] = min(starts[t], len(ZIP3) - (n_territories - t))
    return starts


def _realign(rng: np.random.Generator, starts: np.ndarray) -> np.ndarray:
    """Move a few boundaries by one or two zip3s, keeping every territory non-empty."""
    starts = starts.copy()
    inner = np.arange(1, len(starts))  # the first territory always starts at the first zip3
    count = min(len(inner), max(1, round(BOUNDARY_MOVES * len(inner))))
    moving = np.sort(rng.choice(inner, count, replace=False))
    shifts = rng.choice(np.array([-2, -1, 1, 2]), len(moving))
    for t, shift in zip(moving, shifts, strict=True):
        upper = starts[t + 1] - 1 if t + 1 < len(starts) else len(ZIP3) - 1
        starts[t] = int(np.clip(starts[t] + shift, starts[t - 1] + 1, upper))
    return starts


def sales_force(seed: int, n_physicians: int, first: date, last: date) -> SalesForce:
    """The alignment of every quarter from ``first``'s to ``last``'s, evolved from
    :data:`ALIGNMENT_EPOCH` (or from ``first``, if earlier)."""
    n = territories_for(n_physicians)
    districts = max(2, round(n / 8))
    regions = min(districts, max(2, round(n / 40)))
    district = np.arange(n) * districts // n
    region = district * regions // districts
    people = stream(seed, "sales_force", "reps")
    ids = list(unique_draw(people, n, 10_000, 100_000))
    rep = np.arange(n)
    starts = _boundaries(n)
    quarter = min(ALIGNMENT_EPOCH, quarter_start(first))
    alignments: dict[date, Alignment] = {}
    while quarter <= quarter_start(last):
        rng = stream(seed, "sales_force", quarter.toordinal())
        if alignments:  # every quarter after the first is a re-alignment
            starts = _realign(rng, starts)
            rep = rep.copy()
            staffed = np.flatnonzero(rep >= 0)
            leaving = np.zeros(n, bool)
            count = min(len(staffed), max(1, round(REP_TURNOVER * len(staffed))))
            leaving[rng.choice(staffed, count, replace=False)] = True
            vacant_now = leaving & (rng.random(n) < VACANCY)
            hiring = (rep < 0) | (leaving & ~vacant_now)
            rep[vacant_now] = -1
            hires = unique_draw(rng, int(hiring.sum()), 10_000, 100_000, taken=np.sort(ids))
            rep[hiring] = len(ids) + np.arange(len(hires))
            ids.extend(hires)
        territory = np.searchsorted(starts, np.arange(len(ZIP3)), side="right") - 1
        alignments[quarter] = Alignment(quarter, territory, district, region, rep)
        quarter = add_months(quarter, 3)
    names = stream(seed, "sales_force", "names")
    return SalesForce(
        alignments=alignments,
        rep_id=np.array(ids, np.int64),
        rep_first=names.integers(0, len(FIRST_NAMES), len(ids)),
        rep_last=names.integers(0, len(LAST_NAMES), len(ids)),
    )
