"""Key hash functions as libmemcached and twemproxy compute them.

Every function maps a key (bytes) to an unsigned 32-bit integer, the position of the key
on a ketama ring. The names are twemproxy's ``hash:`` values. They reproduce the C code's
results, quirks included, because a ring only agrees with another implementation if the
same key lands on the same 32-bit point:

* ``md5`` takes the first four digest bytes as a little-endian integer (libmemcached's
  ketama and twemproxy with ``hash: md5``).
* ``fnv1a_64`` is not a 64-bit FNV: the C code keeps the state in 32 bits and truncates
  the 64-bit offset basis and prime (twemproxy's default hash, libmemcached's too).
* The C code reads the key through a signed ``char``, so a byte >= 0x80 is sign-extended
  before it is mixed in (``fnv1*``, ``one_at_a_time``, the third tail byte of ``hsieh``).
  Only keys with such bytes are affected; they are reproduced on purpose.
* ``crc32`` is libmemcached's variant: bits 16..30 of the CRC-32, so it only spans
  0..32767. ``crc32a`` is the plain CRC-32.
* ``crc16`` keeps its running value in 32 bits and never masks it to 16.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable

__all__ = ["HASH_FUNCTIONS", "KeyHash", "hash_function", "hash_names"]

KeyHash = Callable[[bytes], int]

_M32 = 0xFFFFFFFF
_M64 = 0xFFFFFFFFFFFFFFFF


def _sext32(byte: int) -> int:
    """A byte read through a signed char, converted to uint32 as C does."""
    return byte | 0xFFFFFF00 if byte & 0x80 else byte


def _sext64(byte: int) -> int:
    """A byte read through a signed char, converted to uint64 as C does."""
    return byte | 0xFFFFFFFFFFFFFF00 if byte & 0x80 else byte


def md5(key: bytes) -> int:
    """First four bytes of MD5(key), little-endian."""
    return int.from_bytes(hashlib.md5(key).digest()[:4], "little")


_FNV64_INIT = 0xCBF29CE484222325
_FNV64_PRIME = 0x100000001B3
_FNV32_INIT = 2166136261
_FNV32_PRIME = 16777619


def fnv1_64(key: bytes) -> int:
    """FNV-1 over 64 bits, truncated to the low 32 bits."""
    value = _FNV64_INIT
    for byte in key:
        value = ((value * _FNV64_PRIME) & _M64) ^ _sext64(byte)
    return value & _M32


def fnv1a_64(key: bytes) -> int:
    """The C libraries' "FNV-1a 64": 32-bit state with the 64-bit constants truncated."""
    value = _FNV64_INIT & _M32
    prime = _FNV64_PRIME & _M32
    for byte in key:
        value = ((value ^ _sext32(byte)) * prime) & _M32
    return value


def fnv1_32(key: bytes) -> int:
    """FNV-1, 32 bits."""
    value = _FNV32_INIT
    for byte in key:
        value = ((value * _FNV32_PRIME) & _M32) ^ _sext32(byte)
    return value


def fnv1a_32(key: bytes) -> int:
    """FNV-1a, 32 bits."""
    value = _FNV32_INIT
    for byte in key:
        value = ((value ^ _sext32(byte)) * _FNV32_PRIME) & _M32
    return value


def one_at_a_time(key: bytes) -> int:
    """Bob Jenkins' one-at-a-time hash (libmemcached's "default")."""
    value = 0
    for byte in key:
        value = (value + _sext32(byte)) & _M32
        value = (value + (value << 10)) & _M32
        value ^= value >> 6
    value = (value + (value << 3)) & _M32
    value ^= value >> 11
    return (value + (value << 15)) & _M32


def crc32(key: bytes) -> int:
    """libmemcached's CRC: bits 16..30 of the standard CRC-32."""
    return (zlib.crc32(key) >> 16) & 0x7FFF


def crc32a(key: bytes) -> int:
    """The standard CRC-32 (as zlib computes it)."""
    return zlib.crc32(key) & _M32


def _crc16_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC16_TABLE = _crc16_table()


def crc16(key: bytes) -> int:
    """CRC-16/XMODEM table steps, with the running value kept in 32 bits as the C code does."""
    crc = 0
    for byte in key:
        crc = ((crc << 8) & _M32) ^ _CRC16_TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


def murmur(key: bytes) -> int:
    """MurmurHash2 (32 bits) seeded with ``0xdeadbeef * len(key)``, as libmemcached does."""
    m = 0x5BD1E995
    length = len(key)
    h = ((0xDEADBEEF * length) & _M32) ^ (length & _M32)
    whole = length - length % 4
    for offset in range(0, whole, 4):
        k = int.from_bytes(key[offset : offset + 4], "little")
        k = (k * m) & _M32
        k ^= k >> 24
        k = (k * m) & _M32
        h = ((h * m) & _M32) ^ k
    tail = key[whole:]
    if tail:
        if len(tail) == 3:
            h ^= tail[2] << 16
        if len(tail) >= 2:
            h ^= tail[1] << 8
        h = ((h ^ tail[0]) * m) & _M32
    h ^= h >> 13
    h = (h * m) & _M32
    return h ^ (h >> 15)


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M32


def _lookup3_mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    for shift_c, shift_a, shift_b in ((4, 6, 8), (16, 19, 4)):
        a = ((a - c) & _M32) ^ _rot(c, shift_c)
        c = (c + b) & _M32
        b = ((b - a) & _M32) ^ _rot(a, shift_a)
        a = (a + c) & _M32
        c = ((c - b) & _M32) ^ _rot(b, shift_b)
        b = (b + a) & _M32
    return a, b, c


def _lookup3_final(a: int, b: int, c: int) -> int:
    c = ((c ^ b) - _rot(b, 14)) & _M32
    a = ((a ^ c) - _rot(c, 11)) & _M32
    b = ((b ^ a) - _rot(a, 25)) & _M32
    c = ((c ^ b) - _rot(b, 16)) & _M32
    a = ((a ^ c) - _rot(c, 4)) & _M32
    b = ((b ^ a) - _rot(a, 14)) & _M32
    return ((c ^ b) - _rot(b, 24)) & _M32


def jenkins(key: bytes) -> int:
    """Bob Jenkins' lookup3 ``hashlittle`` with initval 13."""
    return _hashlittle(key, 13)


def _hashlittle(key: bytes, initval: int) -> int:
    length = len(key)
    a = b = c = (0xDEADBEEF + length + initval) & _M32
    if length == 0:
        return c
    offset = 0
    # All blocks but the last (which holds 1..12 bytes) go through mix().
    while length - offset > 12:
        a = (a + int.from_bytes(key[offset : offset + 4], "little")) & _M32
        b = (b + int.from_bytes(key[offset + 4 : offset + 8], "little")) & _M32
        c = (c + int.from_bytes(key[offset + 8 : offset + 12], "little")) & _M32
        a, b, c = _lookup3_mix(a, b, c)
        offset += 12
    tail = key[offset:].ljust(12, b"\0")
    a = (a + int.from_bytes(tail[0:4], "little")) & _M32
    b = (b + int.from_bytes(tail[4:8], "little")) & _M32
    c = (c + int.from_bytes(tail[8:12], "little")) & _M32
    return _lookup3_final(a, b, c)


def hsieh(key: bytes) -> int:
    """Paul Hsieh's SuperFastHash."""
    if not key:
        return 0
    value = 0
    whole = len(key) - len(key) % 4
    for offset in range(0, whole, 4):
        value = (value + (key[offset] | key[offset + 1] << 8)) & _M32
        tmp = (((key[offset + 2] | key[offset + 3] << 8) << 11) ^ value) & _M32
        value = ((value << 16) & _M32) ^ tmp
        value = (value + (value >> 11)) & _M32
    tail = key[whole:]
    if len(tail) == 3:
        value = (value + (tail[0] | tail[1] << 8)) & _M32
        value ^= (value << 16) & _M32
        value ^= (_sext32(tail[2]) << 18) & _M32
        value = (value + (value >> 11)) & _M32
    elif len(tail) == 2:
        value = (value + (tail[0] | tail[1] << 8)) & _M32
        value ^= (value << 11) & _M32
        value = (value + (value >> 17)) & _M32
    elif len(tail) == 1:
        value = (value + tail[0]) & _M32
        value ^= (value << 10) & _M32
        value = (value + (value >> 1)) & _M32
    value ^= (value << 3) & _M32
    value = (value + (value >> 5)) & _M32
    value ^= (value << 4) & _M32
    value = (value + (value >> 17)) & _M32
    value ^= (value << 25) & _M32
    return (value + (value >> 6)) & _M32


#: Every key hash by its twemproxy name.
HASH_FUNCTIONS: dict[str, KeyHash] = {
    "md5": md5,
    "fnv1a_64": fnv1a_64,
    "fnv1_64": fnv1_64,
    "fnv1a_32": fnv1a_32,
    "fnv1_32": fnv1_32,
    "one_at_a_time": one_at_a_time,
    "crc32": crc32,
    "crc32a": crc32a,
    "crc16": crc16,
    "murmur": murmur,
    "jenkins": jenkins,
    "hsieh": hsieh,
}


def hash_names() -> list[str]:
    """The names accepted by :func:`hash_function`."""
    return list(HASH_FUNCTIONS)


def hash_function(name: str) -> KeyHash:
    """The key hash called ``name`` (twemproxy's spelling); ``ValueError`` if unknown."""
    try:
        return HASH_FUNCTIONS[name]
    except KeyError:
        known = ", ".join(HASH_FUNCTIONS)
        raise ValueError(f"unknown key hash {name!r} (known: {known})") from None
