"""memcached 1.6.18's ``-o`` suboptions: names, values, messages and exit statuses.

Each one either changes what memcachepy does or is accepted and noted (one line at
``-v``, in ``Settings.notes``) where it has no meaning in this design. The messages are
memcached's own; a bad value exits 1, as memcached's option loop does, and the checks
memcached makes once every flag is read (Settings.validate) exit 64.
"""

from __future__ import annotations

from memcachepy.config import ConfigError, Settings, TlsError
from memcachepy.store import extstore_config

BAD_VALUE = 1  # memcached returns 1 from main() for a bad suboption value
PAGE_SIZE = 1024 * 1024

# Suboptions that tune the store (memcachepy.store.tuning.StoreTuning.set_option).
_STORE_OPTIONS = frozenset(
    {
        "slab_reassign",
        "no_slab_reassign",
        "slab_automove",
        "no_slab_automove",
        "slab_automove_ratio",
        "slab_automove_window",
        "lru_crawler",
        "no_lru_crawler",
        "lru_crawler_sleep",
        "lru_crawler_tocrawl",
        "lru_maintainer",
        "no_lru_maintainer",
        "hot_lru_pct",
        "warm_lru_pct",
        "hot_max_factor",
        "warm_max_factor",
        "temporary_ttl",
        "track_sizes",
    }
)

# Accepted and noted: what each would do in memcached has no counterpart here.
_NOTED = {
    "no_inline_ascii_resp": "a no-op in memcached 1.6 as well",
    "inline_ascii_resp": "a no-op in memcached 1.6 as well",
    "drop_privileges": "memcached's seccomp filter; memcachepy drops root with -u only",
    "no_drop_privileges": "memcached's seccomp filter is not used here (the default)",
    "sock_cookie_id": "no socket cookies are set here",
}


def apply_suboptions(settings: Settings, groups: list[str]) -> bool:
    """Apply each ``-o`` argument (comma-separated suboptions), in order.

    Returns whether the slab chunk size was set (memcached's slab_chunk_size_changed).
    """
    chunk_max_given = False
    for group in groups:
        for option in filter(None, group.split(",")):
            name, has_value, text = option.partition("=")
            value = text if has_value else None
            if name in ("slab_chunk_max", "no_chunked_items"):
                chunk_max_given = True
            if name == "no_modern":
                _no_modern(settings, chunk_max_given)
                continue
            apply_one(settings, name, value, option)
    return chunk_max_given


def _no_modern(settings: Settings, chunk_max_given: bool) -> None:
    """memcached 1.4's defaults: no chunked items, flat LRU, no background threads."""
    store = settings.store
    if not chunk_max_given:
        store.slab_chunk_max = PAGE_SIZE
    store.slab_reassign = False
    store.slab_automove = 0
    store.lru_segmented = store.lru_maintainer = False
    store.lru_crawler = False
    settings.maxconns_fast = False
    settings.hash_algorithm = "jenkins"


def apply_one(settings: Settings, name: str, value: str | None, option: str) -> None:
    """One suboption; raises ConfigError with memcached's message and exit status."""
    if name in _STORE_OPTIONS:
        try:
            settings.store.set_option(name, value)
        except ValueError as exc:
            raise ConfigError(str(exc), BAD_VALUE) from None
    elif name == "modern":
        pass  # memcached 1.6.18: "currently: nothing"
    elif name == "idle_timeout":
        settings.idle_timeout = _number(
            value,
            "Missing numeric argument for idle_timeout",
            f"Invalid idle_timeout value: {value!r}",
        )
    elif name in ("maxconns_fast", "no_maxconns_fast"):
        settings.maxconns_fast = name == "maxconns_fast"
        if not settings.maxconns_fast:
            settings.notes.append(
                "-o no_maxconns_fast: connections over -c are still "
                "answered with the error and closed at once"
            )
    elif name == "hashpower":
        power = _number(value, "Missing numeric argument for hashpower", "")
        if power < 12:
            raise ConfigError(f"Initial hashtable multiplier of {power} is too low", BAD_VALUE)
        if power > 32:
            raise ConfigError(
                f"Initial hashtable multiplier of {power} is too high "
                'Choose a value based on "STAT hash_power_level" from a '
                "running instance",
                BAD_VALUE,
            )
        settings.hashpower_init = settings.store.hashpower_init = power
    elif name == "no_hashexpand":
        settings.hash_expand = settings.store.hash_expand = False
    elif name == "tail_repair_time":
        seconds = _number(value, "Missing numeric argument for tail_repair_time", "")
        if seconds < 10:
            raise ConfigError("Cannot set tail_repair_time to less than 10 seconds", BAD_VALUE)
        settings.tail_repair_time = seconds
        settings.notes.append(
            "-o tail_repair_time: no item references can leak here, so there is nothing to repair"
        )
    elif name == "hash_algorithm":
        if value is None:
            raise ConfigError("Missing hash_algorithm argument", BAD_VALUE)
        if value not in ("jenkins", "murmur3", "xxh3"):
            raise ConfigError("Unknown hash_algorithm option (jenkins, murmur3, xxh3)", BAD_VALUE)
        settings.hash_algorithm = value
        settings.notes.append(
            f"-o hash_algorithm={value}: keys are hashed by Python's "
            "dict here; the name is reported in stats settings"
        )
    elif name in ("watcher_logbuf_size", "worker_logbuf_size"):
        size = _number(value, f"Missing {name} argument", f"could not parse argument to {name}")
        setattr(settings, name, size * 1024)
    elif name == "read_buf_mem_limit":
        size = _number(
            value,
            "Missing read_buf_mem_limit argument",
            "could not parse argument to read_buf_mem_limit",
        )
        settings.read_buf_mem_limit = size * 1024 * 1024
    elif name == "conn_mem_limit":
        size = _number(
            value,
            "Missing conn_mem_limit argument",
            "could not parse argument to conn_mem_limit",
        )
        settings.conn_mem_limit = size * 1024 * 1024
    elif name == "slab_chunk_max":
        # memcached prints its complaints here and carries on; the checks after the option
        # loop then refuse what cannot work. A value that is not a number is refused here.
        size = _number(
            value, "Missing slab_chunk_max argument", "could not parse argument to slab_chunk_max"
        )
        settings.store.slab_chunk_max = size
    elif name == "no_chunked_items":
        settings.store.slab_chunk_max = PAGE_SIZE
    elif name == "slab_sizes":
        settings.store.slab_sizes = _slab_sizes(value or "", settings)
    elif name == "resp_obj_mem_limit":
        settings.notes.append(
            "DEPRECATED: resp_obj_mem_limit no longer used. See read_buf_mem_limit,"
        )
    elif name == "sasl_pwdb":
        settings.sasl_pwdb = value
    elif name.startswith("ssl_"):
        try:
            known = settings.tls.set_option(name, value or "")
        except TlsError as exc:
            raise ConfigError(str(exc), BAD_VALUE) from None
        if not known:
            raise ConfigError(f'Illegal suboption "{option}"', BAD_VALUE)
    elif name in extstore_config.OPTIONS:
        try:
            settings.extstore.set_option(name, value)
        except ValueError as exc:
            raise ConfigError(str(exc), BAD_VALUE) from None
        if name in ("ext_threads", "ext_io_depth"):
            settings.notes.append(
                f"-o {name}: flash reads and writes run in the event "
                "loop's thread here (os.pread/os.pwrite)"
            )
    elif name in _NOTED:
        reason = _NOTED[name]
        settings.notes.append(f"-o {name}: {reason}")
        if name == "drop_privileges":
            settings.drop_privileges = True
    else:
        raise ConfigError(f'Illegal suboption "{option}"', BAD_VALUE)


def _number(value: str | None, missing: str, bad: str) -> int:
    if value is None:
        raise ConfigError(missing, BAD_VALUE)
    try:
        return int(value)
    except ValueError:
        raise ConfigError(bad or f"could not parse argument {value!r}", BAD_VALUE) from None


def _slab_sizes(text: str, settings: Settings) -> tuple[int, ...]:
    """``slab_sizes=96-120-...``, checked as memcached's _parse_slab_sizes checks it."""
    sizes: list[int] = []
    last = 0
    for part in text.split("-"):
        try:
            size = int(part)
        except ValueError:
            size = -1
        if size < settings.min_chunk or size > settings.store.slab_chunk_max:
            raise ConfigError(f"slab size {max(size, 0)} is out of valid range")
        if last >= size:
            raise ConfigError(
                f"slab size {size} cannot be lower than or equal to a previous class size"
            )
        if size <= last + 8:
            raise ConfigError(
                f"slab size {size} must be at least 8 bytes larger than previous class"
            )
        sizes.append(size)
        last = size
        if len(sizes) >= 63:
            raise ConfigError("too many slab classes specified")
    return tuple(sizes)
