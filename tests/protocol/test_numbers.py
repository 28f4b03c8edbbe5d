"""Number parsing follows memcached's safe_strto* helpers, quirks included."""

from hypothesis import given
from hypothesis import strategies as st

from memcachepy.protocol.numbers import parse_i32, parse_u32, parse_u64


def test_u64_plain_and_plus_sign() -> None:
    assert parse_u64(b"0") == 0
    assert parse_u64(b"+5") == 5
    assert parse_u64(b"18446744073709551615") == 2**64 - 1


def test_u64_rejects_overflow_garbage_and_python_only_forms() -> None:
    for token in (b"18446744073709551616", b"", b"abc", b"5x", b"1_0", b"0x10", b"--1", b"+-1"):
        assert parse_u64(token) is None, token


def test_u64_minus_is_refused_only_when_the_result_looks_negative() -> None:
    assert parse_u64(b"-1") is None
    assert parse_u64(b"-0") == 0
    # strtoull negates in unsigned arithmetic: -(2**64-1) wraps to 1, which looks positive.
    assert parse_u64(b"-18446744073709551615") == 1


def test_whitespace_rules_of_strtoul() -> None:
    assert parse_u64(b"\t7") == 7  # leading whitespace skipped
    assert parse_u64(b"7\tjunk") == 7  # whitespace ends the number; the rest is ignored
    assert parse_u64(b"7\x00") is None


def test_u32_wraps_large_values() -> None:
    assert parse_u32(b"4294967296") == 0
    assert parse_u32(b"4294967301") == 5
    assert parse_u32(b"-1") is None


def test_i32_truncates_a_64_bit_parse() -> None:
    assert parse_i32(b"-1") == -1
    assert parse_i32(b"2147483647") == 2147483647
    assert parse_i32(b"4294967295") == -1
    assert parse_i32(b"2147483648") == -2147483648
    assert parse_i32(b"9223372036854775808") is None


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_u64_round_trips_every_value(value: int) -> None:
    assert parse_u64(str(value).encode()) == value


@given(st.binary(max_size=30))
def test_parsers_never_raise(token: bytes) -> None:
    for parse in (parse_u64, parse_u32, parse_i32):
        result = parse(token)
        assert result is None or isinstance(result, int)


@given(st.text(alphabet="0123456789", min_size=1, max_size=25))
def test_digit_strings_agree_with_the_c_rules(digits: str) -> None:
    value = int(digits)
    token = digits.encode()
    assert parse_u64(token) == (value if value < 2**64 else None)
    assert parse_u32(token) == (value & 0xFFFFFFFF if value < 2**64 else None)
    expected_i32 = None
    if value < 2**63:
        low = value & 0xFFFFFFFF
        expected_i32 = low - 2**32 if low & 0x80000000 else low
    assert parse_i32(token) == expected_i32


def _strtoull(token: bytes) -> int | None:
    """A reference for the short tokens below, from the C rules stated in the module."""
    text = token.lstrip(b" \t\n\v\f\r")
    sign = text[:1] if text[:1] in (b"+", b"-") else b""
    body = text[len(sign) :]
    digits = body[: len(body) - len(body.lstrip(b"0123456789"))]
    rest = body[len(digits) :]
    if not digits or (rest and rest[:1] not in b" \t\n\v\f\r"):
        return None
    value = int(digits)
    if sign == b"-":
        value = -value % 2**64
        if value > 2**63 - 1:
            return None
    return value


@given(
    st.binary(min_size=1, max_size=11).map(
        lambda raw: bytes(b"0123456789+- \tx"[c % 15] for c in raw)
    )
)
def test_short_tokens_parse_as_strtoul_does(token: bytes) -> None:
    # Tokens of 1-9 digits take a fast path; the rest (signs, blanks, stray bytes) the
    # general one. Both must answer as the C rules do.
    expected = _strtoull(token)
    assert parse_u64(token) == expected
    assert parse_u32(token) == (None if expected is None else expected & 0xFFFFFFFF)
