"""Exact Kubernetes resource quantities (k8s.io/apimachinery resource.Quantity).

The engine stores every resource as an integer in canonical units (CPU in millicores, everything
else in whole units), and adding per-container values that were each rounded would differ from
what kube-scheduler computes: it sums exact quantities and rounds once (``MilliValue``/``Value``
round up). So quantities are carried as exact integers of *nano-units* until the final rounding.
Nano is exact for every Quantity: apimachinery itself rounds any finer value up (away from zero)
to the nano grid, so nano-units lose nothing the apiserver would keep.

Grammar accepted (the one documented on resource.Quantity)::

    quantity  ::= [+-] number [suffix]
    number    ::= digits | digits "." [digits] | "." digits
    suffix    ::= Ki | Mi | Gi | Ti | Pi | Ei            (binary SI)
                | n | u | m | k | M | G | T | P | E     (decimal SI)
                | (e | E) [+-] digits                   (decimal exponent)

Deliberate differences from the Go parser, all in the direction of rejecting nonsense it lets
through: a sign or "." with no digit at all ("-", "+", "."), surrounding whitespace (the Go JSON
decoder trims it), strings longer than ``MAX_QUANTITY_LEN`` and magnitudes above int64 (Go clamps
them to 2**63-1 silently, which is not the value the user wrote).

Non-string inputs: ``int`` is taken as-is (YAML gives ``pods: 110``); a finite ``float`` is read
through its shortest ``repr`` (YAML ``cpu: 0.5``; kubectl sends it to the apiserver as the JSON
number 0.5, which the apiserver accepts), so ``0.1`` means exactly one tenth; ``bool``, NaN and
infinities are rejected.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from functools import lru_cache

__all__ = [
    "QuantityError",
    "MAX_CANONICAL",
    "NANO",
    "parse_quantity",
    "quantity_nanos",
    "to_canonical",
    "nanos_to_canonical",
]

NANO = 10**9
MAX_CANONICAL = 2**62  # engine arrays are int64; sums of a few such values must not overflow
MAX_QUANTITY_LEN = 256
_MAX_NANOS = (2**63 - 1) * NANO  # resource.Quantity's own ceiling (maxAllowed = MaxInt64)

_BINARY_EXP = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_EXP = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

# [0-9] not \d: \d would accept non-ASCII digits, which Go does not.
_QUANTITY_RE = re.compile(
    r"([+-]?)([0-9]*)(?:\.([0-9]*))?"
    r"(?:(Ki|Mi|Gi|Ti|Pi|Ei)|[eE]([+-]?[0-9]+)|(n|u|m|k|M|G|T|P|E))?"
)


class QuantityError(ValueError):
    """A string that is not a valid Kubernetes quantity, or a value the engine cannot store.

    `reason` is the message without the offending value, for callers that add their own context
    (``invalid quantity "12x" for cpu in container "app": <reason>``)."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message


def _describe(s: object) -> str:
    if isinstance(s, str):
        return f'"{s}"' if s.isprintable() else repr(s)
    return repr(s)


def _invalid(value: object, reason: str) -> QuantityError:
    return QuantityError(f"invalid quantity {_describe(value)}: {reason}", reason)


@lru_cache(maxsize=16384)
def _parse_str_nanos(s: str) -> int:
    """Nano-units of a quantity string; bounded cache because pods repeat the same few strings."""
    if len(s) > MAX_QUANTITY_LEN:
        raise _invalid(s[:40] + "...", f"longer than {MAX_QUANTITY_LEN} characters")
    m = _QUANTITY_RE.fullmatch(s)
    if m is None:
        raise _invalid(s, "expected [+-]<number>[<suffix>] with suffix Ki|Mi|Gi|Ti|Pi|Ei, "
                             "n|u|m|k|M|G|T|P|E or e<exponent>")
    sign, whole, frac, binary, exp, decimal = m.groups()
    frac = frac or ""
    if not whole and not frac:
        raise _invalid(s, "no digits")
    digits = (whole + frac).lstrip("0")
    if not digits:
        return 0
    exp2 = 0
    if binary is not None:
        exp2 = _BINARY_EXP[binary]
        exp10 = 0
    elif exp is not None:
        exp10 = int(exp)
    else:
        exp10 = _DECIMAL_EXP[decimal or ""]
    # value = digits * 10**(p - 9) * 2**exp2, i.e. digits * 10**p * 2**exp2 nano-units.
    p = exp10 + 9 - len(frac)
    # The leading digit sits at 10**(len(digits) - 1 + p) nanos; above 10**29 nanos the value
    # exceeds int64 whatever the suffix, so refuse before building a huge integer.
    if len(digits) - 1 + p > 29:
        raise _invalid(s, "too large (above 2**63-1)")
    mant = int(digits) << exp2
    if p >= 0:
        nanos = mant * 10**p
    elif len(digits) + 19 + p < 0:
        nanos = 1  # far below one nano: Quantity rounds any non-zero value up to 1n
    else:
        nanos = -(-mant // 10**-p)  # round the magnitude up to the nano grid, as Quantity does
    if nanos > _MAX_NANOS:
        raise _invalid(s, "too large (above 2**63-1)")
    return -nanos if sign == "-" else nanos


def quantity_nanos(q: str | int | float) -> int:
    """The exact value of a quantity in nano-units (an int), the representation parse.py sums."""
    if isinstance(q, str):
        return _parse_str_nanos(q)
    if isinstance(q, bool):
        raise _invalid(q, "a boolean is not a quantity")
    if isinstance(q, int):
        if abs(q) > 2**63 - 1:
            raise _invalid(q, "too large (above 2**63-1)")
        return q * NANO
    if isinstance(q, float):
        if not math.isfinite(q):
            raise _invalid(q, "not a finite number")
        return _parse_str_nanos(repr(q))
    raise _invalid(q, f"expected a string or a number, got {type(q).__name__}")


def parse_quantity(s: str | int | float) -> Fraction:
    """Exact value of a Kubernetes quantity (``"1.5"`` -> 3/2, ``"1Ki"`` -> 1024).

    Raises QuantityError naming the offending string for anything outside the grammar in the
    module docstring. Values finer than 1e-9 are rounded up to it, as resource.Quantity does.
    """
    return Fraction(quantity_nanos(s), NANO)


def _round_up_canonical(resource: str, nanos: int) -> int:
    """Canonical integer for a nano-unit value, rounded up as kube's MilliValue()/Value() do."""
    if resource == "cpu":
        return -(-nanos // 1_000_000)
    return -(-nanos // NANO)


def nanos_to_canonical(resource: str, nanos: int, what: str = "") -> int:
    """Canonical integer for a nano-unit value; refuses negatives and values above 2**62.

    `what` is the human description used in the error (defaults to the value itself)."""
    if nanos < 0:  # checked before rounding: "-1m" of memory must not pass as 0
        raise QuantityError(f"{what or 'quantity'} for {resource} is negative", "negative")
    v = _round_up_canonical(resource, nanos)
    if v > MAX_CANONICAL:
        reason = f"too large (above 2**62 {'millicores' if resource == 'cpu' else 'units'})"
        raise QuantityError(f"{what or 'quantity'} for {resource} is {reason}", reason)
    return v


@lru_cache(maxsize=16384)
def _canonical_str(resource: str, s: str) -> int:
    return nanos_to_canonical(resource, _parse_str_nanos(s), f"quantity {_describe(s)}")


def to_canonical(resource: str, q: str | int | float | Fraction) -> int:
    """The integer the engine stores for `q` of `resource`: millicores for ``cpu`` (rounded up,
    like kube's MilliValue), whole units for everything else (rounded up, like Value()).

    Requests and allocatable are never negative, and the engine's int64 arrays must be able to
    sum them, so negatives and values above 2**62 raise QuantityError."""
    if isinstance(q, str):
        return _canonical_str(resource, q)
    if isinstance(q, Fraction):
        # Round to the nano grid first (up, in magnitude), as a parsed Quantity would be.
        n = q * NANO
        nanos = -(-n.numerator // n.denominator) if n >= 0 else n.numerator // n.denominator
        return nanos_to_canonical(resource, nanos, f"quantity {q}")
    return nanos_to_canonical(resource, quantity_nanos(q), f"quantity {_describe(q)}")
