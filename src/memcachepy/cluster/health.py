"""Per-node health: failure counting, ejection, re-admission and missed writes.

A node that fails a request is skipped for ``retry_timeout`` seconds; ``failure_limit``
failures in a row eject it for ``dead_timeout`` seconds. Either way the next request
after the wait tries it again, and one success makes it healthy.

Writes a node missed while it was skipped or failing are remembered, and the node deletes
those keys (or, past ``max_missed_writes``, flushes everything) before it serves again:
that is what keeps a returning node from serving a value overwritten while it was away.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pymemcache.exceptions import (  # type: ignore[import-untyped, unused-ignore]
    MemcacheUnexpectedCloseError,
    MemcacheUnknownError,
)

from memcachepy.cluster.members import Member

__all__ = ["HealthPolicy", "Node", "NodeStatus", "NodeUnavailable"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Key = str | bytes

# Errors that mean "this node is not answering", as opposed to errors about the request.
NODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    MemcacheUnexpectedCloseError,
    MemcacheUnknownError,
)


class NodeUnavailable(Exception):
    """The node is being skipped, or the request to it just failed."""


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """The failure knobs shared by every node of a cluster client."""

    failure_limit: int = 2
    retry_timeout: float = 1.0
    dead_timeout: float = 30.0
    max_missed_writes: int = 10_000
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        if self.failure_limit < 1:
            raise ValueError("failure_limit must be at least 1")
        if self.retry_timeout < 0 or self.dead_timeout < 0:
            raise ValueError("timeouts must not be negative")


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """A node's health as the client sees it."""

    server: Member
    state: str  # "up", "failing" (skipped for retry_in seconds) or "ejected"
    failures: int
    retry_in: float
    missed_writes: int
    needs_flush: bool


class Node:
    """One member's connection pool (a pymemcache client) and its health."""

    def __init__(
        self,
        server: Member,
        client: Any,
        policy: HealthPolicy,
        on_settled: Callable[[Node, list[Key]], None] | None = None,
    ) -> None:
        self.server = server
        self.client = client
        self.policy = policy
        # Told the keys a settle just deleted here, so the cluster client can copy their
        # current values back from another replica (they were deleted because this node
        # missed writes of them, not because they are gone).
        self.on_settled = on_settled
        self._lock = threading.Lock()
        self._settle_lock = threading.Lock()
        self.failures = 0
        self.retry_at = 0.0
        # Missed writes stay recorded until their invalidation is done, so a concurrent
        # request waits for it; the sequence numbers tell which entries a finished
        # invalidation covered (a key missed again meanwhile stays).
        self._seq = 0
        self._missed: dict[Key, int] = {}
        self._flush_seq = 0  # 0: no flush needed
        self.back_at = float("-inf")  # when it last answered again after failures

    def __repr__(self) -> str:
        return f"Node({self.server})"

    def skipped(self, now: float | None = None) -> bool:
        """Whether requests skip this node right now."""
        if not self.failures:
            return False
        return (self.policy.clock() if now is None else now) < self.retry_at

    def status(self) -> NodeStatus:
        """A snapshot of this node's health."""
        now = self.policy.clock()
        with self._lock:
            if self.failures == 0:
                state = "up"
            elif self.failures >= self.policy.failure_limit:
                state = "ejected"
            else:
                state = "failing"
            retry_in = max(0.0, self.retry_at - now) if self.failures else 0.0
            return NodeStatus(
                self.server,
                state,
                self.failures,
                retry_in,
                len(self._missed),
                bool(self._flush_seq),
            )

    def record_failure(self, error: BaseException) -> None:
        """Count a failed request; eject the node at the failure limit."""
        policy = self.policy
        with self._lock:
            self.failures += 1
            failures = self.failures
            ejected = failures >= policy.failure_limit
            wait = policy.dead_timeout if ejected else policy.retry_timeout
            self.retry_at = policy.clock() + wait
        if ejected:
            logger.warning(
                "%s ejected for %.1fs after %d failures: %s", self.server, wait, failures, error
            )
        else:
            logger.info("%s failed (%d/%d): %s", self.server, failures, policy.failure_limit, error)

    def record_success(self) -> None:
        """A request worked: the node is healthy again."""
        if self.failures:
            with self._lock:
                if self.failures:
                    logger.warning("%s is back after %d failures", self.server, self.failures)
                    self.back_at = self.policy.clock()
                self.failures = 0

    def returned_within(self, seconds: float, now: float | None = None) -> bool:
        """Whether the node came back from failures less than ``seconds`` ago."""
        return (self.policy.clock() if now is None else now) - self.back_at < seconds

    def record_missed(self, keys: Iterable[Key]) -> None:
        """Remember writes this node did not get (it invalidates them before serving)."""
        with self._lock:
            self._seq += 1
            if self._flush_seq:
                self._flush_seq = self._seq
                return
            self._missed.update(dict.fromkeys(keys, self._seq))
            if len(self._missed) > self.policy.max_missed_writes:
                self._missed.clear()
                self._flush_seq = self._seq

    def require_flush(self) -> None:
        """Make the node flush everything before it serves again."""
        with self._lock:
            self._seq += 1
            self._missed.clear()
            self._flush_seq = self._seq

    def settle(self) -> list[Key]:
        """Invalidate the writes this node missed; raises (and keeps them) on failure.

        Returns the keys deleted here one by one (none after a flush)."""
        deleted: list[Key] = []
        while self._missed or self._flush_seq:
            with self._settle_lock:
                with self._lock:
                    missed, flush, done_seq = dict(self._missed), bool(self._flush_seq), self._seq
                if not missed and not flush:
                    return deleted
                if flush:
                    self.client.flush_all(noreply=False)
                    deleted.clear()
                else:
                    self.client.delete_many(list(missed), noreply=False)
                    deleted += missed
                with self._lock:
                    if flush and self._flush_seq <= done_seq:
                        self._flush_seq = 0
                    for key, seq in missed.items():
                        if self._missed.get(key) == seq:
                            del self._missed[key]
                    if flush:
                        for key in [k for k, seq in self._missed.items() if seq <= done_seq]:
                            del self._missed[key]
                logger.info(
                    "%s: invalidated %s it missed",
                    self.server,
                    "everything" if flush else f"{len(missed)} writes",
                )
        return deleted

    def attempt(self, operation: Callable[[Any], T]) -> T:
        """``operation(client)`` after settling; NodeUnavailable if skipped or failing."""
        if self.skipped():
            raise NodeUnavailable(str(self.server))
        try:
            settled = self.settle()
            if settled and self.on_settled is not None:
                self.on_settled(self, settled)
            result = operation(self.client)
        except NODE_ERRORS as error:
            self.record_failure(error)
            raise NodeUnavailable(str(self.server)) from error
        self.record_success()
        return result
