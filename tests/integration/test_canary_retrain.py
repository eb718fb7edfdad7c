"""Drift to canary, through the real pieces: a local Prefect server, ``prefect deploy --all`` from
``prefect.yaml``, a process worker, the ``mmops.drift.detected`` event sent by the monitor's own
``emit_drift``, the ``retrain`` deployment's trigger and its concurrency limit, and the MLflow
registry the flow run writes.

Two drift events arrive back to back: two retrains run, one after the other (the second waits in
AwaitingConcurrencySlot), each registers a version that passes the gate (thresholds lowered in
this test's params file) and becomes ``@challenger``; none becomes ``@champion``. A third event,
on a resource the trigger does not match, starts nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from budget import small_budget_params
from prefect_server import (
    POOL,
    REPO,
    TERMINAL,
    deployments,
    flow_runs,
    poll,
    post,
    prefect,
    prefect_worker,
    run_logs,
    state_names,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MONTH = "BTCUSDT-1m-2026-03.zip"
SERIES = "binance:BTCUSDT:1m"
NAME = "mmops-BTCUSDT-1m"
RETRAINS_S = 1200  # two tiny retrains one after the other, each a fresh process importing the stack
PAYLOADS = [
    {
        "reason": "share of drifted features 0.62 over 3 windows",
        "share_drifted": 0.62,
        "drifted": ["rv_60", "ofi_15"],
    },
    {"reason": "prediction drift over 4 windows", "share_drifted": 0.4, "drifted": ["pred_return"]},
]
# Thresholds a one-trial model clears: the test is about the path, not the model's quality.
LOWERED_GATE = {
    "min_utility": -1.0e6,
    "min_utility_over_quoter": -1.0e6,
    "min_pnl_over_quoter": -1.0e6,
    "min_utility_over_champion": -1.0e6,
    "min_sharpe": -1.0e6,
    "max_drawdown_pct": 100.0,
    "min_sharpe_over_quoter": -1.0e6,
    "min_trades": 0,
    "min_sharpe_over_champion": -1.0e6,
    "auto_approve": {"enabled": False, "min_sharpe_margin": 0.5},
}


@pytest.fixture(scope="module")
def canary_home(tmp_path_factory: pytest.TempPathFactory, source_data: Path) -> Path:
    """One real month in the store; params with one sgd trial and the gate lowered."""
    from features.pipeline import ingest_source
    from flows.params import load_params

    home = tmp_path_factory.mktemp("canary")
    path = small_budget_params(home / "params.yaml")
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    doc["tune"].update(families=["sgd"], trials=1, n_startup_trials=1)
    doc["gate"].update(LOWERED_GATE)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    ingest_source(
        "binance-dump",
        source_data / "binance-spot-1m" / MONTH,
        store_root=home / "data" / "bars",
        quarantine_root=home / "data" / "quarantine",
        gx_root=None,
        validation=load_params(path).validation,
        now=pd.Timestamp.now(tz="UTC"),
    )
    return home


def emit(env: dict[str, str]) -> None:
    """The events, sent from a process of their own the way the drift monitor sends them."""
    script = f"""
from prefect.events import emit_event
from flows.monitor import emit_drift
emit_event(event="mmops.drift.detected", resource={{"prefect.resource.id": "mmops.elsewhere.{SERIES}"}}, payload={{}})
for payload in {PAYLOADS!r}:
    emit_drift({SERIES!r}, payload)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_drift_event_runs_a_canary_retrain_that_ends_at_challenger_never_champion(
    prefect_api: dict[str, str], canary_home: Path, source_data: Path, tmp_path: Path
) -> None:
    env = {
        **{k: v for k, v in prefect_api.items() if k not in ("MLFLOW_TRACKING_URI", "MMOPS_OPTUNA_STORAGE")},
        "MMOPS_REPO": str(REPO),
        "MMOPS_HOME": str(canary_home),
        "MMOPS_SOURCE_DATA": str(source_data),
        "MMOPS_PARAMS": str(canary_home / "params.yaml"),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }
    prefect(env, "work-pool", "create", POOL, "--type", "process")
    prefect(env, "deploy", "--all")

    retrain = deployments(env)["retrain"]
    assert retrain["global_concurrency_limit"]["limit"] == 1
    automations = post(env, "/automations/filter", {})
    (trigger,) = [a for a in automations if a["name"] == "retrain-on-drift"]
    assert trigger["trigger"]["expect"] == ["mmops.drift.detected"]
    assert trigger["trigger"]["match"] == {"prefect.resource.id": "mmops.monitor.*"}
    (action,) = trigger["actions"]
    assert action["type"] == "run-deployment" and action["deployment_id"] == retrain["id"]

    with prefect_worker(env, tmp_path / "worker.log"):
        emit(env)

        def finished() -> list[dict[str, Any]] | None:
            runs = flow_runs(env, retrain["id"])
            done = len(runs) >= 2 and all(r["state"]["type"] in TERMINAL for r in runs)
            return runs if done else None

        runs = poll(finished, timeout=RETRAINS_S, every=5, what="two retrain runs to finish")

    worker_log = (tmp_path / "worker.log").read_text()[-4000:]
    assert len(runs) == 2, [r["parameters"] for r in runs]  # the decoy resource started nothing
    for run in runs:
        assert run["state"]["type"] == "COMPLETED", (run["state"], _progress(env, run["id"]), worker_log)

    # The trigger's templates: mode fixed, series and reason rendered, the payload kept as a dict.
    by_reason = {run["parameters"]["drift"]["reason"]: run for run in runs}
    for payload in PAYLOADS:
        params = by_reason[payload["reason"]]["parameters"]
        assert params["mode"] == "canary" and params["series"] == SERIES
        assert params["drift"] == {**payload, "series": SERIES}
        assert params["reason"].startswith(f"sustained drift on {SERIES} (event ")

    # One at a time: the later one waited for the slot and began only after the first ended.
    first, second = sorted(runs, key=lambda r: r["start_time"])
    assert first["end_time"] <= second["start_time"]
    assert "AwaitingConcurrencySlot" in state_names(env, second["id"]), state_names(env, second["id"])

    from training.registry import Registry

    registry = Registry(
        f"sqlite:///{canary_home / 'mlflow.db'}",
        audit_log=canary_home / "logs" / "registry_audit.jsonl",
        reports=canary_home / "reports",
    )
    state = registry.state(NAME)
    assert state.aliases == {"challenger": "2"}  # the newest pass; never champion
    for run, version in zip((first, second), state.versions, strict=True):
        tags = version.tags
        drift = run["parameters"]["drift"]
        assert tags["mmops.gate.verdict"] == "passed"
        assert tags["mmops.retrain.mode"] == "canary"
        assert tags["mmops.retrain.reason"] == run["parameters"]["reason"]
        assert tags["mmops.retrain.flow_run"] == run["id"]
        assert tags["mmops.retrain.alias"] == "challenger"
        assert tags["mmops.drift.series"] == SERIES and json.loads(tags["mmops.drift.payload"]) == drift
        assert json.loads(tags["mmops.tune.chosen"])["family"] == "sgd"
        assert "forward_sharpe: " in tags["mmops.gate.checks"] and "-> pass" in tags["mmops.gate.checks"]
        assert "mmops.approval.status" not in tags
        described = str(registry.client.get_model_version(NAME, version.version).description)
        # the gate's verdict line stays on top (what the MLflow UI shows first), then the retrain's steps
        first, _, rest = described.partition("\n\n")
        assert first.startswith("Gate passed: all ") and "\n" not in first
        assert rest.startswith("**canary retrain**") and "- alias: challenger" in rest
    moves = [(e["action"], e["alias"], e["version"]) for e in registry.audit.entries() if e["alias"]]
    assert moves == [("gate", "challenger", "1"), ("gate", "challenger", "2")]


def _progress(env: dict[str, str], run_id: str) -> list[str]:
    return [e["message"] for e in run_logs(env, run_id)][-30:]
