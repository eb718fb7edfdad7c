"""Metrics observers: a failing one is logged, rate-limited, and changes nothing else."""

from __future__ import annotations

import logging

import pytest

from serving import observers
from serving.observers import notify


def test_a_failing_observer_is_logged_once_a_minute_with_the_count_between(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(observers.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(observers, "_failures", {})
    calls: list[int] = []

    def broken(n: int) -> None:
        calls.append(n)
        raise RuntimeError("metrics down")

    with caplog.at_level(logging.ERROR, logger="serving.observers"):
        for n in range(5):
            notify(broken, n, what="model call")
            clock[0] += 10.0  # 5 calls over 50 s: one report
        clock[0] += 10.0  # 60 s after the first: the next failure is reported with the 4 between
        notify(broken, 5, what="model call")
        notify(lambda: None, what="model call")  # a working observer logs nothing
        notify(None, what="model call")  # no observer: nothing called
    assert calls == [0, 1, 2, 3, 4, 5]
    reports = [r for r in caplog.records if r.name == "serving.observers"]
    assert [r.getMessage().split(" (")[0] for r in reports] == ["metrics: the model call observer failed"] * 2
    assert "and 0 more times" in reports[0].getMessage() and "and 4 more times" in reports[1].getMessage()
    assert all(r.exc_info is not None and "metrics down" in str(r.exc_info[1]) for r in reports)
