"""The store's run-time tunables, with memcached 1.6.18's names and defaults.

One object is shared by the cache and the daemon settings, so ``-o hot_lru_pct=..``, ``lru
tune`` and ``slabs automove`` change what the cache does at once, and ``stats settings``
reads the same values back.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class StoreTuning:
    # Segmented LRU (items.c's lru_maintainer): items enter HOT, idle ones flow to COLD,
    # items read twice are kept in WARM. ``lru_segmented`` False is memcached's flat mode.
    lru_maintainer: bool = True
    lru_segmented: bool = True
    hot_lru_pct: int = 20
    warm_lru_pct: int = 40
    hot_max_factor: float = 0.2
    warm_max_factor: float = 2.0
    # Items whose TTL is at most ``temporary_ttl`` go to their own LRU (``lru temp_ttl``).
    temp_lru: bool = False
    temporary_ttl: int = 61
    # The LRU crawler frees expired items in the background (crawler.c).
    lru_crawler: bool = True
    lru_crawler_sleep: int = 100  # microseconds between batches of checked items
    lru_crawler_tocrawl: int = 0  # items checked per class per crawl; 0 = all
    # Slab page moves (slabs.c's rebalancer) and the automover picking them.
    slab_reassign: bool = True
    slab_automove: int = 1
    slab_automove_ratio: float = 0.8
    slab_automove_window: int = 30
    # ``stats sizes`` histogram (``-o track_sizes``).
    track_sizes: bool = False
    # The largest slab chunk (``-o slab_chunk_max``); bigger items are chained from
    # chunks of this size. Half a page, as memcached's default.
    slab_chunk_max: int = 512 * 1024
    # ``-o slab_sizes=A-B-C``: the chunk sizes of the classes, instead of -f/-n's series.
    slab_sizes: tuple[int, ...] | None = None
    # The key index's start size, 2**hashpower_init slots (0: memcached's default, 16),
    # and whether it grows (``-o no_hashexpand``: only when it would otherwise be full).
    # Set by the -o parser (memcachepy.suboptions).
    hashpower_init: int = 0
    hash_expand: bool = True

    def set_option(self, name: str, value: str | None) -> bool:
        """Apply one memcached ``-o`` suboption; False if ``name`` is not a store option.

        Raises ValueError, with memcached's message, for a value memcached refuses.
        """
        # Typed as bool on purpose: compiled (mypyc) attributes refuse an int for a bool.
        switches: dict[str, tuple[str, bool]] = {
            "slab_reassign": ("slab_reassign", True),
            "no_slab_reassign": ("slab_reassign", False),
            "lru_crawler": ("lru_crawler", True),
            "no_lru_crawler": ("lru_crawler", False),
            "track_sizes": ("track_sizes", True),
        }
        if name in switches:
            attr, setting = switches[name]
            setattr(self, attr, setting)
        elif name == "no_slab_automove":
            self.slab_automove = 0
        elif name == "modern":
            pass  # memcached 1.6's defaults already are what "modern" asked for
        elif name == "lru_maintainer":
            self.lru_maintainer = self.lru_segmented = True
        elif name == "no_lru_maintainer":
            self.lru_maintainer = self.lru_segmented = False
        elif name == "slab_automove":
            level = 1 if value is None else _int(value, "slab_automove")
            if not 0 <= level <= 2:
                raise ValueError("slab_automove must be between 0 and 2")
            self.slab_automove = level
        elif name == "slab_automove_ratio":
            ratio = _float(value, "slab_automove_ratio")
            if not 0 < ratio <= 1:
                raise ValueError("slab_automove_ratio must be > 0 and < 1")
            self.slab_automove_ratio = ratio
        elif name == "slab_automove_window":
            window = _int(value, "slab_automove_window")
            if window < 3:
                raise ValueError("slab_automove_window must be > 2")
            self.slab_automove_window = window
        elif name == "lru_crawler_sleep":
            sleep = _int(value, "lru_crawler_sleep")
            if not 0 <= sleep <= 1_000_000:
                raise ValueError("LRU crawler sleep must be between 0 and 1 second")
            self.lru_crawler_sleep = sleep
        elif name == "lru_crawler_tocrawl":
            tocrawl = _int(value, "lru_crawler_tocrawl")
            if not 0 <= tocrawl < 1 << 32:
                raise ValueError("lru_crawler_tocrawl takes a numeric 32bit value")
            self.lru_crawler_tocrawl = tocrawl
        elif name in ("hot_lru_pct", "warm_lru_pct"):
            pct = _int(value, name)
            if not 1 <= pct < 80:
                raise ValueError(f"{name} must be > 1 and < 80")
            setattr(self, name, pct)
        elif name in ("hot_max_factor", "warm_max_factor"):
            factor = _float(value, name)
            if factor <= 0:
                raise ValueError(f"{name} must be > 0")
            setattr(self, name, factor)
        elif name == "temporary_ttl":
            self.temp_lru = True
            self.temporary_ttl = _int(value, "temporary_ttl")
        else:
            return False
        return True

    def validate(self) -> None:
        """Refuse combinations memcached refuses."""
        if self.hot_lru_pct + self.warm_lru_pct > 80:
            raise ValueError("hot_lru_pct + warm_lru_pct cannot be more than 80% combined")
        if self.temp_lru and not self.lru_maintainer:
            raise ValueError("temporary_ttl requires lru_maintainer to be enabled")


def _int(value: str | None, name: str) -> int:
    if value is None:
        raise ValueError(f"Missing {name} argument")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"Invalid {name} value: {value!r}") from None


def _float(value: str | None, name: str) -> float:
    if value is None:
        raise ValueError(f"Missing {name} argument")
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"Invalid {name} value: {value!r}") from None
