"""resource.Quantity parsing and canonical units, checked against Kubernetes semantics."""

from __future__ import annotations

import math
import re
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster_scheduler.model.quantity import (
    MAX_CANONICAL,
    QuantityError,
    parse_quantity,
    to_canonical,
)

DECIMAL = {"n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": 1,
           "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
INT64_MAX = 2**63 - 1
NANO = Fraction(1, 10**9)


def _ceil_nano(v: Fraction) -> Fraction:
    """resource.Quantity rounds the magnitude of non-zero values up to the nano grid."""
    mag = abs(v)
    n = math.ceil(mag / NANO) * NANO
    return n if v >= 0 else -n


def go_parse(s: str) -> Fraction | None:
    """Independent oracle: the algorithm of apimachinery's parseQuantityString + suffix
    interpretation, char by char (None where Go returns an error). It accepts the digit-less
    forms ("-", ".") and has no upper bound; the tests account for both deviations."""
    if s == "":
        return None
    pos, end, positive = 0, len(s), True
    if s[0] in "+-":
        positive = s[0] == "+"
        pos = 1
    while pos < end and s[pos] == "0":
        pos += 1
    start = pos
    while pos < end and s[pos].isascii() and s[pos].isdigit():
        pos += 1
    num = s[start:pos] or "0"
    denom = ""
    if pos < end and s[pos] == ".":
        pos += 1
        start = pos
        while pos < end and s[pos].isascii() and s[pos].isdigit():
            pos += 1
        denom = s[start:pos]
    suffix_start = pos
    while pos < end and s[pos] in "eEinumkKMGTP":
        pos += 1
    if pos < end and s[pos] in "+-":
        pos += 1
    while pos < end and s[pos].isascii() and s[pos].isdigit():
        pos += 1
    if pos < end:
        return None
    suffix = s[suffix_start:]
    mant = Fraction(int(num + denom), 10 ** len(denom))
    if suffix in DECIMAL:
        mult: Fraction | int = DECIMAL[suffix]
    elif suffix in BINARY:
        mult = BINARY[suffix]
    elif len(suffix) > 1 and suffix[0] in "eE":
        e = suffix[1:]
        body = e[1:] if e[0] in "+-" else e
        if not body or not all(c in "0123456789" for c in body):
            return None
        exp = int(e)
        if mant != 0 and exp > 40:
            return Fraction(10**40)  # far beyond int64: the caller expects "too large"
        if mant != 0 and exp < -40:
            return NANO if positive else -NANO
        mult = Fraction(10) ** exp
    else:
        return None
    v = _ceil_nano(mant * mult)
    return v if positive else -v


# ---------------------------------------------------------------------------------------------
# examples from the brief and from Kubernetes' documentation
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("s,expected", [
    ("1", 1), ("0", 0), ("-0", 0), ("+5", 5), ("1.5", Fraction(3, 2)), (".5", Fraction(1, 2)),
    ("5.", 5), ("0.001", Fraction(1, 1000)), ("1m", Fraction(1, 1000)), ("100m", Fraction(1, 10)),
    ("1Ki", 1024), ("1.5Gi", 1536 * 2**20), (".5Ki", 512), ("1e3", 1000), ("1E3", 1000),
    ("1e+3", 1000), ("1E-3", Fraction(1, 1000)), ("12e6", 12_000_000), ("129e6", 129_000_000),
    ("129M", 129_000_000), ("123Mi", 123 * 2**20), ("1E", 10**18), ("1Ei", 2**60),
    ("1n", NANO), ("1u", Fraction(1, 10**6)), ("-1.5k", -1500), ("007", 7),
    ("1e-12", NANO),  # non-zero values below 1n round up to 1n, as Quantity does
])
def test_examples(s, expected):
    assert parse_quantity(s) == expected


@pytest.mark.parametrize("s", [
    "", " ", "1 Gi", " 1", "1 ", "1\n", "1.5.5", "Ki5", "1kb", "1K", "1KI", "1ki", "--1", "+-1",
    "0x10", "inf", "-inf", "nan", "NaN", "1e", "1e+", "1E+", "1ee3", "1e1.5", "1e3k", "1Mi5",
    "1mi", "1i", "1EE", "e3", "-", "+", ".", "-.", "+.k", "١", "1_000", "1,5", "½", "Infinity",
    "8Ei", "1e19", "10E",  # above int64 (Go clamps them to 2**63-1; we refuse)
    "1" * 300,  # absurdly long
])
def test_rejects_junk(s):
    with pytest.raises(QuantityError) as err:
        parse_quantity(s)
    shown = s if len(s) <= 40 else s[:40]
    assert shown.strip() in str(err.value) or repr(s) in str(err.value)


@pytest.mark.parametrize("v", [True, False, None, [1], {"a": 1}, float("nan"), float("inf"),
                               -float("inf"), 2**64, b"1"])
def test_rejects_non_quantity_values(v):
    with pytest.raises(QuantityError):
        parse_quantity(v)


def test_python_numbers():
    assert parse_quantity(110) == 110
    assert parse_quantity(-3) == -3
    assert parse_quantity(0.5) == Fraction(1, 2)
    assert parse_quantity(0.1) == Fraction(1, 10)  # the YAML literal, not the binary float
    assert parse_quantity(1e-05) == Fraction(1, 100000)
    assert parse_quantity(2.0) == 2
    assert to_canonical("pods", 110) == 110
    assert to_canonical("cpu", 2) == 2000
    assert to_canonical("cpu", 0.25) == 250


def test_error_is_a_value_error_and_names_the_string():
    with pytest.raises(ValueError, match='"12x"'):
        parse_quantity("12x")


# ---------------------------------------------------------------------------------------------
# canonical units
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("resource,s,expected", [
    ("cpu", "1m", 1), ("cpu", "100m", 100), ("cpu", "1.5", 1500), ("cpu", "0.001", 1),
    ("cpu", "0.0001", 1),  # MilliValue rounds up
    ("cpu", "1", 1000), ("cpu", "250u", 1), ("cpu", "1001u", 2), ("cpu", "0", 0),
    ("memory", "1Ki", 1024), ("memory", "129e6", 129_000_000), ("memory", "1e3", 1000),
    ("memory", "1m", 1),  # Value rounds up
    ("memory", "1.5", 2), ("memory", "1Gi", 2**30), ("memory", "128974848", 128974848),
    ("nvidia.com/gpu", "2", 2), ("pods", "110", 110), ("ephemeral-storage", "10G", 10**10),
    ("memory", "4Ei", 2**62), ("cpu", "4611686018427387904m", 2**62),
])
def test_to_canonical(resource, s, expected):
    assert to_canonical(resource, s) == expected


@pytest.mark.parametrize("resource,s", [("cpu", "-1"), ("memory", "-1m"), ("memory", "-1Ki"),
                                        ("cpu", "-0.0001")])
def test_to_canonical_rejects_negative(resource, s):
    with pytest.raises(QuantityError, match="negative"):
        to_canonical(resource, s)


@pytest.mark.parametrize("resource,q", [("memory", "5Ei"), ("memory", "4611686018427387905"),
                                        ("cpu", "4611686018427388"), ("cpu", "5e15"),
                                        ("memory", 2**62 + 1), ("cpu", Fraction(2**62))])
def test_to_canonical_rejects_too_large(resource, q):
    with pytest.raises(QuantityError, match="too large"):
        to_canonical(resource, q)


def test_to_canonical_accepts_fractions():
    assert to_canonical("cpu", parse_quantity("1.5")) == 1500
    assert to_canonical("memory", Fraction(1, 3)) == 1
    assert to_canonical("cpu", Fraction(1, 3)) == 334
    assert to_canonical("memory", Fraction(0)) == 0
    for tiny in (Fraction(-1, 10**12), Fraction(-1, 2), Fraction(-3, 2)):
        with pytest.raises(QuantityError, match="negative"):
            to_canonical("memory", tiny)


# ---------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------

ints = st.integers(min_value=0, max_value=2**40)


@given(n=ints, suffix=st.sampled_from(sorted(DECIMAL) + sorted(BINARY)))
def test_round_trip_every_suffix(n, suffix):
    mult = DECIMAL.get(suffix) or BINARY[suffix]
    expected = n * Fraction(mult)
    s = f"{n}{suffix}"
    if expected > INT64_MAX:
        with pytest.raises(QuantityError, match="too large"):
            parse_quantity(s)
    else:
        assert parse_quantity(s) == expected
        assert parse_quantity("-" + s) == -expected
        assert parse_quantity("+" + s) == expected


@given(n=st.integers(min_value=0, max_value=10**15), exp=st.integers(min_value=-9, max_value=3))
def test_exponent_matches_decimal(n, exp):
    assert parse_quantity(f"{n}e{exp}") == n * Fraction(10) ** exp
    assert parse_quantity(f"{n}E{exp}") == n * Fraction(10) ** exp


@given(n=st.integers(min_value=0, max_value=10**9))
def test_decimal_and_binary_suffixes(n):
    assert parse_quantity(f"{n}k") == parse_quantity(f"{n}e3") == 1000 * n
    assert parse_quantity(f"{n}M") == parse_quantity(f"{n * 1000}k")
    assert parse_quantity(f"{n}Ki") == 1024 * n
    assert parse_quantity(f"{n}Mi") == parse_quantity(f"{n * 1024}Ki")
    if n:
        assert parse_quantity(f"{n}Ki") > parse_quantity(f"{n}k")
        assert parse_quantity(f"{n}Gi") > parse_quantity(f"{n}G")
    assert parse_quantity(f"{n}m") * 1000 == n
    assert to_canonical("cpu", f"{n}m") == n
    assert to_canonical("memory", f"{n}m") == -(-n // 1000)


@given(whole=st.integers(min_value=0, max_value=10**9), frac=st.text("0123456789", max_size=12))
def test_decimal_fractions_are_exact(whole, frac):
    s = f"{whole}.{frac}"
    exact = Fraction(int(f"{whole}{frac}"), 10 ** len(frac))
    assert parse_quantity(s) == _ceil_nano(exact)
    assert to_canonical("cpu", s) == math.ceil(exact * 1000)
    assert to_canonical("memory", s) == math.ceil(exact)
    if whole == 0 and frac:
        assert parse_quantity("." + frac) == parse_quantity(s)


@settings(max_examples=400, deadline=None)  # a shared 2-core machine: a busy neighbour is not a failure
@given(st.text(alphabet="0123456789+-.eEKMGTPikmnu", max_size=10))
def test_agrees_with_go_algorithm(s):
    expected = go_parse(s)
    mantissa = re.match(r"[+-]?[0-9]*\.?[0-9]*", s).group()
    has_digit = any(c.isdigit() for c in mantissa)
    if expected is None or not has_digit or abs(expected) > INT64_MAX:
        with pytest.raises(QuantityError):
            parse_quantity(s)
    else:
        assert parse_quantity(s) == expected


@given(st.text(max_size=12).filter(lambda s: any(c not in "0123456789+-.eEKMGTPEikmnu" for c in s)))
def test_foreign_characters_always_rejected(s):
    with pytest.raises(QuantityError):
        parse_quantity(s)


@given(n=st.integers(min_value=0, max_value=MAX_CANONICAL))
def test_canonical_bound_is_inclusive(n):
    assert to_canonical("memory", str(n)) == n
    with pytest.raises(QuantityError, match="too large"):
        to_canonical("memory", str(MAX_CANONICAL + 1 + n))
