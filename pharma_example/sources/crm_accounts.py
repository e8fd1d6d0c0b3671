"""``crm_accounts``: the sales CRM's (Veeva-style) account changes, one file a day.

Messy on purpose, as keyed by sales reps: ~10% of NPIs blank and ~5% wrong (a transposed pair
of digits or a wrong check digit), nicknames for first names, typos in last names, free-text
specialties, and ~2% duplicate accounts for the same physician. The first day loads ~90% of
the physicians; later days carry a few updates (moves, re-alignments, re-typed specialties, an
NPI filled in) and a few inserts. Territories come from the zip3 alignment in force that day.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date

import numpy as np

from ..geography import ZIP3_CITY, ZIP3_STATE, draw_zip3
from ..output import Landing, Source, pick
from ..people import FIRST_NAMES, LAST_NAMES, NICKNAMES, SPECIALTIES, Roster, npi_check_digits
from ..sales_force import SalesForce
from ..streams import stream, unique_draw

SOURCE = Source(
    name="crm_accounts",
    cadence="daily",
    partition_format="%Y-%m-%d",
    columns=(
        "crm_id",
        "npi",
        "first_name",
        "last_name",
        "specialty_text",
        "city",
        "state",
        "territory",
        "change_type",
        "changed_at",
    ),
    description="Sales CRM account changes (inserts and updates) for one day.",
)

FIRST_LOAD, DUPLICATES = 0.90, 0.02
DAILY_INSERTS, DAILY_UPDATES, DUPLICATE_CHANCE = 0.002, 0.01, 0.3
RIGHT_NPI, BLANK_NPI, NICKNAME, TYPO = 0.85, 0.10, 0.5, 0.08
CRM_FIRST_NAMES = (*FIRST_NAMES, *NICKNAMES.values())  # a nickname sits at len(FIRST_NAMES) + i
SPELLINGS = tuple(s for _, _, spellings in SPECIALTIES.values() for s in spellings)
SPELLING_START = np.cumsum([0, *(len(s) for _, _, s in SPECIALTIES.values())])[:-1]
SPELLING_COUNT = np.array([len(s) for _, _, s in SPECIALTIES.values()])
CHANGES = ("insert", "update")

SELECT = f"""
select 'CRM' || lpad(crm_id::varchar, 7, '0') as crm_id,
       case when npi > 0 then lpad(npi::varchar, 10, '0') end as npi,
       {pick(CRM_FIRST_NAMES, "first_name")} as first_name,
       last_name,
       {pick(SPELLINGS, "spelling")} as specialty_text,
       {pick(ZIP3_CITY, "zip3")} as city,
       {pick(ZIP3_STATE, "zip3")} as state,
       'T' || lpad((territory + 1)::varchar, 3, '0') as territory,
       {pick(CHANGES, "change")} as change_type,
       strftime(timestamp '1970-01-01' + to_seconds(epoch_day * 86400 + seconds),
                '%Y-%m-%dT%H:%M:%S') as changed_at
from t
"""


@dataclass
class Accounts:
    """CRM accounts in columns, as the CRM currently holds them."""

    crm_id: np.ndarray
    physician: np.ndarray  # roster row of the physician the account really is
    npi: np.ndarray  # as keyed: 0 = blank
    first_name: np.ndarray  # index into CRM_FIRST_NAMES
    last_name: np.ndarray  # index into Names.values
    spelling: np.ndarray  # index into SPELLINGS
    zip3: np.ndarray
    territory: np.ndarray
    inserted: np.ndarray  # index of the day the account was created

    def __len__(self) -> int:
        return len(self.crm_id)

    def append(self, other: Accounts) -> None:
        for f in fields(self):
            setattr(self, f.name, np.concatenate([getattr(self, f.name), getattr(other, f.name)]))

    def take(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name)[rows] for f in fields(self)}


class Names:
    """Last names as keyed, typos included: a growing list of distinct spellings."""

    def __init__(self) -> None:
        self.values = list(LAST_NAMES)
        self.index = {name: i for i, name in enumerate(self.values)}

    def code(self, name: str) -> int:
        if name not in self.index:
            self.index[name] = len(self.values)
            self.values.append(name)
        return self.index[name]


def _typo(name: str, u: float, v: float) -> str:
    """Swap two adjacent letters or drop one (never the first letter); always changes it."""
    if len(name) < 3:
        return name + name[-1]
    i = 1 + int(u * (len(name) - 2))
    if v < 0.5 and name[i] != name[i + 1]:
        return name[:i] + name[i + 1] + name[i] + name[i + 2 :]
    return name[:i] + name[i + 1 :]


def _transposed(npi: int, u: float) -> int | None:
    """Swap two different adjacent digits - the classic keying error (None if impossible)."""
    s = f"{npi:010d}"
    spots = [i for i in range(9) if s[i] != s[i + 1]]
    if not spots:
        return None
    i = spots[int(u * len(spots))]
    return int(s[:i] + s[i + 1] + s[i] + s[i + 2 :])


def _keyed_npis(rng: np.random.Generator, true: np.ndarray) -> np.ndarray:
    """NPIs as keyed by reps: ~85% right, ~10% blank, ~5% wrong."""
    n = len(true)
    r = rng.random(n)
    keyed = np.where(r < RIGHT_NPI, true, 0)
    wrong = np.flatnonzero(r >= RIGHT_NPI + BLANK_NPI)
    coin, spot = rng.random(len(wrong)), rng.random(len(wrong))
    bodies = rng.integers(100_000_000, 200_000_000, len(wrong))
    bump = rng.integers(1, 10, len(wrong))
    invalid = bodies * 10 + (npi_check_digits(bodies) + bump) % 10
    for k, row in enumerate(wrong):
        transposed = _transposed(int(true[row]), spot[k]) if coin[k] < 0.5 else None
        keyed[row] = invalid[k] if transposed is None else transposed
    return keyed


def _new_accounts(
    rng: np.random.Generator,
    roster: Roster,
    who: np.ndarray,
    ids: np.ndarray,
    territory_of_zip3: np.ndarray,
    names: Names,
    day: int,
) -> Accounts:
    n = len(who)
    first = roster.first[who].astype(np.int64)
    nick = (first < len(NICKNAMES)) & (rng.random(n) < NICKNAME)
    last = roster.last[who].astype(np.int64)
    typo = np.flatnonzero(rng.random(n) < TYPO)
    u, v = rng.random(len(typo)), rng.random(len(typo))
    for k, row in enumerate(typo):
        last[row] = names.code(_typo(LAST_NAMES[last[row]], u[k], v[k]))
    zip3 = roster.zip3[who].astype(np.int64)
    return Accounts(
        crm_id=ids,
        physician=who,
        npi=_keyed_npis(rng, roster.npi[who]),
        first_name=np.where(nick, len(FIRST_NAMES) + first, first),
        last_name=last,
        spelling=_spelling(rng, roster.specialty[who]),
        zip3=zip3,
        territory=territory_of_zip3[zip3],
        inserted=np.full(n, day),
    )


def _spelling(rng: np.random.Generator, specialty: np.ndarray) -> np.ndarray:
    count = SPELLING_COUNT[specialty]
    return SPELLING_START[specialty] + (rng.random(len(specialty)) * count).astype(np.int64)


def _update(
    rng: np.random.Generator, acc: Accounts, rows: np.ndarray, roster: Roster, territory_of_zip3
) -> None:
    """A rep edits accounts: moves them, realigns them, re-types the specialty or adds the NPI."""
    kind = rng.integers(0, 4, len(rows))
    moved, realigned = rows[kind == 0], rows[kind == 1]
    retyped, keyed = rows[kind == 2], rows[kind == 3]
    acc.zip3[moved] = draw_zip3(rng, len(moved))
    acc.territory[realigned] = territory_of_zip3[acc.zip3[realigned]]
    acc.spelling[retyped] = _spelling(rng, roster.specialty[acc.physician[retyped]])
    acc.npi[keyed] = roster.npi[acc.physician[keyed]]


def write(out: Landing, seed: int, roster: Roster, force: SalesForce, days: list[date]) -> Accounts:
    """Write one change file per day; returns the accounts as the CRM holds them at the end."""
    rng = stream(seed, SOURCE.name)
    n = len(roster)
    loaded = rng.choice(n, round(n * FIRST_LOAD), replace=False)
    doubles = rng.choice(
        loaded, min(len(loaded), max(1, round(len(loaded) * DUPLICATES))), replace=False
    )
    unloaded = np.ones(n, bool)
    unloaded[loaded] = False
    waiting = np.flatnonzero(unloaded)
    empty = np.empty(0, np.int64)
    acc = Accounts(*(empty.copy() for _ in fields(Accounts)))
    names = Names()
    for d, day in enumerate(days):
        territory_of_zip3 = force.at(day).territory
        if d == 0:
            inserts = np.concatenate([loaded, doubles])
        else:
            k = min(len(waiting), max(1, round(n * DAILY_INSERTS)))
            picked = rng.choice(len(waiting), k, replace=False)
            inserts, waiting = waiting[picked], np.delete(waiting, picked)
            if len(acc) and rng.random() < DUPLICATE_CHANCE:  # a rep creates a duplicate
                inserts = np.append(inserts, acc.physician[rng.integers(len(acc))])
        updated = rng.choice(
            len(acc), min(len(acc), max(1, round(len(acc) * DAILY_UPDATES))), replace=False
        )
        _update(rng, acc, updated, roster, territory_of_zip3)
        ids = unique_draw(rng, len(inserts), 0, 10**7, taken=np.sort(acc.crm_id))
        first_new = len(acc)
        acc.append(_new_accounts(rng, roster, inserts, ids, territory_of_zip3, names, d))
        rows = np.concatenate([updated, np.arange(first_new, len(acc))])
        table = acc.take(rows)
        table["last_name"] = np.array(names.values)[table["last_name"]]
        table["change"] = np.concatenate(
            [np.ones(len(updated), np.int8), np.zeros(len(inserts), np.int8)]
        )
        table["seconds"] = rng.integers(6 * 3600, 22 * 3600, len(rows))
        table["epoch_day"] = np.full(len(rows), (day - date(1970, 1, 1)).days)
        order = np.lexsort((table["crm_id"], table["seconds"]))
        out.write(SOURCE, day, {k: v[order] for k, v in table.items()}, SELECT)
    return acc
