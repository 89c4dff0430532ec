"""Retrying with capped exponential backoff: the one loop behind every wait for a broker, a client or Slack.

Built on tenacity. Every failure is handed to ``on_failure`` (a metric, say)
and, when it will be retried, logged with the error and the wait; the attempt
that gives up re-raises its own exception, so callers keep their own error
types. ``sleep`` and ``clock`` are injectable, so tests run without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception_type, wait_exponential

T = TypeVar("T")

ErrorTypes = type[BaseException] | tuple[type[BaseException], ...]
LogExtra = Mapping[str, object] | Callable[[BaseException], Mapping[str, object]]


@dataclass(frozen=True)
class Backoff:
    """Waits between attempts: ``first_s``, then ``factor`` times longer each time, never above ``max_s``."""

    first_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0

    @classmethod
    def constant(cls, seconds: float) -> Backoff:
        """The same wait every time (polling)."""
        return cls(first_s=seconds, max_s=seconds, factor=1.0)


def _policy(
    retry_on: ErrorTypes,
    backoff: Backoff,
    deadline_s: float | None,
    give_up: Callable[[], bool] | None,
    on_failure: Callable[[BaseException], object] | None,
    log: logging.Logger | None,
    message: str,
    extra: LogExtra | None,
    clock: Callable[[], float],
) -> dict[str, Any]:
    """The tenacity arguments shared by :func:`retry` and :func:`retry_async`."""
    started = clock()

    def stop(_: RetryCallState) -> bool:
        expired = deadline_s is not None and clock() - started > deadline_s
        return expired or (give_up is not None and give_up())

    def failed(state: RetryCallState) -> None:
        if on_failure is not None and (error := _error_of(state)) is not None:
            on_failure(error)

    def before_sleep(state: RetryCallState) -> None:
        error = _error_of(state)
        if log is None or error is None:
            return
        fields = extra(error) if callable(extra) else (extra or {})
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(message, extra={**fields, "error": str(error)[:300], "retry_in_s": wait})

    return {
        "retry": retry_if_exception_type(retry_on),
        "wait": wait_exponential(multiplier=backoff.first_s, exp_base=backoff.factor, max=backoff.max_s),
        "stop": stop,
        "after": failed,
        "before_sleep": before_sleep,
        "reraise": True,
    }


def _error_of(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


def retry(
    attempt: Callable[[], T],
    *,
    retry_on: ErrorTypes,
    backoff: Backoff = Backoff(),
    deadline_s: float | None = None,
    give_up: Callable[[], bool] | None = None,
    on_failure: Callable[[BaseException], object] | None = None,
    log: logging.Logger | None = None,
    message: str = "attempt failed; retrying",
    extra: LogExtra | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``attempt`` until it returns, waiting with ``backoff`` after each ``retry_on`` error.

    Gives up, re-raising the last error, once ``deadline_s`` has passed since
    the first call or ``give_up()`` turns true (both checked after a failure,
    before the wait). Other exceptions pass through at once. With ``log``,
    each retried failure is logged as a warning with ``extra`` (a mapping, or
    a function of the error), the error and ``retry_in_s``.
    """
    policy = _policy(retry_on, backoff, deadline_s, give_up, on_failure, log, message, extra, clock)
    return Retrying(sleep=sleep, **policy)(attempt)


async def retry_async(
    attempt: Callable[[], Awaitable[T]],
    *,
    retry_on: ErrorTypes,
    backoff: Backoff = Backoff(),
    deadline_s: float | None = None,
    give_up: Callable[[], bool] | None = None,
    on_failure: Callable[[BaseException], object] | None = None,
    log: logging.Logger | None = None,
    message: str = "attempt failed; retrying",
    extra: LogExtra | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """:func:`retry` for a coroutine: awaits ``attempt()`` and waits with ``sleep`` without blocking the loop."""
    policy = _policy(retry_on, backoff, deadline_s, give_up, on_failure, log, message, extra, clock)
    return await AsyncRetrying(sleep=sleep, **policy)(attempt)
