"""Key hashes: published test vectors, and the C libraries' signed-char quirk.

Agreement with twemproxy's own hashes (every one, ASCII and high-bit keys) is checked
end to end in test_placement.py.
"""

from __future__ import annotations

import pytest

from memcachepy.cluster import hashing
from memcachepy.cluster.hashing import HASH_FUNCTIONS, hash_function

VECTORS = [
    # (hash, key, expected): FNV, CRC and one-at-a-time values published with each algorithm.
    ("fnv1a_32", b"a", 0xE40C292C),
    ("fnv1a_32", b"foobar", 0xBF9CF968),
    ("fnv1_32", b"a", 0x050C5D7E),
    ("fnv1_32", b"foobar", 0x31F0B262),
    ("fnv1_64", b"a", 0xAF63BD4C8601B7BE & 0xFFFFFFFF),
    ("fnv1_64", b"foobar", 0x340D8765A4DDA9C2 & 0xFFFFFFFF),
    ("crc32a", b"123456789", 0xCBF43926),
    ("crc32", b"123456789", (0xCBF43926 >> 16) & 0x7FFF),
    ("one_at_a_time", b"a", 0xCA2E9442),
    ("one_at_a_time", b"The quick brown fox jumps over the lazy dog", 0x519E91F5),
    ("md5", b"", 0xD98C1DD4),  # d41d8cd9... read little-endian
]


@pytest.mark.parametrize(("name", "key", "expected"), VECTORS)
def test_published_vectors(name: str, key: bytes, expected: int) -> None:
    assert hash_function(name)(key) == expected


def test_crc16_is_xmodem_in_its_low_bits() -> None:
    assert hashing.crc16(b"123456789") & 0xFFFF == 0x31C3


def test_lookup3_core_matches_published_vectors() -> None:
    assert hashing._hashlittle(b"", 0) == 0xDEADBEEF
    assert hashing._hashlittle(b"Four score and seven years ago", 0) == 0x17770551
    assert hashing._hashlittle(b"Four score and seven years ago", 1) == 0xCD628161


def test_fnv1a_64_is_the_truncated_variant() -> None:
    # The C code keeps 32 bits of state with the truncated 64-bit basis and prime.
    assert hashing.fnv1a_64(b"") == 0x84222325
    assert hashing.fnv1a_64(b"a") == ((0x84222325 ^ 0x61) * 0x1B3) & 0xFFFFFFFF


def test_high_bytes_are_sign_extended_like_a_c_char() -> None:
    sign_extended = 0xFFFFFF00 | 0xE9
    assert hashing.fnv1a_32(b"\xe9") == ((2166136261 ^ sign_extended) * 16777619) & 0xFFFFFFFF
    assert hashing.fnv1a_32(b"\xe9") != ((2166136261 ^ 0xE9) * 16777619) & 0xFFFFFFFF


@pytest.mark.parametrize("name", sorted(HASH_FUNCTIONS))
def test_every_hash_is_32_bit_and_deterministic(name: str) -> None:
    function = hash_function(name)
    for key in (b"", b"k", b"key-1", b"\xff\x80abc", bytes(range(1, 250))):
        value = function(key)
        assert 0 <= value <= 0xFFFFFFFF
        assert function(key) == value


def test_unknown_hash_name() -> None:
    with pytest.raises(ValueError, match="unknown key hash 'sha1'"):
        hash_function("sha1")
