"""Per-client token buckets for the HTTP ingest (pure; the clock is injected for tests)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBuckets:
    """``rate`` records per second per client, with bursts up to ``burst``; at most ``max_clients`` are tracked.

    The least recently seen clients are forgotten first, which keeps memory
    bounded (a forgotten client starts again with a full bucket).

    The HTTP ingest charges a request in two steps: :meth:`take` one token
    before the body is read, so a client over its budget is refused without
    its body being read, then :meth:`charge` the rest of the batch once its
    size is known. That second charge never refuses: a bucket may go into
    debt, which the client's later requests wait out, so the long-run rate is
    exact and a body that was read is never thrown away for the rate.
    """

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic, max_clients: int = 10_000
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_clients = max_clients
        self.levels: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str, amount: int) -> float:
        """Take ``amount`` tokens for ``client``: 0.0 when granted, else the seconds to wait before retrying.

        An amount larger than the burst is granted on a full bucket; a refused
        take takes nothing.
        """
        level, now = self._level(client)
        needed = min(float(amount), self.burst)
        if level >= needed:
            self._store(client, level - needed, now)
            return 0.0
        self._store(client, level, now)
        return math.ceil((needed - level) / self.rate * 10) / 10

    def charge(self, client: str, amount: int) -> None:
        """Take ``amount`` tokens for ``client`` unconditionally, leaving the bucket in debt if it holds fewer.

        A negative ``amount`` gives tokens back (a batch refused after it was
        charged), never beyond the burst.
        """
        level, now = self._level(client)
        self._store(client, min(self.burst, level - amount), now)

    def _level(self, client: str) -> tuple[float, float]:
        """The client's level refilled up to now, and now."""
        now = self.clock()
        level, seen = self.levels.pop(client, (self.burst, now))
        return min(self.burst, level + (now - seen) * self.rate), now

    def _store(self, client: str, level: float, now: float) -> None:
        self.levels[client] = (level, now)
        while len(self.levels) > self.max_clients:
            self.levels.popitem(last=False)
