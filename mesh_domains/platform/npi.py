"""National Provider Identifier (NPI) helpers.

An NPI is 10 digits: 9 identifying digits (the first one is 1 for individuals, 2 for
organisations) and a Luhn check digit.  CMS computes the check digit as if the NPI were
prefixed with the card-issuer code "80840", so a plain Luhn over the 10 digits is wrong;
the prefix always contributes 24 to the Luhn sum, which is the shortcut used here.

The same rule exists three times: in Python (for generating and checking single values), as an
ibis expression (for pandera's own engine) and as plain DuckDB SQL (for contracts compiled to
one query), so data-quality checks run inside DuckDB without a Python UDF.  The tests keep the
three in agreement.
"""

from __future__ import annotations

import random
import re

import ibis
import ibis.expr.types as ir

# Luhn contribution of the constant "80840" prefix: 8 + (0*2) + 8 + (4*2) + 0 = 24.
PREFIX_LUHN_SUM = 24
_NPI_PATTERN = r"^[12][0-9]{9}$"
_NPI_RE = re.compile(_NPI_PATTERN)


def _doubled(digit: int) -> int:
    """Luhn doubling: double the digit and add the two digits of the result."""
    return digit * 2 - 9 if digit >= 5 else digit * 2


def _luhn_sum(first9: str) -> int:
    """Luhn sum of the prefixed identifier, without the check digit.

    Counting from the check digit leftwards, every other digit is doubled; for the 9 digits
    that is positions 0, 2, 4, 6 and 8.
    """
    digits = [int(ch) for ch in first9]
    return PREFIX_LUHN_SUM + sum(_doubled(d) if i % 2 == 0 else d for i, d in enumerate(digits))


def npi_check_digit(first9: str) -> int:
    """Check digit for the 9 identifying digits, per the CMS rule (Luhn with "80840" prefix)."""
    if len(first9) != 9 or not (first9.isascii() and first9.isdigit()):
        raise ValueError(f"expected 9 ASCII digits, got {first9!r}")
    return (10 - _luhn_sum(first9) % 10) % 10


def is_valid_npi(value: str | None) -> bool:
    """True for 10 ASCII digits starting with 1 or 2 whose last digit is the check digit.

    Shape is checked first so that garbage (None, blanks, letters, 11 digits) is simply
    invalid instead of raising.
    """
    if not isinstance(value, str) or not _NPI_RE.fullmatch(value):
        return False
    return npi_check_digit(value[:9]) == int(value[9])


def make_npi(rng: random.Random) -> str:
    """Random valid individual-provider NPI (leading 1), drawn only from ``rng``.

    Taking the generator as an argument keeps synthetic data reproducible.
    """
    first9 = f"1{rng.randrange(10**8):08d}"
    return f"{first9}{npi_check_digit(first9)}"


def npi_valid_expr(col: ir.StringValue) -> ir.BooleanValue:
    """Ibis boolean expression: True exactly when ``col`` holds a valid NPI.

    Same rule as :func:`is_valid_npi` (including the leading 1/2), built from plain string and
    integer operations so it compiles to SQL and runs in the backend.  Malformed values are
    swapped for a harmless all-zero string before the digits are cast, so the cast can never
    fail; null input gives False, so the result can be used directly as a filter.
    """
    well_formed = col.re_search(_NPI_PATTERN).fill_null(False)
    safe = well_formed.ifelse(col, ibis.literal("0000000000"))
    digits = [safe.substr(i, 1).cast("int16") for i in range(10)]
    doubled = [(d * 2) - (d >= 5).ifelse(9, 0) for d in digits[0:9:2]]
    total = PREFIX_LUHN_SUM + sum(doubled) + sum(digits[1:9:2]) + digits[9]
    return well_formed & ((total % 10) == 0)


# Luhn contribution of each two-digit group "ab" of the NPI, where a sits in a doubled place
# (the 1st, 3rd, ... 9th digit) and b in a plain one: the 10 digits are 5 such groups.
_PAIR_LUHN = [_doubled(a) + b for a in range(10) for b in range(10)]


def npi_number_sql(col: str) -> str:
    """The NPI in ``col`` as a BIGINT (null if it is not one), for :func:`npi_valid_sql`."""
    return f"try_cast({col} as bigint)"


def npi_valid_sql(col: str, number: str | None = None) -> str:
    """DuckDB SQL boolean: true exactly when ``col`` holds a valid NPI (never null).

    The same rule as :func:`is_valid_npi` and :func:`npi_valid_expr`, as plain SQL so that a
    contract compiles to one query; the tests keep all three in agreement. The shape is one
    regular expression; the Luhn sum adds a table lookup per pair of digits of the number.
    ``number`` names a column or expression already holding :func:`npi_number_sql` of ``col``
    (a contract computes it once per row: the sum reads it five times).
    """
    number = number or npi_number_sql(col)
    table = "[" + ", ".join(map(str, _PAIR_LUHN)) + "]"
    pairs = " + ".join(f"{table}[({number} // {100**k}) % 100 + 1]" for k in range(5))
    shape = _NPI_PATTERN.strip("^$")
    return (
        f"coalesce(regexp_full_match({col}, '{shape}') "
        f"and ({PREFIX_LUHN_SUM} + {pairs}) % 10 = 0, false)"
    )
