"""The drift monitor flow: compute drift per series and, when it is sustained, emit the Prefect
event whose deployment trigger (``prefect.yaml``, deployment ``retrain``) runs a canary retrain.

The event: ``mmops.drift.detected`` on the resource ``mmops.monitor.<series>`` (the drift
library's series name, e.g. ``BTCUSDT-1m``; the retrain also takes ``venue:symbol:interval``),
the verdict's payload as the event's payload (it always holds ``series``). The trigger passes the
payload to ``retrain_flow(mode="canary", drift=...)``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prefect import flow, task
from prefect.events import emit_event

from features.progress import report
from flows.params import Params, load_params
from flows.settings import Locations, locations, use_home
from training.monitor import EVENT, resource_id

logger = logging.getLogger(__name__)

DRIFT_EVENT = EVENT  # the one name, training.monitor's


@dataclass(frozen=True, slots=True)
class DriftCheck:
    """What the monitor acts on, whatever shape the drift library's verdict has.

    Attributes:
        sustained: the alarm held for the configured number of windows.
        series: the series the verdict is about (becomes the event's resource id).
        payload: the event's payload (JSON-able; the retrain trigger passes it on whole).
    """

    sustained: bool
    series: str
    payload: Mapping[str, Any]


def compute_verdict(where: Locations, params: Params, series: str | None) -> DriftCheck:
    """The one call into the drift computation (:func:`flows.monitor_steps.compute_drift`)."""
    from flows.monitor_steps import compute_drift

    verdict = compute_drift(where, params, series=series)
    return DriftCheck(sustained=verdict.drift, series=verdict.series, payload=dict(verdict.event_payload()))


def emit_drift(series: str, payload: Mapping[str, Any]) -> str | None:
    """Emit ``mmops.drift.detected`` for ``series``; returns the event id (None: events are off,
    e.g. no Prefect API configured, and nothing was sent)."""
    body = {**payload, "series": series}
    event = emit_event(
        event=DRIFT_EVENT,
        resource={"prefect.resource.id": resource_id(series), "prefect.resource.name": series},
        payload=body,
    )
    if event is None:
        logger.warning("%s: drift event not sent (no Prefect API to send it to)", series)
        return None
    return str(event.id)


@task
def check_drift(where: Locations, params: Params, series: str | None) -> DriftCheck:
    return compute_verdict(where, params, series)


@task
def announce(verdict: DriftCheck) -> str | None:
    """The event for a sustained verdict; a passing window is only logged."""
    if not verdict.sustained:
        report("drift", detail=f"{verdict.series}: no sustained drift")
        return None
    report("drift", detail=f"{verdict.series}: sustained drift, {DRIFT_EVENT} emitted")
    return emit_drift(verdict.series, verdict.payload)


@flow(name="drift-monitor", log_prints=True)
def drift_monitor_flow(series: list[str] | None = None) -> dict[str, Any]:
    """Drift of each series (default: the drift library's own default series) against its
    champion's training window; a sustained drift emits the canary-retrain event.

    Returns:
        ``{series: {"sustained": bool, "event": event id or None}}``.
    """
    where = locations()
    use_home(where)
    params = load_params(where.params_file)
    found: dict[str, Any] = {}
    watched: list[str | None] = list(series) if series else [None]
    for key in watched:
        verdict = check_drift(where, params, key)
        found[verdict.series] = {"sustained": verdict.sustained, "event": announce(verdict)}
    return found
