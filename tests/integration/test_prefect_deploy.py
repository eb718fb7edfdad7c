"""``prefect.yaml`` as a team uses it: a local Prefect server, the process work pool, ``prefect deploy
--all``, and one deployment run by a real ``prefect worker``.

This is what broke with FastAPI >= 0.151 (the server answered the CLI's worker check with HTTP 422
after the first deployment), which a flow run under the test harness never exercises.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from prefect_server import POOL, REPO, deployments, get, post, prefect, run_logs

from features.store import BarStore

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_deploy_all_creates_every_deployment_and_a_worker_runs_one(
    prefect_api: dict[str, str], tmp_path: Path, source_data: Path
) -> None:
    env = {
        **prefect_api,
        "MMOPS_REPO": str(REPO),
        "MMOPS_HOME": str(tmp_path),
        "MMOPS_SOURCE_DATA": str(source_data),
        "MMOPS_PARAMS": str(REPO / "params.yaml"),
    }
    prefect(env, "work-pool", "create", POOL, "--type", "process")
    prefect(env, "deploy", "--all")

    declared = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    found = deployments(env)
    assert set(found) == {d["name"] for d in declared}
    for spec in declared:
        deployment = found[spec["name"]]
        assert deployment["entrypoint"] == spec["entrypoint"]
        crons = sorted(s["schedule"]["cron"] for s in deployment["schedules"])
        assert crons == sorted(s["cron"] for s in spec.get("schedules", []))
        assert deployment["job_variables"]["env"]["MMOPS_HOME"] == str(tmp_path)

    # One small deployment end to end: a flow run picked up and executed by a real process worker.
    run = post(env, f"/deployments/{found['ingest']['id']}/create_flow_run", {})
    prefect(env, "worker", "start", "--pool", POOL, "--run-once", timeout=600)
    state = get(env, f"/flow_runs/{run['id']}")["state"]
    assert state["type"] == "COMPLETED", state
    logs = run_logs(env, run["id"])
    progress = [entry["message"] for entry in logs if entry["name"] == "mmops.progress"]
    assert any(m.startswith("ingest + validate") and "binance:BTCUSDT:1m" in m for m in progress), sorted(
        {e["name"] for e in logs}
    )
    series = BarStore(tmp_path / "data" / "bars").series()
    assert {(s.venue, s.symbol, s.interval) for s in series} >= {("binance", "BTCUSDT", "1m")}
