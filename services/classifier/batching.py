"""Dynamic batching policy (pure functions): when to run the model and how to group texts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BatchPolicy:
    """Run the model when ``max_batch_size`` mentions wait or the oldest has waited ``max_wait_s``."""

    max_batch_size: int = 64
    max_wait_s: float = 0.05

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {self.max_batch_size}")
        if self.max_wait_s < 0:
            raise ValueError(f"max_wait_s must not be negative, got {self.max_wait_s}")

    def should_flush(self, pending: int, oldest_age_s: float) -> bool:
        """Whether the pending mentions should be scored now."""
        return pending >= self.max_batch_size or (pending > 0 and oldest_age_s >= self.max_wait_s)

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
