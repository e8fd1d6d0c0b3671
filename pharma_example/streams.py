"""Independent random streams, one per source (and per partition where that is cheap).

Every stream is a NumPy ``Generator`` keyed by the seed and by names, never by the order in
which the generator happens to run: adding weeks does not reshuffle the AMA file, and one
week's Rx rows depend only on the seed, the prescriber roster and that week's date.
"""

from __future__ import annotations

import zlib

import numpy as np

MASK64 = (1 << 64) - 1


def stream(seed: int, *names: str | int) -> np.random.Generator:
    """The random stream named ``names`` under ``seed`` (strings are keyed by their CRC-32)."""
    key = [zlib.crc32(n.encode()) if isinstance(n, str) else int(n) & MASK64 for n in names]
    return np.random.default_rng(np.random.SeedSequence([int(seed) & MASK64, *key]))


def unique_draw(rng: np.random.Generator, n: int, low: int, high: int, taken=None) -> np.ndarray:
    """``n`` distinct integers in ``[low, high)`` that are not in the sorted array ``taken``,
    in draw order (redrawing collisions, so the result depends on the stream only)."""
    taken = np.empty(0, np.int64) if taken is None else taken
    if n > (high - low) - len(taken):
        raise ValueError(f"cannot draw {n} distinct ids from [{low}, {high})")
    out = np.empty(0, np.int64)
    while len(out) < n:
        draw = rng.integers(low, high, n - len(out), dtype=np.int64)
        fresh = np.concatenate([out, draw])
        _, first = np.unique(fresh, return_index=True)
        keep = np.zeros(len(fresh), bool)
        keep[first] = True
        keep &= ~_member(fresh, taken)
        out = fresh[keep]
    return out


def _member(values: np.ndarray, sorted_pool: np.ndarray) -> np.ndarray:
    """Which values are in ``sorted_pool`` (binary search: the pool is neither copied nor
    re-sorted, which matters when it holds a million ids and the draw a handful)."""
    if not len(sorted_pool):
        return np.zeros(len(values), bool)
    at = np.minimum(np.searchsorted(sorted_pool, values), len(sorted_pool) - 1)
    return sorted_pool[at] == values
