"""Deterministic synthetic US commercial-pharma source files (the "landing zone").

Three sources, shaped like the feeds a pharma commercial data team really receives:

* ``ama_physician`` - monthly full snapshot of the AMA Physician Masterfile (clean reference).
* ``crm_accounts`` - daily change files from the sales CRM (messy: missing/wrong NPIs,
  nicknames, typos, free-text specialties, duplicate accounts to be mastered).
* ``rx_weekly`` - weekly prescriber-level prescription counts for a market basket
  (brand ZENVIRA and its competitors), partly projected, with some prescribers unknown to AMA.

Reproducibility is the point: everything is drawn from ``random.Random`` seeded from the
``seed`` argument and every date is anchored on :data:`ANCHOR_DATE`, never on "today", so the
same arguments always produce byte-identical files.  Each source gets its own generator derived
from the seed, so changing e.g. ``weeks`` does not reshuffle the AMA or CRM files.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from mesh_domains.platform.npi import make_npi, npi_check_digit

ANCHOR_DATE = date(2026, 10, 31)  # last day of data: last AMA month, CRM day and Rx week


@dataclass(frozen=True)
class Source:
    """One landing-zone feed: where its files go and what they contain."""

    name: str
    cadence: str  # monthly | daily | weekly
    file_name: str
    partition_format: str  # strftime format of the partition folder under landing/<name>/
    columns: tuple[str, ...]
    description: str

    def path(self, landing_dir: Path, partition: date) -> Path:
        """File path for one partition, e.g. landing/rx_weekly/2026-10-31/rx_weekly.csv."""
        folder = partition.strftime(self.partition_format)
        return Path(landing_dir) / self.name / folder / self.file_name


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            name="ama_physician",
            cadence="monthly",
            file_name="ama_physician.csv",
            partition_format="%Y-%m",
            columns=(
                "me_number",
                "npi",
                "first_name",
                "middle_initial",
                "last_name",
                "specialty",
                "address_line",
                "city",
                "state",
                "zip",
                "status",
            ),
            description="AMA Physician Masterfile, full snapshot each month.",
        ),
        Source(
            name="crm_accounts",
            cadence="daily",
            file_name="crm_accounts.csv",
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
        ),
        Source(
            name="rx_weekly",
            cadence="weekly",
            file_name="rx_weekly.csv",
            partition_format="%Y-%m-%d",
            columns=("prescriber_npi", "product", "week_ending", "nrx", "trx", "data_type"),
            description="Prescriber-level NRx/TRx for the market basket, one week ending Sat.",
        ),
    )
}

BRAND = "ZENVIRA"
PRODUCTS = (BRAND, "CARDIOLEX", "HARTEX", "VASOPRIN")

# specialty -> (share of physicians, relative Rx volume in the cardio-metabolic basket,
#               free-text spellings seen in the CRM)
SPECIALTIES: dict[str, tuple[int, float, tuple[str, ...]]] = {
    "Cardiology": (8, 4.0, ("Cardiology", "cardiologist", "CARDIO", "Cardiovascular Dis")),
    "Interventional Cardiology": (2, 3.0, ("Interventional Cardiology", "Interv. Cardio")),
    "Internal Medicine": (22, 1.5, ("Internal Medicine", "IM", "internist", "Int Med")),
    "Family Medicine": (22, 1.2, ("Family Medicine", "Family Practice", "FP", "family med")),
    "Endocrinology": (4, 1.5, ("Endocrinology", "endocrinologist", "ENDO", "Endocrine")),
    "Nephrology": (3, 1.3, ("Nephrology", "nephrologist", "NEPH", "Renal")),
    "Pulmonology": (4, 0.5, ("Pulmonology", "Pulmonary Disease", "pulm")),
    "Geriatric Medicine": (3, 1.0, ("Geriatric Medicine", "Geriatrics", "GERI")),
    "Emergency Medicine": (9, 0.2, ("Emergency Medicine", "ER", "EM", "emergency")),
    "Obstetrics and Gynecology": (8, 0.1, ("Obstetrics and Gynecology", "OB/GYN", "OBGYN")),
    "Neurology": (5, 0.2, ("Neurology", "neurologist", "NEURO")),
    "Pediatrics": (10, 0.05, ("Pediatrics", "pediatrician", "PEDS")),
}

NICKNAMES = {
    "William": "Bill",
    "Robert": "Bob",
    "Elizabeth": "Liz",
    "Katherine": "Kate",
    "James": "Jim",
    "Michael": "Mike",
    "Jennifer": "Jen",
    "Richard": "Rick",
    "Thomas": "Tom",
    "Joseph": "Joe",
    "Christopher": "Chris",
    "Daniel": "Dan",
    "Margaret": "Peggy",
    "Patricia": "Pat",
    "Susan": "Sue",
    "Deborah": "Deb",
    "Anthony": "Tony",
    "Steven": "Steve",
    "Matthew": "Matt",
    "Rebecca": "Becky",
    "Alexander": "Alex",
    "Nicholas": "Nick",
    "Benjamin": "Ben",
    "Andrew": "Andy",
    "David": "Dave",
    "Charles": "Chuck",
    "Edward": "Ed",
    "Kimberly": "Kim",
    "Samantha": "Sam",
    "Victoria": "Vicky",
}
FIRST_NAMES = (
    *NICKNAMES,
    *("Priya", "Wei", "Mohammed", "Maria", "Sofia", "Aisha", "Hiroshi", "Olga", "Carlos"),
    *("Ana", "Emily", "Sarah", "Laura", "Rachel", "Kevin", "Brian", "Jason", "Eric", "Mark"),
    *("Paul", "Linda", "Nancy", "Grace", "Omar", "Fatima", "Raj", "Mei", "Ivan", "Noah"),
)
LAST_NAMES = (
    *("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis"),
    *("Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson"),
    *("Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White"),
    *("Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young"),
    *("Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green"),
    *("Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter"),
    *("Roberts", "Patel", "Shah", "Kim", "Chen", "Wang", "Singh", "Cohen", "Goldberg"),
    *("O'Brien", "Murphy", "Kowalski", "Novak", "Rossi", "Schmidt", "Fischer", "Ivanov"),
    *("Okafor", "Adeyemi", "Tanaka", "Yamamoto", "Kumar", "Gupta", "Haddad", "Khan"),
    *("Dubois", "Moreau", "Silva", "Santos", "Jensen", "Larsen", "Becker", "Weber"),
    *("Garcia-Lopez", "Van Dyke", "McDonald", "St. John", "Fitzgerald", "Sullivan"),
)
# (city, state, first zip of the city's range) - several zips start with 0 on purpose.
CITIES = (
    ("Boston", "MA", 2108),
    ("Worcester", "MA", 1601),
    ("Hartford", "CT", 6103),
    ("Newark", "NJ", 7102),
    ("Portland", "ME", 4101),
    ("Providence", "RI", 2903),
    ("New York", "NY", 10001),
    ("Buffalo", "NY", 14201),
    ("Philadelphia", "PA", 19102),
    ("Pittsburgh", "PA", 15213),
    ("Baltimore", "MD", 21201),
    ("Richmond", "VA", 23219),
    ("Charlotte", "NC", 28202),
    ("Atlanta", "GA", 30303),
    ("Miami", "FL", 33125),
    ("Tampa", "FL", 33602),
    ("Nashville", "TN", 37203),
    ("Cleveland", "OH", 44106),
    ("Columbus", "OH", 43210),
    ("Detroit", "MI", 48201),
    ("Chicago", "IL", 60601),
    ("Minneapolis", "MN", 55401),
    ("St. Louis", "MO", 63101),
    ("New Orleans", "LA", 70112),
    ("Houston", "TX", 77002),
    ("Dallas", "TX", 75201),
    ("Denver", "CO", 80202),
    ("Phoenix", "AZ", 85004),
    ("Salt Lake City", "UT", 84101),
    ("Los Angeles", "CA", 90012),
    ("San Francisco", "CA", 94102),
    ("Seattle", "WA", 98101),
)
STREETS = ("Main", "Oak", "Maple", "Park", "Washington", "Lake", "Hill", "Medical Center")
STREET_TYPES = ("St", "Ave", "Blvd", "Rd", "Dr", "Way")


@dataclass
class Physician:
    """Mutable AMA record; later months change status and address in place."""

    me_number: str
    npi: str
    first_name: str
    middle_initial: str
    last_name: str
    specialty: str
    address_line: str
    city: str
    state: str
    zip: str
    status: str

    def row(self) -> tuple[str, ...]:
        """Values in ``SOURCES['ama_physician'].columns`` order."""
        return (
            self.me_number,
            self.npi,
            self.first_name,
            self.middle_initial,
            self.last_name,
            self.specialty,
            self.address_line,
            self.city,
            self.state,
            self.zip,
            self.status,
        )


@dataclass
class Account:
    """CRM account as currently held by the CRM (possibly wrong about the physician)."""

    crm_id: str
    physician: Physician
    npi: str
    first_name: str
    last_name: str
    specialty_text: str
    city: str
    state: str
    territory: str

    def row(self, change_type: str, changed_at: str) -> tuple[str, ...]:
        """Values in ``SOURCES['crm_accounts'].columns`` order."""
        return (
            self.crm_id,
            self.npi,
            self.first_name,
            self.last_name,
            self.specialty_text,
            self.city,
            self.state,
            self.territory,
            change_type,
            changed_at,
        )


def generate(
    landing_dir: Path,
    scale: float = 1.0,
    seed: int = 42,
    months: int = 3,
    days: int = 14,
    weeks: int = 8,
) -> dict[str, list[Path]]:
    """Write all landing files under ``landing_dir`` and return the paths per source.

    ``scale`` sets the number of physicians (``max(20, round(5000 * scale))`` in the first
    month).  Files at the same paths are overwritten; nothing else is touched.
    """
    if scale <= 0 or min(months, days, weeks) < 1:
        raise ValueError("scale must be > 0 and months/days/weeks >= 1")
    landing_dir = Path(landing_dir)
    master = random.Random(seed)
    ama_rng, crm_rng, rx_rng = (random.Random(master.getrandbits(64)) for _ in range(3))
    n_physicians = max(20, round(5000 * scale))

    snapshots, latest = _ama_snapshots(ama_rng, n_physicians, _month_starts(months))
    written = {
        "ama_physician": [
            _write(SOURCES["ama_physician"], landing_dir, month, rows) for month, rows in snapshots
        ],
        "crm_accounts": [
            _write(SOURCES["crm_accounts"], landing_dir, day, rows)
            for day, rows in _crm_days(crm_rng, latest, _days(days))
        ],
        "rx_weekly": [
            _write(SOURCES["rx_weekly"], landing_dir, week, rows)
            for week, rows in _rx_weeks(rx_rng, latest, _week_endings(weeks))
        ],
    }
    return written


# --- calendar ------------------------------------------------------------------------------


def _month_starts(months: int) -> list[date]:
    """First days of the ``months`` months ending with the anchor month, oldest first."""
    index = ANCHOR_DATE.year * 12 + ANCHOR_DATE.month - 1
    return [date(i // 12, i % 12 + 1, 1) for i in range(index - months + 1, index + 1)]


def _days(days: int) -> list[date]:
    """The ``days`` calendar days ending on the anchor date, oldest first."""
    return [ANCHOR_DATE - timedelta(days=d) for d in range(days - 1, -1, -1)]


def _week_endings(weeks: int) -> list[date]:
    """The ``weeks`` Saturdays up to the anchor date (Rx weeks end on Saturday), oldest first."""
    last = ANCHOR_DATE - timedelta(days=(ANCHOR_DATE.weekday() - 5) % 7)
    return [last - timedelta(weeks=w) for w in range(weeks - 1, -1, -1)]


# --- AMA -----------------------------------------------------------------------------------


class _Ids:
    """Draws unique identifiers; a set is only used for membership, never iterated."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.seen: set[str] = set()

    def draw(self, make: Callable[[random.Random], str]) -> str:
        while (value := make(self.rng)) in self.seen:
            pass
        self.seen.add(value)
        return value


def _address(rng: random.Random) -> tuple[str, str, str, str]:
    """Random (address_line, city, state, zip) from the fixed city list."""
    city, state, zip0 = rng.choice(CITIES)
    line = f"{rng.randint(1, 9999)} {rng.choice(STREETS)} {rng.choice(STREET_TYPES)}"
    if rng.random() < 0.3:
        line += f" Suite {rng.randint(1, 9) * 100 + rng.randint(0, 20)}"
    return line, city, state, f"{zip0 + rng.randint(0, 20):05d}"


def _new_physician(rng: random.Random, npis: _Ids, mes: _Ids, status: str) -> Physician:
    """A new AMA record with unique ME number and NPI; identifiers never change afterwards."""
    middle = chr(ord("A") + rng.randrange(26)) if rng.random() < 0.8 else ""
    specialty = rng.choices(list(SPECIALTIES), [share for share, _, _ in SPECIALTIES.values()])
    address_line, city, state, zip_code = _address(rng)
    return Physician(
        me_number=mes.draw(lambda r: f"{r.randrange(10**11):011d}"),
        npi=npis.draw(make_npi),
        first_name=rng.choice(FIRST_NAMES),
        middle_initial=middle,
        last_name=rng.choice(LAST_NAMES),
        specialty=specialty[0],
        address_line=address_line,
        city=city,
        state=state,
        zip=zip_code,
        status=status,
    )


def _initial_status(rng: random.Random) -> str:
    """Status of a physician in the first snapshot: mostly active, as in the real file."""
    return rng.choices(("active", "inactive", "retired", "deceased"), (90, 5, 4, 1))[0]


_NEXT_STATUS = {
    "active": (("inactive", "retired", "deceased"), (5, 4, 1)),
    "inactive": (("active", "retired"), (3, 1)),
    "retired": (("deceased", "active"), (3, 1)),
}


def _evolve(rng: random.Random, people: list[Physician], npis: _Ids, mes: _Ids) -> None:
    """One month passes: ~2% new physicians, a few status changes and moves."""
    n = len(people)
    alive = [p for p in people if p.status != "deceased"]
    for p in rng.sample(alive, max(1, round(n * 0.005))):
        choices, weights = _NEXT_STATUS[p.status]
        p.status = rng.choices(choices, weights)[0]
    for p in rng.sample(alive, max(1, round(n * 0.01))):
        p.address_line, p.city, p.state, p.zip = _address(rng)
    people.extend(_new_physician(rng, npis, mes, "active") for _ in range(max(1, round(n * 0.02))))


def _ama_snapshots(
    rng: random.Random, n: int, months: Sequence[date]
) -> tuple[list[tuple[date, list[tuple[str, ...]]]], list[Physician]]:
    """Monthly snapshot rows, oldest first, and the roster as of the latest month."""
    npis, mes = _Ids(rng), _Ids(rng)
    people = [_new_physician(rng, npis, mes, _initial_status(rng)) for _ in range(n)]
    snapshots = []
    for i, month in enumerate(months):
        if i:
            _evolve(rng, people, npis, mes)
        snapshots.append((month, [p.row() for p in people]))
    return snapshots, people


# --- CRM -----------------------------------------------------------------------------------


def _transpose(rng: random.Random, npi: str) -> str | None:
    """Swap two different adjacent digits - the classic keying error (None if impossible)."""
    spots = [i for i in range(9) if npi[i] != npi[i + 1]]
    if not spots:
        return None
    i = rng.choice(spots)
    return npi[:i] + npi[i + 1] + npi[i] + npi[i + 2 :]


def _invalid_npi(rng: random.Random) -> str:
    """Random NPI-shaped number whose check digit is deliberately wrong."""
    first9 = f"1{rng.randrange(10**8):08d}"
    return f"{first9}{(npi_check_digit(first9) + rng.randint(1, 9)) % 10}"


def _crm_npi(rng: random.Random, npi: str) -> str:
    """NPI as keyed by a sales rep: ~85% right, ~10% blank, ~5% wrong."""
    r = rng.random()
    if r < 0.85:
        return npi
    if r < 0.95:
        return ""
    transposed = _transpose(rng, npi) if rng.random() < 0.5 else None
    return transposed or _invalid_npi(rng)


def _typo(rng: random.Random, name: str) -> str:
    """Swap two adjacent letters or drop one (never the first letter); always changes it."""
    if len(name) < 3:
        return name + name[-1]
    i = rng.randrange(1, len(name) - 1)
    if rng.random() < 0.5 and name[i] != name[i + 1]:
        return name[:i] + name[i + 1] + name[i] + name[i + 2 :]
    return name[:i] + name[i + 1 :]


def _territory(rng: random.Random, n_territories: int) -> str:
    return f"T{rng.randint(1, n_territories):03d}"


def _new_account(rng: random.Random, ids: _Ids, p: Physician, n_territories: int) -> Account:
    """A CRM account for physician ``p``, with the usual data-entry noise."""
    first = p.first_name
    if first in NICKNAMES and rng.random() < 0.5:
        first = NICKNAMES[first]
    return Account(
        crm_id=ids.draw(lambda r: f"CRM{r.randrange(10**7):07d}"),
        physician=p,
        npi=_crm_npi(rng, p.npi),
        first_name=first,
        last_name=_typo(rng, p.last_name) if rng.random() < 0.08 else p.last_name,
        specialty_text=rng.choice(SPECIALTIES[p.specialty][2]),
        city=p.city,
        state=p.state,
        territory=_territory(rng, n_territories),
    )


def _update(rng: random.Random, a: Account, n_territories: int) -> None:
    """A rep edits an account: moves it, realigns it, re-types the specialty or adds the NPI."""
    kind = rng.choice(("address", "territory", "specialty", "npi"))
    if kind == "address":
        _, a.city, a.state, _ = _address(rng)
    elif kind == "territory":
        a.territory = _territory(rng, n_territories)
    elif kind == "specialty":
        a.specialty_text = rng.choice(SPECIALTIES[a.physician.specialty][2])
    else:
        a.npi = a.physician.npi


def _stamp(rng: random.Random, day: date) -> str:
    """ISO timestamp during the working day."""
    seconds = rng.randrange(6 * 3600, 22 * 3600)
    return f"{day.isoformat()}T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _crm_days(
    rng: random.Random, people: list[Physician], days: Sequence[date]
) -> Iterable[tuple[date, list[tuple[str, ...]]]]:
    """Daily change files: day 1 loads ~90% of physicians (plus ~2% duplicates), later days
    carry a few updates and a few inserts.  Each account is inserted exactly once."""
    loaded = rng.sample(range(len(people)), round(len(people) * 0.9))
    first_day = [people[i] for i in loaded]
    first_day += rng.sample(first_day, max(1, round(len(first_day) * 0.02)))
    in_crm = set(loaded)
    waiting = [p for i, p in enumerate(people) if i not in in_crm]
    n_territories = max(2, round(len(first_day) / 50))
    ids, accounts = _Ids(rng), []
    for d, day in enumerate(days):
        if d == 0:
            inserts = first_day
        else:
            k = min(len(waiting), max(1, round(len(people) * 0.002)))
            inserts = [waiting.pop(rng.randrange(len(waiting))) for _ in range(k)]
            if rng.random() < 0.3:
                inserts.append(rng.choice(accounts).physician)  # a rep creates a duplicate
        rows = []
        for a in rng.sample(accounts, min(len(accounts), max(1, round(len(accounts) * 0.01)))):
            _update(rng, a, n_territories)
            rows.append(a.row("update", _stamp(rng, day)))
        for p in inserts:
            accounts.append(_new_account(rng, ids, p, n_territories))
            rows.append(accounts[-1].row("insert", _stamp(rng, day)))
        rows.sort(key=lambda r: (r[-1], r[0]))
        yield day, rows


# --- Rx ------------------------------------------------------------------------------------


@dataclass
class _Prescriber:
    """Stable writing habits, so a prescriber's weeks look like one person's history."""

    npi: str
    volume: float  # mean weekly NRx per product
    products: tuple[str, ...]


def _prescribers(rng: random.Random, people: list[Physician]) -> list[_Prescriber]:
    """Active AMA physicians plus ~3% valid NPIs the AMA file does not know."""
    active = [p for p in people if p.status == "active"]
    known = _Ids(rng)
    known.seen.update(p.npi for p in people)
    unknown = [known.draw(make_npi) for _ in range(max(1, round(len(active) * 0.03 / 0.97)))]
    pool = [(p.npi, SPECIALTIES[p.specialty][1]) for p in active]
    pool += [(npi, rng.choice((0.5, 1.0, 2.0))) for npi in unknown]
    out = []
    for npi, affinity in pool:
        k = rng.choices((1, 2, 3, 4), (35, 30, 20, 15))[0]
        products = tuple(sorted(rng.sample(PRODUCTS, k), key=PRODUCTS.index))
        volume = affinity * (rng.paretovariate(1.6) - 0.6) * 2.0  # heavy tail: a few big writers
        out.append(_Prescriber(npi, volume, products))
    return out


def _rx_row(rng: random.Random, p: _Prescriber, product: str, week: date, w: int) -> tuple:
    """One (prescriber, product, week) row; the brand gains share week over week."""
    trend = 0.6 + 0.05 * w if product == BRAND else 1.0
    nrx = max(0, round(rng.gauss(1.0, 0.35) * p.volume * trend))
    trx = nrx + max(0, round(nrx * rng.uniform(1.0, 3.0) + rng.gauss(p.volume, p.volume / 2)))
    data_type = "actual" if rng.random() < 0.7 else "projected"
    return (p.npi, product, week.isoformat(), nrx, trx, data_type)


def _rx_weeks(
    rng: random.Random, people: list[Physician], weeks: Sequence[date]
) -> Iterable[tuple[date, list[tuple]]]:
    """Weekly files: ~60% of prescribers write each week, one row per product they use."""
    prescribers = _prescribers(rng, people)
    for w, week in enumerate(weeks):
        rows = [
            _rx_row(rng, p, product, week, w)
            for p in prescribers
            if rng.random() < 0.6
            for product in p.products
        ]
        rows.sort(key=lambda r: (r[0], PRODUCTS.index(r[1])))
        yield week, rows


# --- output --------------------------------------------------------------------------------


def _write(source: Source, landing_dir: Path, partition: date, rows: Iterable[Sequence]) -> Path:
    """Write one CSV (header, UTF-8, \n line endings), replacing any file at that path."""
    path = source.path(landing_dir, partition)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(source.columns)
        writer.writerows(rows)
    return path
