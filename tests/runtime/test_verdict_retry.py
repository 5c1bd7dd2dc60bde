"""`retry_transient`: how an Unschedulable verdict (status patch, FailedScheduling event) is
retried when the apiserver fails transiently, and when it gives up."""

from __future__ import annotations

import threading

import pytest
from kubernetes.client import ApiException

from cluster_scheduler.api.binder import retry_transient


class Flaky:
    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)


def test_transient_failures_are_retried_with_growing_waits():
    waits: list[float] = []
    call = Flaky(ApiException(status=503), ConnectionRefusedError("down"), ApiException(status=429))
    retry_transient(call, first_s=0.5, max_s=1.5, sleep=waits.append)
    assert call.calls == 4 and waits == [0.5, 1.0, 1.5]


def test_final_failures_and_the_deadline_are_not_retried():
    call = Flaky(ApiException(status=404))
    with pytest.raises(ApiException):
        retry_transient(call, sleep=lambda s: None)
    assert call.calls == 1

    call = Flaky(*[ApiException(status=500)] * 10)
    with pytest.raises(ApiException):
        retry_transient(call, deadline_s=0.0, sleep=lambda s: None)
    assert call.calls == 1


def test_closing_stops_the_retries():
    closed = threading.Event()
    closed.set()
    call = Flaky(ApiException(status=503), ApiException(status=503))
    with pytest.raises(ApiException):
        retry_transient(call, closed=closed)
    assert call.calls == 1
