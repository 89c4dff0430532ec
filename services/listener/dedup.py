"""Remembering recently seen mention ids so re-delivered posts are dropped."""

from __future__ import annotations

from collections import OrderedDict


class RecentIds:
    """A bounded set: the ``capacity`` most recently seen keys (oldest forgotten first)."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()

    def first_time(self, key: str) -> bool:
        """Record ``key``; return whether it had not been seen (within capacity) before."""
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True

    def forget(self, key: str) -> None:
        """Forget ``key`` (its record never reached the broker, so a retry is not a duplicate)."""
        self._seen.pop(key, None)

    def __len__(self) -> int:
        return len(self._seen)
