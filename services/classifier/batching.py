"""Dynamic batching policy (pure functions): when to run the model and how to group texts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BatchPolicy:
    """Score what waits once ``max_pending`` mentions wait or the oldest has waited ``max_wait_s``.

    The model runs batches of at most ``max_batch_size``; up to
    ``lookahead_batches`` of them are gathered per pass so that texts of
    similar length can share a batch. A batch pads every text to its longest,
    so sixty-four arbitrary tweets cost about as much as sixty-four long ones:
    on a CPU, passes of four batches scored 30–50% more per second than
    passes of one. Under light load the wait cap flushes first, so latency
    only grows when there is a backlog to clear.
    """

    max_batch_size: int = 64
    max_wait_s: float = 0.05
    lookahead_batches: int = 4

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {self.max_batch_size}")
        if self.max_wait_s < 0:
            raise ValueError(f"max_wait_s must not be negative, got {self.max_wait_s}")
        if self.lookahead_batches < 1:
            raise ValueError(f"lookahead_batches must be at least 1, got {self.lookahead_batches}")

    @property
    def max_pending(self) -> int:
        """The most mentions scored in one pass."""
        return self.max_batch_size * self.lookahead_batches

    def should_flush(self, pending: int, oldest_age_s: float) -> bool:
        """Whether the pending mentions should be scored now."""
        return pending >= self.max_pending or (pending > 0 and oldest_age_s >= self.max_wait_s)

    def time_left(self, pending: int, oldest_age_s: float) -> float:
        """How long the consumer may wait for more mentions before the latency cap is reached."""
        return self.max_wait_s if pending == 0 else max(0.0, self.max_wait_s - oldest_age_s)


def plan_batches(lengths: Sequence[int], max_batch_size: int) -> list[list[int]]:
    """Group item indices into batches of similar token length to minimise padding.

    Items are sorted by length and cut into runs of at most ``max_batch_size``;
    every index appears exactly once.
    """
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[start : start + max_batch_size] for start in range(0, len(order), max_batch_size)]
