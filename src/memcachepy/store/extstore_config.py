"""The external storage tier's settings (``-o ext_*``), with memcached 1.6.18's names,
defaults and messages (storage.c's storage_read_config and storage_check_config).

One object is shared by the daemon settings and the cache, so ``extstore item_age 5`` at
run time changes what the background writer does at once, and ``stats settings`` reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MB = 1024 * 1024
UINT_MAX = 0xFFFFFFFF
# memcached's page buckets: where a written item's page comes from.
BUCKET_DEFAULT = 0
BUCKET_COMPACT = 1
BUCKET_CHUNKED = 2
BUCKET_LOWTTL = 3
BUCKETS = 4

# The ``-o`` names this module reads (memcachepy.suboptions routes them here).
OPTIONS = frozenset(
    {
        "ext_page_size",
        "ext_wbuf_size",
        "ext_threads",
        "ext_io_depth",
        "ext_path",
        "ext_item_size",
        "ext_item_age",
        "ext_low_ttl",
        "ext_recache_rate",
        "ext_compact_under",
        "ext_drop_under",
        "ext_max_sleep",
        "ext_max_frag",
        "ext_drop_unread",
        "slab_automove_freeratio",
    }
)
# ``extstore <name> <value>`` at run time: the settings each sub-command sets.
RUNTIME = frozenset(
    {
        "item_size",
        "item_age",
        "low_ttl",
        "recache_rate",
        "compact_under",
        "drop_under",
        "max_sleep",
        "max_frag",
        "drop_unread",
    }
)


@dataclass(slots=True)
class ExtstoreFile:
    """One ``ext_path=PATH:SIZE``: the file and how many pages of it are used."""

    path: str
    page_count: int


@dataclass(slots=True)
class ExtstoreConfig:
    files: list[ExtstoreFile] = field(default_factory=list)  # in the order given
    page_size: int = 64 * MB
    wbuf_size: int = 4 * MB
    threads: int = 1
    io_depth: int = 1
    item_size: int = 512  # items at least this large are written out
    item_age: int = UINT_MAX  # seconds idle before an item is written (default: never)
    low_ttl: int = 0  # items expiring sooner than this go to their own pages
    recache_rate: int = 2000  # one read in N of a hot item brings it back into memory
    compact_under: int = 0  # compact when at most this many pages are free (0: 1/4)
    drop_under: int = 0  # drop COLD items when compacting under this many free pages
    max_sleep: int = 1_000_000  # microseconds: the longest background sleep
    max_frag: float = 0.8
    drop_unread: bool = False
    automove_freeratio: float = 0.01

    @property
    def enabled(self) -> bool:
        return bool(self.files)

    @property
    def page_count(self) -> int:
        return sum(f.page_count for f in self.files)

    def set_option(self, name: str, value: str | None) -> None:
        """One ``-o`` suboption; ValueError with memcached's message when refused."""
        if name == "ext_drop_unread":
            self.drop_unread = True
            return
        if value is None:
            if name == "ext_path":
                raise ValueError("missing argument to ext_path, ie: ext_path=/d/file:5G")
            raise ValueError(f"Missing {name} argument")
        if name == "ext_path":
            self.files.append(parse_path(value, self.page_size))
        elif name in ("ext_max_frag", "slab_automove_freeratio"):
            number = parse_double(value)
            if number is None:
                raise ValueError(f"could not parse argument to {name}")
            if name == "ext_max_frag":
                self.max_frag = number
            else:
                self.automove_freeratio = number
        else:
            if name == "ext_page_size" and self.files:
                raise ValueError("Must specify ext_page_size before any ext_path arguments")
            count = parse_u32(value)
            if count is None:
                raise ValueError(f"could not parse argument to {name}")
            self._set_number(name.removeprefix("ext_"), count)

    def _set_number(self, name: str, count: int) -> None:
        if name == "page_size":
            self.page_size = count * MB
        elif name == "wbuf_size":
            self.wbuf_size = count * MB
        elif name == "threads":
            self.threads = count
        elif name == "io_depth":
            self.io_depth = count
        else:
            self.set_runtime(name, count)

    def set_runtime(self, name: str, value: float) -> None:
        """``extstore <name> <value>`` (already parsed as memcached parses it)."""
        if name == "max_frag":
            self.max_frag = value
        elif name == "drop_unread":
            self.drop_unread = value != 0
        elif name == "item_size":
            self.item_size = int(value)
        elif name == "item_age":
            self.item_age = int(value)
        elif name == "low_ttl":
            self.low_ttl = int(value)
        elif name == "recache_rate":
            self.recache_rate = int(value)
        elif name == "compact_under":
            self.compact_under = int(value)
        elif name == "drop_under":
            self.drop_under = int(value)
        elif name == "max_sleep":
            self.max_sleep = int(value)

    def check(self, item_size_max: int, udp_port: int) -> str | None:
        """memcached's storage_check_config and extstore_init checks: the reason, or None."""
        if not self.files:
            return None
        if item_size_max > self.wbuf_size:
            return (
                f"-I (item_size_max: {item_size_max}) cannot be larger than "
                f"ext_wbuf_size: {self.wbuf_size}"
            )
        if udp_port:
            return "Cannot use UDP with extstore enabled (-U 0 to disable)"
        if not self.wbuf_size or self.page_size % self.wbuf_size:
            return "Failed to initialize external storage: page_size must be divisible by wbuf_size"
        if self.page_size % (2 * MB) or self.wbuf_size % (2 * MB):
            return (
                "Failed to initialize external storage: page_size and wbuf_size must be "
                "divisible by 1024*1024*2"
            )
        if self.page_count >= 0xFFFF:
            return "Failed to initialize external storage: page_count must total to < 65536"
        return None

    def apply_defaults(self) -> None:
        """memcached's storage_init: compact_under 0 becomes a quarter of the last file's
        pages (its list is built backwards), and drop_under with it."""
        if self.files and self.compact_under == 0:
            self.compact_under = self.drop_under = self.files[-1].page_count // 4


def parse_path(text: str, page_size: int) -> ExtstoreFile:
    """``PATH:SIZE[M|G|T|P]`` as storage_conf_parse reads it."""
    path, _, rest = text.partition(":")
    if not path:
        raise ValueError("failed to parse ext_path argument")
    size_text, _, bucket = rest.partition(":")
    if not size_text:
        raise ValueError("must supply size to ext_path, ie: ext_path=/f/e:64m (M|G|T|P supported)")
    unit = size_text[-1].lower()
    multiplier = {"m": MB, "g": MB * 1024, "t": MB * MB, "p": MB * MB * 1024}.get(unit, 0)
    digits = size_text[:-1]
    base = int(digits) if digits.isdigit() else 0  # atoi
    if bucket and bucket != "default":
        if bucket in ("compact", "lowttl", "chunked"):
            raise ValueError("ext_path only presently supports the default bucket")
        raise ValueError(f"Unknown extstore bucket: {bucket}")
    return ExtstoreFile(path, base * multiplier // page_size if page_size else 0)


def parse_u32(text: str) -> int | None:
    """memcached's safe_strtoul: digits (a leading + allowed), below 2**32."""
    body = text.strip()
    if body.startswith("+"):
        body = body[1:]
    if not body.isdigit() or not body.isascii():
        return None
    number = int(body)
    return number if number <= UINT_MAX else None


def parse_double(text: str) -> float | None:
    """memcached's safe_strtod: a whole token C's strtod reads."""
    if not text or "_" in text or text != text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        return None
