"""The retry helper: capped exponential waits, deadlines, give-up, failure hooks and logs, without real sleeping."""

from __future__ import annotations

import asyncio
import logging

import pytest

from crisiswatch.runtime.kafka import AckedProducer, OutgoingRecord
from crisiswatch.runtime.retry import Backoff, retry, retry_async


class Flaky:
    """Fails ``failures`` times with ``error``, then returns "done"."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return "done"


class FakeTime:
    """A clock that only moves when something sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)

    def clock(self) -> float:
        return self.now


def test_waits_double_from_the_first_wait_and_stop_at_the_cap() -> None:
    time, failures = FakeTime(), []
    flaky = Flaky(6)
    result = retry(
        flaky,
        retry_on=ConnectionError,
        backoff=Backoff(first_s=0.5, max_s=4.0),
        on_failure=failures.append,
        sleep=time.sleep,
        clock=time.clock,
    )
    assert result == "done" and flaky.calls == 7
    assert time.waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert [str(error) for error in failures] == [f"failure {n}" for n in range(1, 7)]


def test_a_constant_backoff_polls_at_the_same_pace() -> None:
    time = FakeTime()
    retry(Flaky(3), retry_on=ConnectionError, backoff=Backoff.constant(0.25), sleep=time.sleep, clock=time.clock)
    assert time.waits == [0.25, 0.25, 0.25]


def test_past_the_deadline_the_last_error_is_raised() -> None:
    time, failures = FakeTime(), []
    with pytest.raises(ConnectionError, match="failure 4"):
        retry(
            Flaky(100),
            retry_on=ConnectionError,
            backoff=Backoff.constant(1.0),
            deadline_s=2.5,
            on_failure=failures.append,
            sleep=time.sleep,
            clock=time.clock,
        )
    assert len(failures) == 4, "the failure that ends the retrying is counted too"
    assert time.waits == [1.0, 1.0, 1.0]


def test_give_up_is_asked_after_each_failure_before_waiting() -> None:
    time = FakeTime()
    flaky = Flaky(100)
    with pytest.raises(ConnectionError):
        retry(flaky, retry_on=ConnectionError, give_up=lambda: flaky.calls >= 2, sleep=time.sleep, clock=time.clock)
    assert flaky.calls == 2 and time.waits == [0.5]


def test_errors_it_is_not_told_to_retry_pass_through_at_once() -> None:
    time = FakeTime()
    flaky = Flaky(1, error=KeyError)
    with pytest.raises(KeyError):
        retry(flaky, retry_on=ConnectionError, sleep=time.sleep, clock=time.clock)
    assert flaky.calls == 1 and time.waits == []


def test_each_retried_failure_is_logged_with_the_error_and_the_wait(caplog: pytest.LogCaptureFixture) -> None:
    time = FakeTime()
    log = logging.getLogger("tests.retry")
    with caplog.at_level(logging.WARNING, logger="tests.retry"):
        retry(
            Flaky(2),
            retry_on=ConnectionError,
            log=log,
            message="delivery failed; retrying",
            extra=lambda error: {"what": type(error).__name__},
            sleep=time.sleep,
            clock=time.clock,
        )
    assert [r.getMessage() for r in caplog.records] == ["delivery failed; retrying"] * 2
    assert [(r.what, r.error, r.retry_in_s) for r in caplog.records] == [
        ("ConnectionError", "failure 1", 0.5),
        ("ConnectionError", "failure 2", 1.0),
    ]


def test_the_async_form_retries_a_coroutine_until_it_succeeds() -> None:
    time, failures = FakeTime(), []
    flaky = Flaky(3)

    async def attempt() -> str:
        return flaky()

    result = asyncio.run(
        retry_async(
            attempt,
            retry_on=ConnectionError,
            backoff=Backoff(first_s=1.0, max_s=2.0),
            on_failure=failures.append,
            sleep=time.asleep,
            clock=time.clock,
        )
    )
    assert result == "done" and len(failures) == 3 and time.waits == [1.0, 2.0, 2.0]


class FakeFuture:
    def __init__(self, ok: bool) -> None:
        self.ok = ok
        self.is_done = True
        self.exception = None if ok else RuntimeError("NotLeaderForPartition")

    def succeeded(self) -> bool:
        return self.ok


class FakeProducer:
    """Refuses the first ``refusals`` sends, acknowledges the rest."""

    def __init__(self, refusals: list[int]) -> None:
        self.refusals = refusals
        self.sent: list[bytes] = []

    def send(self, topic: str, key: bytes | None, value: bytes) -> FakeFuture:
        self.sent.append(value)
        ok = self.refusals[0] <= 0 if self.refusals else True
        if self.refusals:
            self.refusals[0] -= 1
        return FakeFuture(ok)

    def flush(self, timeout: float) -> None:
        pass

    def close(self, timeout: float) -> None:
        pass


def test_the_acked_producer_resends_refused_records_on_a_new_client_after_a_backoff() -> None:
    time, counted = FakeTime(), []
    refusals = [2]
    clients: list[FakeProducer] = []

    def factory() -> FakeProducer:
        clients.append(FakeProducer(refusals))
        return clients[-1]

    producer = AckedProducer(factory, on_failure=lambda topic, n: counted.append((topic, n)), sleep=time.sleep)  # type: ignore[arg-type]
    producer.send(OutgoingRecord("t", None, b"a"))
    producer.send(OutgoingRecord("t", None, b"b"))
    assert producer.confirm()
    assert counted == [("t", 2)] and time.waits == [0.5]
    assert len(clients) == 2 and clients[1].sent == [b"a", b"b"]


def test_the_acked_producer_gives_up_when_told_to_stop() -> None:
    time = FakeTime()
    producer = AckedProducer(lambda: FakeProducer([1_000]), sleep=time.sleep)  # type: ignore[arg-type,return-value]
    producer.send(OutgoingRecord("t", None, b"a"))
    assert not producer.confirm(stopping=lambda: len(time.waits) >= 3)
    assert time.waits == [0.5, 1.0, 2.0]
