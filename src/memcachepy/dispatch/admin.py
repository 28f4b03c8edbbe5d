"""The store's admin commands: ``slabs``, ``lru_crawler``, ``lru`` (and ``refresh_certs``).

Replies are memcached 1.6.18's (proto_text.c's process_slabs_command,
process_lru_crawler_command and process_lru_command), byte for byte.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from memcachepy.dispatch.extstore_admin import extstore_command
from memcachepy.dispatch.reply import ReplyStream
from memcachepy.ops.current import CURRENT_CONNECTION
from memcachepy.ops.stats_report import ColdWalk
from memcachepy.protocol import events as ev
from memcachepy.protocol.numbers import parse_i32, parse_u32
from memcachepy.protocol.wire import BAD_FORMAT, ERROR, Outcome
from memcachepy.store.crawler import CrawlResult
from memcachepy.store.metadump import MetadumpRow, MetadumpWalk
from memcachepy.store.rebalance import ReassignResult

if TYPE_CHECKING:
    from memcachepy.dispatch.reply import DispatchContext, Reply

OK: Final = b"OK\r\n"
CRAWLER_DISABLED: Final = b"CLIENT_ERROR lru crawler disabled\r\n"
MAX_CLASS_ID: Final = 63  # memcached's MAX_NUMBER_OF_SLAB_CLASSES - 1

_REASSIGN_REPLIES: Final = {
    ReassignResult.OK: OK,
    ReassignResult.RUNNING: b"BUSY currently processing reassign request\r\n",
    ReassignResult.BADCLASS: b"BADCLASS invalid src or dst class id\r\n",
    ReassignResult.NOSPARE: b"NOSPARE source class has no spare pages\r\n",
    ReassignResult.SAME: b"SAME src and dst class are identical\r\n",
}
_CRAWL_REPLIES: Final = {
    CrawlResult.OK: OK,
    CrawlResult.RUNNING: b"BUSY currently processing crawler request\r\n",
    CrawlResult.BADCLASS: b"BADCLASS invalid class id\r\n",
    CrawlResult.NOTSTARTED: b"NOTSTARTED no items to crawl\r\n",
}
# Items a metadump looks at per slice: a few milliseconds of work and 40 KB of reply,
# after which the connection sends and the others are served.
METADUMP_SLICE: Final = 500
NO_DUMP: Final = -2  # AdminDispatch.dump_fd when no metadump is under way
CACHEDUMP_SLICE: Final = 1000
CACHEDUMP_MAX_BYTES: Final = 2 * 1024 * 1024  # memcached's item_cachedump memlimit
# memcached's uriencode keeps these bytes of a key and writes %XX for every other.
_URI_SAFE: Final = frozenset((string.ascii_letters + string.digits + "-._~").encode())


def parse_double(token: bytes) -> float | None:
    """A number as C's strtod reads a whole token (memcached's safe_strtod)."""
    if not token or b"_" in token or token != token.strip():
        return None  # Python's float() takes these; strtod stops short of the token's end
    try:
        return float(token)
    except ValueError:
        return None


_SAFE_PUNCTUATION_AS_LETTERS: Final = bytes.maketrans(b"-._~", b"aaaa")
_URI_BYTES: Final = [bytes((b,)) if b in _URI_SAFE else b"%%%02X" % b for b in range(256)]


def uriencode(key: bytes) -> bytes:
    """A key as memcached writes it in metadump and log lines."""
    # Bytes methods only (C loops): this runs once per log line while someone watches.
    if key.translate(_SAFE_PUNCTUATION_AS_LETTERS).isalnum():
        return key  # the usual key: nothing to escape
    if key.replace(b":", b"").translate(_SAFE_PUNCTUATION_AS_LETTERS).isalnum():
        return key.replace(b":", b"%3A")  # the usual separator ("user:42") alone
    table = _URI_BYTES
    return b"".join([table[b] for b in key])


def metadump_line(row: MetadumpRow) -> bytes:
    return b"key=%s exp=%d la=%d cas=%d fetch=%s cls=%d size=%d\n" % (
        uriencode(row.key),
        row.exptime,
        row.last_access,
        row.cas,
        b"yes" if row.fetched else b"no",
        row.class_id,
        row.size,
    )


class MetadumpStream(ReplyStream):
    """``lru_crawler metadump``'s reply, a slice of items at a time."""

    def __init__(self, walk: MetadumpWalk, admin: AdminDispatch) -> None:
        self.walk = walk
        self.admin = admin

    def step(self, out: list[Reply]) -> bool:
        rows = self.walk.rows(METADUMP_SLICE)
        if rows:
            out.append(b"".join(map(metadump_line, rows)))
        if not self.walk.done:
            return False
        out.append(b"END\r\n")
        self.admin.dump_finished(self)
        return True


class CachedumpStream(ReplyStream):
    """``stats cachedump CLASS LIMIT``'s reply, a slice of items at a time, within
    memcached's 2 MB cap (item_cachedump's memlimit: a line that would take the reply,
    with ``END\r\n`` and its NUL, past it is not sent, and the dump ends)."""

    def __init__(self, walk: ColdWalk, limit: int) -> None:
        self.walk = walk
        self.left = limit or -1  # -1: no limit
        self.size = 0

    def step(self, out: list[Reply]) -> bool:
        count = CACHEDUMP_SLICE if self.left < 0 else min(self.left, CACHEDUMP_SLICE)
        lines = []
        full = False
        for key, nbytes, exptime in self.walk.rows(count):
            line = b"ITEM %s [%d b; %d s]\r\n" % (key, nbytes, exptime)
            if self.size + len(line) + 6 > CACHEDUMP_MAX_BYTES:
                full = True
                break
            self.size += len(line)
            lines.append(line)
        if self.left > 0:
            self.left -= len(lines)
        if lines:
            out.append(b"".join(lines))
        if full or self.left == 0 or self.walk.done:
            out.append(b"END\r\n")
            return True
        return False


class AdminDispatch:
    def __init__(self, dispatcher: DispatchContext) -> None:
        self.d = dispatcher
        # Reloads the TLS certificates (the server sets it when -Z is on).
        self.reload_tls: Callable[[], None] | None = None
        # The metadump under way, and its connection: like memcached's one crawler, one
        # dump at a time, the others answered BUSY.
        self.dump: MetadumpStream | None = None
        self.dump_fd = NO_DUMP
        self._outcome = Outcome.CONTINUE

    def handle(self, event: ev.Admin, out: list[Reply]) -> int:
        self._outcome = Outcome.CONTINUE
        handler = {
            b"slabs": self.slabs,
            b"lru_crawler": self.lru_crawler,
            b"lru": self.lru,
            b"refresh_certs": self.refresh_certs,
            b"extstore": self.extstore,
        }[event.command]
        reply = handler(event.args, event.ntokens, out)
        if reply is not None:
            out.append(reply)
        return self._outcome

    def dump_finished(self, stream: MetadumpStream) -> None:
        if self.dump is stream:
            self.dump = None
            self.dump_fd = NO_DUMP

    def connection_closed(self, fd: int) -> None:
        """A connection closed: a metadump it left unread is over."""
        if fd == self.dump_fd:
            if self.dump is not None:
                self.dump.walk.release()
            self.dump = None
            self.dump_fd = NO_DUMP

    def cachedump(self, class_id: int, limit: int, out: list[Reply]) -> int:
        """``stats cachedump``: answered in slices on a connection, at once over UDP."""
        stream = CachedumpStream(ColdWalk(self.d.cache, class_id), limit)
        if CURRENT_CONNECTION.get() < 0:
            while not stream.step(out):
                pass
            return Outcome.CONTINUE
        if stream.step(out):
            return Outcome.CONTINUE
        self.d.remainder = ev.Resume(stream)
        return Outcome.MORE

    def _crawler_busy(self) -> bool:
        """memcached's crawler runs one job at a time: a metadump, or a requested crawl.

        Its automatic expiry crawls also make metadump answer BUSY there; here they run in
        small steps between requests and do not, so a metadump never waits on them."""
        crawler = self.d.cache.crawler
        return self.dump is not None or (crawler.running and not crawler.automatic)

    def _metadump(self, classes: list[int], out: list[Reply]) -> bytes | None:
        fd = CURRENT_CONNECTION.get()
        if fd < 0:
            # UDP: memcached's crawler writes a dump to the connection's socket, which a
            # UDP request does not have; it never arrives. One error line says so.
            return b"ERROR an unknown error happened\r\n"
        if self._crawler_busy():
            return _CRAWL_REPLIES[CrawlResult.RUNNING]
        stream = MetadumpStream(MetadumpWalk(self.d.cache, classes), self)
        self.dump = stream
        self.dump_fd = fd
        if not stream.step(out):
            self.d.remainder = ev.Resume(stream)
            self._outcome = Outcome.MORE
        return None

    def extstore(self, args: list[bytes], ntokens: int, out: list[Reply]) -> bytes | None:
        """``extstore <setting> <value> [noreply]`` (memcachepy.dispatch.extstore_admin)."""
        return extstore_command(args, self.d.settings.extstore)

    # -- slabs --------------------------------------------------------------------------

    def slabs(self, args: list[bytes], ntokens: int, out: list[Reply]) -> bytes | None:
        tuning = self.d.settings.store
        if ntokens == 5 and args[0] == b"reassign":
            if not tuning.slab_reassign:
                return b"CLIENT_ERROR slab reassignment disabled\r\n"
            src, dst = parse_i32(args[1]), parse_i32(args[2])
            if src is None or dst is None:
                return BAD_FORMAT
            return _REASSIGN_REPLIES[self.d.cache.rebalancer.reassign(src, dst)]
        if ntokens >= 4 and args[0] == b"automove":
            noreply = args[-1] == b"noreply"
            reply = self._automove(args)
            return None if noreply else reply
        return ERROR

    def _automove(self, args: list[bytes]) -> bytes:
        tuning = self.d.settings.store
        if args[1] == b"ratio":
            ratio = parse_double(args[2]) if len(args) >= 3 else None
            if ratio is None:
                return ERROR
            tuning.slab_automove_ratio = ratio
            return OK
        level = parse_u32(args[1])
        if level is None:
            return BAD_FORMAT
        if level > 2:
            return ERROR
        tuning.slab_automove = level
        return OK

    # -- lru_crawler ----------------------------------------------------------------------

    def lru_crawler(self, args: list[bytes], ntokens: int, out: list[Reply]) -> bytes | None:
        tuning = self.d.settings.store
        cache = self.d.cache
        sub = args[0] if args else b""
        if ntokens == 4 and sub == b"crawl":
            if not tuning.lru_crawler:
                return CRAWLER_DISABLED
            if args[1] == b"hash":  # memcached walks its hash table only for metadump
                if cache.crawler.running or self.dump is not None:
                    return _CRAWL_REPLIES[CrawlResult.RUNNING]
                return b"ERROR an unknown error happened\r\n"
            classes = self._classes(args[1])
            if classes is None:
                return _CRAWL_REPLIES[CrawlResult.BADCLASS]
            if self.dump is not None:
                return _CRAWL_REPLIES[CrawlResult.RUNNING]
            return _CRAWL_REPLIES[cache.crawler.request(classes)]
        if ntokens == 4 and sub == b"metadump":
            if not tuning.lru_crawler:  # memcached asks this before -X
                return CRAWLER_DISABLED
            if not self.d.settings.dump_enabled:  # -X
                return b"ERROR metadump not allowed\r\n"
            if out:
                return b"ERROR cannot pipeline other commands before metadump\r\n"
            classes = self._classes(b"all" if args[1] == b"hash" else args[1])
            if classes is None:
                return _CRAWL_REPLIES[CrawlResult.BADCLASS]
            return self._metadump(classes, out)
        if ntokens == 4 and sub == b"tocrawl":
            tocrawl = parse_u32(args[1])
            if tocrawl is None:
                return BAD_FORMAT
            tuning.lru_crawler_tocrawl = tocrawl
            return OK
        if ntokens == 4 and sub == b"sleep":
            sleep = parse_u32(args[1])
            if sleep is None:
                return BAD_FORMAT
            if sleep > 1_000_000:
                return b"CLIENT_ERROR sleep must be one second or less\r\n"
            tuning.lru_crawler_sleep = sleep
            return OK
        if ntokens == 3 and sub == b"enable":
            if tuning.lru_crawler:
                return b"ERROR failed to start lru crawler thread\r\n"
            tuning.lru_crawler = True
            return OK
        if ntokens == 3 and sub == b"disable":
            tuning.lru_crawler = False
            return OK
        return ERROR

    def _classes(self, spec: bytes) -> list[int] | None:
        """``all`` or a comma-separated list of class ids (1..63); None: a bad id."""
        if spec == b"all":
            return list(range(1, MAX_CLASS_ID + 1))
        classes: list[int] = []
        for part in spec.split(b","):
            if not part:
                continue  # strtok_r skips empty fields
            class_id = parse_u32(part)
            if class_id is None or not 1 <= class_id <= MAX_CLASS_ID:
                return None
            classes.append(class_id)
        return classes

    # -- lru ------------------------------------------------------------------------------

    def lru(self, args: list[bytes], ntokens: int, out: list[Reply]) -> bytes | None:
        noreply = args[-1] == b"noreply"
        reply = self._lru(args, ntokens)
        return None if noreply else reply

    def _lru(self, args: list[bytes], ntokens: int) -> bytes:
        tuning = self.d.settings.store
        sub = args[0]
        if sub == b"tune" and ntokens >= 7:
            hot, warm = parse_u32(args[1]), parse_u32(args[2])
            hot_factor, warm_factor = parse_double(args[3]), parse_double(args[4])
            if hot is None or warm is None or hot_factor is None or warm_factor is None:
                return ERROR
            if hot + warm > 80:
                return b"ERROR hot and warm pcts must not exceed 80\r\n"
            if warm_factor <= 0 or hot_factor <= 0:
                return b"ERROR hot/warm age factors must be greater than 0\r\n"
            tuning.hot_lru_pct, tuning.warm_lru_pct = hot, warm
            tuning.hot_max_factor, tuning.warm_max_factor = hot_factor, warm_factor
            return OK
        if sub == b"mode" and ntokens >= 4 and tuning.lru_maintainer:
            if args[1] == b"flat":
                tuning.lru_segmented = False
            elif args[1] == b"segmented":
                tuning.lru_segmented = True
            else:
                return ERROR
            return OK
        if sub == b"temp_ttl" and ntokens >= 4 and tuning.lru_maintainer:
            ttl = parse_i32(args[1])
            if ttl is None:
                return ERROR
            if ttl < 0:
                tuning.temp_lru = False
            else:
                tuning.temp_lru = True
                tuning.temporary_ttl = ttl
            return OK
        return ERROR

    # -- refresh_certs ------------------------------------------------------------------

    def refresh_certs(self, args: list[bytes], ntokens: int, out: list[Reply]) -> bytes | None:
        # memcached writes its error line even with noreply (write_and_free, not out_string).
        if not self.d.settings.tls_enabled or self.reload_tls is None:
            return b"Error TLS not enabled\r\n"
        self.reload_tls()
        return None if args and args[-1] == b"noreply" else OK
