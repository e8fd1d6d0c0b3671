"""The physician roster shared by every source: who practises, where, in which specialty.

The roster is the AMA-style truth the other sources are noisy views of: the CRM keys its
accounts to these physicians (with typos, nicknames and wrong NPIs), Rx and claims carry their
NPIs, field calls visit them, and the NPP audience holds their hashed emails. It is held in
columns (NumPy arrays), not as one object per physician, so a roster of a million physicians
stays a few tens of megabytes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .geography import draw_zip3
from .streams import unique_draw

STATUSES = ("active", "inactive", "retired", "deceased")
ACTIVE, INACTIVE, RETIRED, DECEASED = range(4)
INITIAL_STATUS = (0.90, 0.05, 0.04, 0.01)  # the first snapshot is mostly active, as the real file
NEXT_STATUS = {  # a status change: from -> (to, weights)
    ACTIVE: ((INACTIVE, RETIRED, DECEASED), (5, 4, 1)),
    INACTIVE: ((ACTIVE, RETIRED), (3, 1)),
    RETIRED: ((DECEASED, ACTIVE), (3, 1)),
}
MONTHLY_STATUS_CHANGES, MONTHLY_MOVES, MONTHLY_NEW = 0.005, 0.01, 0.02

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
SPECIALTY_NAMES = tuple(SPECIALTIES)
SPECIALTY_SHARE = np.array([s for s, _, _ in SPECIALTIES.values()], float) / 100
SPECIALTY_AFFINITY = np.array([a for _, a, _ in SPECIALTIES.values()])

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
STREETS = ("Main", "Oak", "Maple", "Park", "Washington", "Lake", "Hill", "Medical Center")
STREET_TYPES = ("St", "Ave", "Blvd", "Rd", "Dr", "Way")

NPI_BODIES = (100_000_000, 200_000_000)  # 9 identifying digits of an individual (leading 1)
ME_NUMBERS = (0, 10**11)  # 11 digits, leading zeros kept


def physicians_for(scale: float) -> int:
    """Physicians in the first AMA month: 5,000 per unit of scale (the US has ~1M)."""
    return max(20, round(5000 * scale))


def npi_check_digits(bodies: np.ndarray) -> np.ndarray:
    """CMS check digits of 9-digit NPI bodies: Luhn over the digits prefixed with 80840
    (vectorised :func:`mesh_domains.platform.npi.npi_check_digit`)."""
    total = np.full(len(bodies), 24, np.int64)  # the prefix's Luhn contribution
    rest = bodies.astype(np.int64)
    for position in range(9):  # position 0 is the rightmost digit of the body: doubled
        digit = rest % 10
        rest //= 10
        if position % 2 == 0:
            digit = np.where(digit >= 5, digit * 2 - 9, digit * 2)
        total += digit
    return (10 - total % 10) % 10


def npis(bodies: np.ndarray) -> np.ndarray:
    """Valid 10-digit NPIs (as integers) from their 9-digit bodies."""
    return bodies.astype(np.int64) * 10 + npi_check_digits(bodies)


@dataclass
class Roster:
    """The physicians in columns; row ``i`` is one physician, identifiers never change."""

    me: np.ndarray
    npi: np.ndarray
    first: np.ndarray  # index into FIRST_NAMES
    middle: np.ndarray  # 0..25 = A..Z, -1 = none
    last: np.ndarray  # index into LAST_NAMES
    specialty: np.ndarray  # index into SPECIALTY_NAMES
    street_no: np.ndarray
    street: np.ndarray
    street_type: np.ndarray
    suite: np.ndarray  # 0 = none
    zip3: np.ndarray  # index into geography.ZIP3
    zip_tail: np.ndarray  # last two zip digits
    status: np.ndarray  # index into STATUSES

    def __len__(self) -> int:
        return len(self.npi)

    def columns(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def append(self, other: Roster) -> None:
        for f in fields(self):
            setattr(self, f.name, np.concatenate([getattr(self, f.name), getattr(other, f.name)]))


def _addresses(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    suite = rng.integers(1, 10, n) * 100 + rng.integers(0, 21, n)
    return {
        "street_no": rng.integers(1, 10_000, n).astype(np.int32),
        "street": rng.integers(0, len(STREETS), n).astype(np.int8),
        "street_type": rng.integers(0, len(STREET_TYPES), n).astype(np.int8),
        "suite": np.where(rng.random(n) < 0.3, suite, 0).astype(np.int16),
        "zip3": draw_zip3(rng, n),
        "zip_tail": rng.integers(1, 100, n).astype(np.int8),
    }


class RosterBook:
    """Draws physicians with identifiers unique across the roster's whole history, and NPIs
    for prescribers the AMA file does not know."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.npi_bodies = np.empty(0, np.int64)  # sorted, every body ever drawn
        self.me_numbers = np.empty(0, np.int64)

    def _bodies(self, n: int) -> np.ndarray:
        bodies = unique_draw(self.rng, n, *NPI_BODIES, taken=self.npi_bodies)
        self.npi_bodies = np.sort(np.concatenate([self.npi_bodies, bodies]))
        return bodies

    def unknown_npis(self, n: int) -> np.ndarray:
        """Valid NPIs of ``n`` prescribers that are in no AMA snapshot."""
        return npis(self._bodies(n))

    def new(self, n: int, status: np.ndarray | None = None) -> Roster:
        rng = self.rng
        me = unique_draw(rng, n, *ME_NUMBERS, taken=self.me_numbers)
        self.me_numbers = np.sort(np.concatenate([self.me_numbers, me]))
        specialty = rng.choice(len(SPECIALTY_NAMES), n, p=SPECIALTY_SHARE)
        return Roster(
            me=me,
            npi=npis(self._bodies(n)),
            first=rng.integers(0, len(FIRST_NAMES), n).astype(np.int16),
            middle=np.where(rng.random(n) < 0.8, rng.integers(0, 26, n), -1).astype(np.int8),
            last=rng.integers(0, len(LAST_NAMES), n).astype(np.int16),
            specialty=specialty.astype(np.int8),
            status=(np.full(n, ACTIVE, np.int8) if status is None else status.astype(np.int8)),
            **_addresses(rng, n),
        )

    def first_month(self, n: int) -> Roster:
        return self.new(n, self.rng.choice(len(STATUSES), n, p=INITIAL_STATUS))

    def next_month(self, roster: Roster) -> None:
        """One month passes: a few status changes and moves, ~2% newly licensed physicians."""
        rng, n = self.rng, len(roster)
        alive = np.flatnonzero(roster.status != DECEASED)
        changed = rng.choice(
            alive, min(len(alive), max(1, round(n * MONTHLY_STATUS_CHANGES))), replace=False
        )
        for current, (targets, weights) in NEXT_STATUS.items():
            who = changed[roster.status[changed] == current]
            p = np.array(weights, float) / sum(weights)
            roster.status[who] = rng.choice(np.array(targets, np.int8), len(who), p=p)
        moved = rng.choice(alive, min(len(alive), max(1, round(n * MONTHLY_MOVES))), replace=False)
        for name, values in _addresses(rng, len(moved)).items():
            getattr(roster, name)[moved] = values
        roster.append(self.new(max(1, round(n * MONTHLY_NEW))))
