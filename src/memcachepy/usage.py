"""Command-line parsing that fails the way memcached does (one line, memcached's status), and
what the commands say when a dependency is missing."""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from collections.abc import Sequence
from typing import NoReturn

EX_USAGE = 64  # memcached exits with EX_USAGE on a bad option value
# memcached 1.6.18's status when getopt returns '?' (an unknown flag, or one missing its
# value): it prints getopt's complaint, then 'Illegal argument "?"', and returns 1.
ILLEGAL_ARGUMENT = 1


class UsageParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are a single line and EX_USAGE, not usage text."""

    def error(self, message: str) -> NoReturn:
        self.fail(message, EX_USAGE)

    def fail(self, message: str, code: int) -> NoReturn:
        """One line on stderr and exit ``code`` (memcached's status for that error)."""
        self.exit(code, f"{self.prog}: {' '.join(message.split())}\n")


class DaemonUsageParser(UsageParser):
    """The daemon's parser: a flag memcached's getopt would not accept fails as memcached
    fails, with getopt's words and 'Illegal argument "?"' on one line, status 1; a bad
    value keeps EX_USAGE."""

    _words: Sequence[str] = ()

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._words = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(self._words, namespace)

    def error(self, message: str) -> NoReturn:
        complaint = getopt_complaint(message, self._words)
        if complaint is None:
            self.fail(message, EX_USAGE)
        self.fail(f'{complaint} Illegal argument "?"', ILLEGAL_ARGUMENT)


_UNRECOGNIZED = re.compile(r"unrecognized arguments: (\S+)")
_MISSING_VALUE = re.compile(r"argument ([^:]+): expected one argument")
_STRAY_LETTERS = re.compile(r"argument [^:]+: ignored explicit argument '(.)")
_AMBIGUOUS = re.compile(r"ambiguous option: (\S+?)(?:=\S*)? could match")


def getopt_complaint(message: str, words: Sequence[str] = ()) -> str | None:
    """What glibc's getopt says for the flag argparse's ``message`` is about, or None when
    the message is about a value (which getopt never checks). ``words``: the command line,
    to tell whether a flag missing its value was written short or long."""
    if match := _UNRECOGNIZED.match(message):
        word = match.group(1)
        if word.startswith("--"):
            return f"unrecognized option '{word}'"
        if word.startswith("-") and len(word) > 1:
            return f"invalid option -- '{word[1]}'"
        return f"unexpected argument '{word}'"  # getopt skips it; a typo is likelier
    if match := _MISSING_VALUE.match(message):
        names = match.group(1).split("/")
        short = [name for name in names if not name.startswith("--")]
        long = [name for name in names if name.startswith("--")]
        written = [
            word
            for word in words
            if word in short
            or any(word.startswith("--") and name.startswith(word) for name in long)
        ]
        if short and (not long or not written or written[-1] in short):
            return f"option requires an argument -- '{short[0][1:]}'"
        return f"option '{long[0]}' requires an argument"
    if match := _STRAY_LETTERS.match(message):
        return f"invalid option -- '{match.group(1)}'"
    if match := _AMBIGUOUS.match(message):
        return f"option '{match.group(1)}' is ambiguous"
    return None


# What the commands' entry points (memcachepy/__main__.py, tool/__main__.py) say when a
# dependency is missing, instead of a traceback: a Python without them (a checkout run with
# the system Python, a venv filled with ``pip install --no-deps``) reaches them.
INSTALL_HINT = (
    "Install memcachepy and its dependencies in a virtual environment (Python 3.11 or "
    "later). From a checkout, ./scripts/start.sh makes .venv, installs into it and starts "
    "the daemon; or by hand:\n"
    "  python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/memcachepy"
)


def exit_if_missing(missing: ModuleNotFoundError) -> NoReturn:
    """Exit with the install hint when the missing module is a third-party package (any
    of pyproject's dependencies, or theirs); re-raise for memcachepy's or the stdlib's."""
    top = (missing.name or "").partition(".")[0]
    if not top or top == "memcachepy" or top in sys.stdlib_module_names:
        raise missing
    top = _DISTRIBUTIONS.get(top, top)
    sys.exit(f"memcachepy: the {top} package is missing. {INSTALL_HINT}")


# Dependencies whose import name is not their package's name.
_DISTRIBUTIONS = {"dns": "dnspython"}


# The -o suboptions, as `memcached -h` lists them, with what each does here. (The word
# "no_drop_privileges" is kept out on purpose: memcached's test harness reads `-h` to
# decide whether the seccomp tests apply, and there is no seccomp filter here. "ext_path"
# is in: its harness runs the extstore tests when it sees it.)
EXTENDED_HELP = """\
-o, --extended: comma separated list of extended options (most have a 'no_' prefix):
   - maxconns_fast:       close new connections over -c at once with an error (default)
   - hashpower:           initial hash table size as a power of 2 (reported in stats)
   - no_hashexpand:       hash_power_level in stats stays at its start value
   - tail_repair_time:    accepted (no item references leak here); min 10
   - hash_algorithm:      jenkins, murmur3 (default) or xxh3; reported in stats settings
   - lru_crawler / no_lru_crawler: background reclaim of expired items (default: on)
   - lru_crawler_sleep:   microseconds to sleep between items (default: 100)
   - lru_crawler_tocrawl: max items to crawl per slab per run (default: 0, unlimited)
   - lru_maintainer / no_lru_maintainer: segmented HOT/WARM/COLD LRU (default: on)
   - hot_lru_pct:         pct of slab memory for the hot LRU (default: 20)
   - warm_lru_pct:        pct of slab memory for the warm LRU (default: 40)
   - hot_max_factor:      items idle > cold lru age * this drop from hot (default: 0.20)
   - warm_max_factor:     items idle > cold lru age * this drop from warm (default: 2.00)
   - temporary_ttl:       TTLs at or below this get their own LRU (needs lru_maintainer)
   - idle_timeout:        close idle connections after N seconds (default: 0, never)
   - slab_reassign / slab_automove[=0..2] / slab_automove_ratio / slab_automove_window:
                          move slab pages between classes (default: on, 1, 0.80, 30)
   - slab_chunk_max:      largest slab chunk in bytes; bigger items are chained
                          (default: 524288)
   - slab_sizes:          explicit class sizes, e.g. 96-128-256 (dash separated)
   - no_chunked_items:    slab_chunk_max = the 1 MiB page
   - track_sizes:         enable 'stats sizes'
   - watcher_logbuf_size / worker_logbuf_size: KiB (reported in stats settings)
   - read_buf_mem_limit:  MiB for connection read/response buffers, split by -t as
                          memcached splits it (0, the default: unlimited)
   - conn_mem_limit:      MiB of partial requests (values, get lines still arriving)
                          and unsent replies held across all connections (default:
                          half of -m; 0: no bound); past it a value still arriving is
                          refused as when memory runs out, a backlog's client closed
   - modern:              1.6 defaults (currently: nothing); no_modern: 1.4 defaults
   - drop_privileges:     accepted (no seccomp filter here; -u drops root)
   - sock_cookie_id:      accepted (no socket cookies here)
   - External storage (ext_*) related options (see: https://memcached.org/extstore)
   - ext_path:            file to write to for external storage.
                          ie: ext_path=/mnt/d1/extstore:1G (repeat for several files)
   - ext_page_size:       size in megabytes of storage pages. (default: 64)
   - ext_wbuf_size:       size in megabytes of page write buffers. (default: 4)
   - ext_threads:         accepted (reads and writes run in the event loop here)
   - ext_io_depth:        accepted (likewise)
   - ext_item_size:       store items larger than this (bytes, default 512)
   - ext_item_age:        store items idle at least this long (seconds, default: no age limit)
   - ext_low_ttl:         consider TTLs lower than this specially (default: 0)
   - ext_drop_unread:     don't re-write unread values during compaction (default: disabled)
   - ext_recache_rate:    recache an item every N accesses (default: 2000)
   - ext_compact_under:   compact when fewer than this many free pages
                          (default: 1/4th of the assigned storage)
   - ext_drop_under:      drop COLD items when fewer than this many free pages
                          (default: 1/4th of the assigned storage)
   - ext_max_frag:        max page fragmentation to tolerate (default: 0.80)
   - ext_max_sleep:       max sleep time of background work in us (default: 1000000)
   - slab_automove_freeratio: ratio of memory to hold free as buffer (default: 0.010)
   - ssl_chain_cert, ssl_key, ssl_ca_cert, ssl_verify_mode=0..3, ssl_ciphers,
     ssl_min_version, ssl_keyformat, ssl_wbuf_size, ssl_session_cache, ssl_kernel_tls
   - sasl_pwdb:           SASL password file for -S (else $MEMCACHED_SASL_PWDB)
Notes for flags that have no effect here are printed at -v.
"""


# Debian's /etc/memcached.conf: each line is flags, as Debian's start script reads it.
# Debian's /etc/memcached.conf: each line is flags, as Debian's start script reads it.
#
# The rules of Debian's systemd-memcached-wrapper: ``#`` starts a comment (``\\#`` does
# not), blank lines are skipped, ``-d`` and ``-h`` lines are dropped (systemd supervises the
# process), and a line that is not a flag (``logfile /var/log/memcached.log``) is a
# directive of the start script, not of memcached, and is skipped too.
DEBIAN_CONF = "/etc/memcached.conf"
_COMMENT = re.compile(r"(?<!\\)#[^#]*")


class ConfFileError(ValueError):
    """The file cannot be read, or a line cannot be split into words."""


def conf_file_flags(path: str) -> list[str]:
    """The command-line words the lines of ``path`` stand for."""
    try:
        with open(path, encoding="utf-8") as conf:
            lines = conf.readlines()
    except OSError as exc:
        raise ConfFileError(f"cannot read {path}: {exc.strerror}") from None
    words: list[str] = []
    for number, raw in enumerate(lines, 1):
        line = _COMMENT.sub("", raw).strip()
        if not line or line.startswith(("-d", "-h")) or not line.startswith("-"):
            continue
        try:
            words.extend(shlex.split(line.replace("\\#", "#")))
        except ValueError as exc:
            raise ConfFileError(f"{path}: line {number}: {exc}") from None
    return words
