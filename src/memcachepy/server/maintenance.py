"""The store's background tasks: LRU maintainer, LRU crawler, slab mover, index expander.

memcached runs these as threads; here they are trio tasks beside the connections. Each
turn calls one bounded step of a store helper (``cache.lru.maintain``,
``cache.crawler.step``, ``cache.rebalancer.step``, ``cache.index.expand_step``,
``cache.extstore.step``) and then sleeps, so a client request waits at most one step (about a
millisecond) for them. Idle tasks back off, as
memcached's maintainer does, so an idle daemon stays idle. The LRU maintainer's turns,
the most frequent under load, are run by the connection loop between its rounds while it
is busy (:class:`LruTurns`), and by their task only while the loop waits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import trio

from memcachepy.server.multiplexer import Multiplexer
from memcachepy.store.cache import Cache
from memcachepy.store.extstore import Extstore
from memcachepy.store.tuning import StoreTuning

# The maintainer's sleep between turns: 1 ms while a turn's budget is not enough, 10 ms
# while it finds some work, doubling up to the maximum while it finds none.
MAINTAINER_MIN_SLEEP = 0.001
MAINTAINER_SOME_WORK_SLEEP = 0.01
MAINTAINER_MAX_SLEEP = 0.25
MAINTAINER_BUDGET = 100  # items moved per turn (a fraction of a millisecond)
MAINTAINER_SLICE = 20  # items moved between two of the loop's rounds
# While the connection loop ran a turn this recently, the maintainer task leaves the
# turns to it and looks again after this long.
LOOP_HANDOFF = 0.05
CRAWLER_BUDGET = 500  # chunks looked at per step
CRAWLER_IDLE_SLEEP = 0.1
MOVER_BUDGET = 50  # chunks of a page emptied per step (rescues copy items)
MOVER_IDLE_SLEEP = 0.05
EXPANDER_BUDGET = 2000  # key index slots moved per step while the index doubles
EXPANDER_IDLE_SLEEP = 0.05
# Each task sleeps at least this many times as long as its last step ran: the maintainer
# takes at most a tenth of the CPU from the clients, the crawler and the mover half.
MAINTAINER_REST = 9.0
CRAWLER_REST = 1.0
MOVER_REST = 1.0
EXPANDER_REST = 1.0
EXTSTORE_MIN_SLEEP = 0.001
EXTSTORE_BUDGET = 50  # items written out per step (each a copy and a share of a pwrite)
EXTSTORE_REST = 1.0  # the extstore worker takes at most half the CPU while it has work


class LruTurns:
    """The LRU maintainer's turns, and when the next one is due (monotonic seconds).

    A turn is run in slices of MAINTAINER_SLICE moves, so that a request arriving meanwhile
    waits for one slice, not the whole turn. While the connection loop is busy it runs the
    slices between its rounds (``Multiplexer.timed``); while it waits for requests, the
    :func:`lru_maintainer` task runs them.
    """

    def __init__(self, cache: Cache, tuning: StoreTuning) -> None:
        self.cache = cache
        self.tuning = tuning
        self.due = 0.0
        self.sleep = MAINTAINER_MIN_SLEEP
        self.moves = 0  # of the turn under way
        self.spent = 0.0
        self.loop_ran = -math.inf  # when the connection loop last ran a slice

    def from_loop(self, now: float) -> float:
        """The loop's call: a slice if one is due; when the next one is."""
        if now >= self.due:
            self.loop_ran = now
            self.run(now)
        return self.due

    def run(self, now: float) -> None:
        """One slice of the turn under way; after the last, the automover's tick and the
        pause before the next turn: 1 ms while a turn's budget is not enough, 10 ms while
        turns find some work, doubling up to the maximum while they find none."""
        start = time.perf_counter()
        done = 0
        if self.tuning.lru_maintainer:
            done = self.cache.lru.maintain(MAINTAINER_SLICE)
            self.moves += done
        if done == MAINTAINER_SLICE and self.moves < MAINTAINER_BUDGET:
            self.spent += time.perf_counter() - start
            self.due = now  # the turn goes on after a round
            return
        again = self.cache.rebalancer.automove_tick()
        self.spent += time.perf_counter() - start
        if self.moves >= MAINTAINER_BUDGET or again:
            sleep = MAINTAINER_MIN_SLEEP  # more is waiting
        elif self.moves:
            sleep = MAINTAINER_SOME_WORK_SLEEP  # let a batch build up: fewer, fuller turns
        else:
            sleep = min(max(self.sleep, MAINTAINER_SOME_WORK_SLEEP) * 2, MAINTAINER_MAX_SLEEP)
        self.sleep = sleep
        self.due = now + max(sleep, self.spent * MAINTAINER_REST)
        self.moves = 0
        self.spent = 0.0


async def lru_maintainer(turns: LruTurns, loop: Multiplexer) -> None:
    """Run the turns the connection loop does not: those due while it waits for requests.

    While the loop runs turns itself, this task only looks every LOOP_HANDOFF seconds
    whether it still does. Once the task is cancelled (the daemon stops), the loop runs no
    more turns either."""
    loop.timed = turns.from_loop
    loop.due = turns.due
    try:
        while True:
            now = time.monotonic()
            if now >= turns.due:
                turns.run(now)
            wait = turns.due - time.monotonic()
            if now - turns.loop_ran < LOOP_HANDOFF:
                wait = max(wait, LOOP_HANDOFF)
            if wait > 0:
                await trio.sleep(wait)
            else:
                await trio.lowlevel.checkpoint()
    finally:
        loop.due = math.inf


async def lru_crawler(cache: Cache, tuning: StoreTuning) -> None:
    """Free expired items in bounded steps, ``lru_crawler_sleep`` microseconds apart."""
    while True:
        start = time.perf_counter()
        if cache.crawler.step(CRAWLER_BUDGET):
            spent = time.perf_counter() - start
            await trio.sleep(max(tuning.lru_crawler_sleep / 1_000_000, spent * CRAWLER_REST))
        else:
            await trio.sleep(CRAWLER_IDLE_SLEEP)


async def _in_steps(step: Callable[[int], int], budget: int, rest: float, idle: float) -> None:
    """Call ``step(budget)`` while it finds work, resting ``rest`` times its run time."""
    while True:
        start = time.perf_counter()
        if step(budget):
            await trio.sleep((time.perf_counter() - start) * rest)
        else:
            await trio.sleep(idle)


async def slab_mover(cache: Cache) -> None:
    """Empty the page being moved (``slabs reassign``, automove, a lowered memlimit)."""
    await _in_steps(cache.rebalancer.step, MOVER_BUDGET, MOVER_REST, MOVER_IDLE_SLEEP)


async def index_expander(cache: Cache) -> None:
    """Move the key index to its doubled table (memcached's assoc maintenance thread)."""
    await _in_steps(cache.index.expand_step, EXPANDER_BUDGET, EXPANDER_REST, EXPANDER_IDLE_SLEEP)


async def extstore_worker(cache: Cache, ext: Extstore, max_sleep: Callable[[], int]) -> None:
    """Extstore's writer, page maintenance and compactor (memcached's storage
    write and compaction threads): 1 ms apart while they find work, backing off to
    ``ext_max_sleep`` when idle."""
    sleep = EXTSTORE_MIN_SLEEP
    while True:
        start = time.perf_counter()
        done = ext.step(cache.now(), EXTSTORE_BUDGET)
        spent = time.perf_counter() - start
        if done:
            sleep = EXTSTORE_MIN_SLEEP
        else:
            sleep = min(sleep * 2, max(max_sleep() / 1_000_000, EXTSTORE_MIN_SLEEP))
        await trio.sleep(max(sleep, spent * EXTSTORE_REST))


def start(nursery: trio.Nursery, cache: Cache, tuning: StoreTuning, loop: Multiplexer) -> None:
    """Start the store's tasks in ``nursery`` (they run until it is cancelled); ``loop``
    runs the LRU maintainer's turns while it is busy."""
    nursery.start_soon(lru_maintainer, LruTurns(cache, tuning), loop)
    nursery.start_soon(lru_crawler, cache, tuning)
    nursery.start_soon(slab_mover, cache)
    nursery.start_soon(index_expander, cache)
    ext = cache.extstore
    if ext is not None:
        config = ext.config
        nursery.start_soon(extstore_worker, cache, ext, lambda: config.max_sleep)
