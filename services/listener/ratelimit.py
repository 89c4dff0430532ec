"""Per-client token buckets for the HTTP ingest (pure; the clock is injected for tests)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBuckets:
    """``rate`` records per second per client, with bursts up to ``burst``; at most ``max_clients`` are tracked.

    A batch is taken whole or not at all, so a refused request ingested
    nothing and the client can retry it as it is. The least recently seen
    clients are forgotten first, which keeps memory bounded (a forgotten
    client starts again with a full bucket).
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
        """Take ``amount`` tokens for ``client``: 0.0 when granted, else the seconds to wait before retrying."""
        now = self.clock()
        level, seen = self.levels.pop(client, (self.burst, now))
        level = min(self.burst, level + (now - seen) * self.rate)
        needed = min(float(amount), self.burst)
        wait = 0.0
        if level >= needed:
            level -= needed
        else:
            wait = math.ceil((needed - level) / self.rate * 10) / 10
        self.levels[client] = (level, now)
        while len(self.levels) > self.max_clients:
            self.levels.popitem(last=False)
        return wait
