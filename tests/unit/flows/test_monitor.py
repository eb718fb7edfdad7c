"""The drift monitor's side: the event it emits, when, and the one adapter onto the drift library."""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.events import DeploymentEventTrigger, DeploymentTriggerTypes
from prefect.events.schemas.events import Resource, ResourceSpecification
from pydantic import TypeAdapter

from flows import monitor

REPO = Path(__file__).resolve().parents[3]
SERIES = "binance:BTCUSDT:1m"


def verdict(sustained: bool) -> monitor.DriftCheck:
    return monitor.DriftCheck(sustained, SERIES, {"share_drifted": 0.62, "reason": "3 windows"})


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def fake_emit(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return types.SimpleNamespace(id="evt-1")

    monkeypatch.setattr(monitor, "emit_event", fake_emit)
    return calls


def test_a_sustained_verdict_emits_the_event_on_the_series_resource(sent: list[dict[str, Any]]) -> None:
    assert monitor.announce.fn(verdict(True)) == "evt-1"
    (call,) = sent
    assert call["event"] == "mmops.drift.detected"
    assert call["resource"]["prefect.resource.id"] == f"mmops.monitor.{SERIES}"
    assert call["payload"] == {"share_drifted": 0.62, "reason": "3 windows", "series": SERIES}


def test_a_passing_window_emits_nothing(sent: list[dict[str, Any]]) -> None:
    assert monitor.announce.fn(verdict(False)) is None
    assert sent == []


def test_the_adapter_acts_on_the_drift_librarys_alarm_and_its_payload(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    where, params = object(), object()

    @dataclass(frozen=True)
    class LibraryVerdict:  # DriftVerdict's shape: the alarm is ``drift``, the payload a method
        drift: bool
        series: str

        def event_payload(self) -> dict[str, Any]:
            return {"series": self.series, "reasons": ["drift share 0.6 >= 0.5"]}

    import flows.monitor_steps

    monkeypatch.setattr(
        flows.monitor_steps, "compute_drift", lambda where, params, *, series: LibraryVerdict(True, series)
    )
    check = monitor.compute_verdict(where, params, "BTCUSDT-1m")  # type: ignore[arg-type]
    assert check == monitor.DriftCheck(
        sustained=True,
        series="BTCUSDT-1m",
        payload={"series": "BTCUSDT-1m", "reasons": ["drift share 0.6 >= 0.5"]},
    )


def test_the_retrain_trigger_in_prefect_yaml_matches_the_monitors_resource_only() -> None:
    deployments = {d["name"]: d for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]}
    retrain = deployments["retrain"]
    assert retrain["concurrency_limit"]["limit"] == 1
    (spec,) = retrain["triggers"]
    trigger = TypeAdapter(DeploymentTriggerTypes).validate_python(spec)
    assert isinstance(trigger, DeploymentEventTrigger)
    assert trigger.expect == {monitor.DRIFT_EVENT}
    assert trigger.parameters is not None and trigger.parameters["mode"] == "canary"
    match = ResourceSpecification.model_validate(trigger.match)
    assert match.matches(Resource({"prefect.resource.id": monitor.resource_id(SERIES)}))
    assert not match.matches(Resource({"prefect.resource.id": f"mmops.elsewhere.{SERIES}"}))
    assert deployments["drift-monitor"]["entrypoint"] == "flows/monitor.py:drift_monitor_flow"
