"""US geography of the example: 3-digit ZIP prefixes (zip3) by state, with a city for each.

The zip3 ranges follow the real assignment of ZIP prefixes to states, so zip3 order is
roughly geographic (New England first, the West Coast last) and contiguous zip3 runs make
plausible sales territories. Physicians are spread over states by population, with a share
concentrated in each state's metro zip3. A zip3 that is not a metro gets a town name that
exists in many states (Springfield, Franklin, ...).
"""

from __future__ import annotations

import numpy as np

# state -> (zip3 ranges, population in millions): where physicians practise, roughly.
STATES: dict[str, tuple[tuple[tuple[int, int], ...], float]] = {
    "MA": (((10, 27),), 7.0),
    "RI": (((28, 29),), 1.1),
    "NH": (((30, 38),), 1.4),
    "ME": (((39, 49),), 1.4),
    "VT": (((50, 59),), 0.6),
    "CT": (((60, 69),), 3.6),
    "NJ": (((70, 89),), 9.3),
    "NY": (((100, 149),), 20.2),
    "PA": (((150, 196),), 13.0),
    "DE": (((197, 199),), 1.0),
    "DC": (((200, 205),), 0.7),
    "MD": (((206, 219),), 6.2),
    "VA": (((220, 246),), 8.6),
    "WV": (((247, 268),), 1.8),
    "NC": (((270, 289),), 10.4),
    "SC": (((290, 299),), 5.1),
    "GA": (((300, 319), (398, 399)), 10.7),
    "FL": (((320, 349),), 21.5),
    "AL": (((350, 369),), 5.0),
    "TN": (((370, 385),), 6.9),
    "MS": (((386, 397),), 3.0),
    "KY": (((400, 427),), 4.5),
    "OH": (((430, 459),), 11.8),
    "IN": (((460, 479),), 6.8),
    "MI": (((480, 499),), 10.1),
    "IA": (((500, 528),), 3.2),
    "WI": (((530, 549),), 5.9),
    "MN": (((550, 567),), 5.7),
    "SD": (((570, 577),), 0.9),
    "ND": (((580, 588),), 0.8),
    "MT": (((590, 599),), 1.1),
    "IL": (((600, 629),), 12.8),
    "MO": (((630, 658),), 6.2),
    "KS": (((660, 679),), 2.9),
    "NE": (((680, 693),), 2.0),
    "LA": (((700, 714),), 4.7),
    "AR": (((716, 729),), 3.0),
    "OK": (((730, 749),), 4.0),
    "TX": (((750, 799), (885, 885)), 29.1),
    "CO": (((800, 816),), 5.8),
    "WY": (((820, 831),), 0.6),
    "ID": (((832, 838),), 1.8),
    "UT": (((840, 847),), 3.3),
    "AZ": (((850, 865),), 7.2),
    "NM": (((870, 884),), 2.1),
    "NV": (((889, 898),), 3.1),
    "CA": (((900, 961),), 39.5),
    "HI": (((967, 968),), 1.5),
    "OR": (((970, 979),), 4.2),
    "WA": (((980, 994),), 7.7),
    "AK": (((995, 999),), 0.7),
}
# (city, state, zip3): the metro areas; a state's metros hold METRO_SHARE of its physicians.
METROS = (
    ("Boston", "MA", 21),
    ("Worcester", "MA", 16),
    ("Providence", "RI", 29),
    ("Manchester", "NH", 31),
    ("Portland", "ME", 41),
    ("Burlington", "VT", 54),
    ("Hartford", "CT", 61),
    ("Newark", "NJ", 71),
    ("New York", "NY", 100),
    ("Buffalo", "NY", 142),
    ("Philadelphia", "PA", 191),
    ("Pittsburgh", "PA", 152),
    ("Wilmington", "DE", 198),
    ("Washington", "DC", 200),
    ("Baltimore", "MD", 212),
    ("Richmond", "VA", 232),
    ("Charleston", "WV", 253),
    ("Charlotte", "NC", 282),
    ("Columbia", "SC", 292),
    ("Atlanta", "GA", 303),
    ("Miami", "FL", 331),
    ("Tampa", "FL", 336),
    ("Jacksonville", "FL", 322),
    ("Birmingham", "AL", 352),
    ("Nashville", "TN", 372),
    ("Memphis", "TN", 381),
    ("Jackson", "MS", 392),
    ("Louisville", "KY", 402),
    ("Cleveland", "OH", 441),
    ("Columbus", "OH", 432),
    ("Indianapolis", "IN", 462),
    ("Detroit", "MI", 482),
    ("Des Moines", "IA", 503),
    ("Milwaukee", "WI", 532),
    ("Minneapolis", "MN", 554),
    ("Sioux Falls", "SD", 571),
    ("Fargo", "ND", 581),
    ("Billings", "MT", 591),
    ("Chicago", "IL", 606),
    ("St. Louis", "MO", 631),
    ("Kansas City", "MO", 641),
    ("Wichita", "KS", 672),
    ("Omaha", "NE", 681),
    ("New Orleans", "LA", 701),
    ("Little Rock", "AR", 722),
    ("Oklahoma City", "OK", 731),
    ("Dallas", "TX", 752),
    ("Houston", "TX", 770),
    ("San Antonio", "TX", 782),
    ("Austin", "TX", 787),
    ("Denver", "CO", 802),
    ("Cheyenne", "WY", 820),
    ("Boise", "ID", 837),
    ("Salt Lake City", "UT", 841),
    ("Phoenix", "AZ", 850),
    ("Albuquerque", "NM", 871),
    ("Las Vegas", "NV", 891),
    ("Los Angeles", "CA", 900),
    ("San Diego", "CA", 921),
    ("Sacramento", "CA", 958),
    ("San Francisco", "CA", 941),
    ("Honolulu", "HI", 968),
    ("Portland", "OR", 972),
    ("Seattle", "WA", 981),
    ("Anchorage", "AK", 995),
)
METRO_SHARE = 0.45
TOWNS = (
    *("Springfield", "Franklin", "Greenville", "Clinton", "Madison", "Georgetown", "Salem"),
    *("Fairview", "Riverside", "Oxford", "Marion", "Ashland", "Jackson", "Burlington"),
    *("Manchester", "Milton", "Dayton", "Lexington", "Milford", "Winchester", "Newport"),
    *("Auburn", "Bristol", "Centerville", "Kingston", "Dover", "Hudson", "Lebanon"),
)


def _table() -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...], np.ndarray]:
    metro_city = {zip3: city for city, _, zip3 in METROS}
    metros_in = {s: sum(1 for _, st, _ in METROS if st == s) for s in STATES}
    rows = []
    for state, (ranges, population) in STATES.items():
        codes = [z for lo, hi in ranges for z in range(lo, hi + 1)]
        spread = population * (1 - METRO_SHARE) / len(codes)
        metro = population * METRO_SHARE / max(1, metros_in[state])
        for z in codes:
            weight = spread + (metro if z in metro_city else 0.0)
            if not metros_in[state]:
                weight = population / len(codes)
            city = metro_city.get(z) or TOWNS[(z * 7) % len(TOWNS)]
            rows.append((z, state, city, weight))
    rows.sort()
    weights = np.array([r[3] for r in rows])
    return (
        np.array([r[0] for r in rows], np.int16),
        tuple(r[1] for r in rows),
        tuple(r[2] for r in rows),
        weights / weights.sum(),
    )


# one row per zip3, sorted by zip3: its code, state, city and share of the physicians
ZIP3, ZIP3_STATE, ZIP3_CITY, ZIP3_SHARE = _table()
ZIP3_CUMULATIVE = np.cumsum(ZIP3_SHARE)


def draw_zip3(rng: np.random.Generator, n: int) -> np.ndarray:
    """Indices into :data:`ZIP3` for ``n`` practice locations, weighted by physician share."""
    picks = np.searchsorted(ZIP3_CUMULATIVE, rng.random(n), side="right")
    return np.minimum(picks, len(ZIP3) - 1).astype(np.int16)
