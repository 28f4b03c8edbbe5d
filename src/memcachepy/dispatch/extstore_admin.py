"""``extstore <setting> <value>`` and extstore's side of a get, as memcached 1.6.18's
proto_text.c answers them (process_extstore_command, process_get_command's error path).

The text parser hands ``extstore`` lines to the admin dispatcher (memcachepy.dispatch.admin)
as it does ``slabs`` and ``lru``.
"""

from __future__ import annotations

from typing import Final

from memcachepy.protocol.wire import ERROR, KEY_MAX_LENGTH
from memcachepy.store.cache import Cache
from memcachepy.store.extstore_config import RUNTIME, ExtstoreConfig, parse_double, parse_u32

OK: Final = b"OK\r\n"


def extstore_command(args: list[bytes], config: ExtstoreConfig) -> bytes | None:
    """The reply to ``extstore`` with these arguments (None: ``noreply``). memcached takes
    these with or without ext_path: they only change settings."""
    tokens = list(args)
    noreply = bool(tokens) and tokens[-1] == b"noreply"
    if noreply:
        tokens = tokens[:-1]
    reply = _apply(tokens, config)
    return None if noreply else reply


def _apply(tokens: list[bytes], config: ExtstoreConfig) -> bytes:
    if len(tokens) < 2:
        return ERROR
    name = tokens[0].decode("ascii", "replace")
    text = tokens[1].decode("ascii", "replace")
    if name == "free_memchunks":  # deprecated and ignored, but checked, as memcached does
        if len(tokens) < 3:
            return ERROR
        clsid, limit = parse_u32(text), parse_u32(tokens[2].decode("ascii", "replace"))
        return OK if clsid is not None and limit is not None and clsid < 64 else ERROR
    if name not in RUNTIME:
        return ERROR
    value = parse_double(text) if name == "max_frag" else parse_u32(text)
    if value is None:
        if name != "drop_unread":
            # memcached's safe_strtoul/strtod zero their output before parsing: a bad
            # value answers ERROR and leaves the setting at 0.
            config.set_runtime(name, 0)
        return ERROR
    config.set_runtime(name, value)
    return OK


def count_aborted(cache: Cache, line: bytes | None) -> None:
    """A multi-get voided by a bad key: the reads memcached had queued for the keys before
    it are aborted (get_extstore and get_aborted_extstore count each)."""
    ext = cache.extstore
    if ext is None or line is None:
        return
    tokens = [t for t in line.split(b" ") if t]
    if not tokens or tokens[0] not in (b"get", b"gets", b"gat", b"gats"):
        return
    keys = tokens[2:] if tokens[0] in (b"gat", b"gats") else tokens[1:]
    for key in keys:
        if len(key) > KEY_MAX_LENGTH:
            break
        if ext.holds(key):
            ext.counters.get_extstore += 1
            ext.counters.get_aborted_extstore += 1
