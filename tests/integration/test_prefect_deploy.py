"""``prefect.yaml`` as a team uses it: a local Prefect server, the process work pool, ``prefect deploy
--all``, and one deployment run by a real ``prefect worker``.

This is what broke with FastAPI >= 0.151 (the server answered the CLI's worker check with HTTP 422
after the first deployment), which a flow run under the test harness never exercises.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from features.store import BarStore

REPO = Path(__file__).resolve().parents[2]
PREFECT = Path(sys.executable).with_name("prefect")
POOL = "mmops-process"
STARTUP_S = 300  # a first start creates and migrates the database; generous, since slow is not broken

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A ``prefect server start`` of its own (scheduler off: only the runs this test creates)."""
    root = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(root / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        _wait_healthy(api, proc, root / "server.log")
        yield {**env, "PREFECT_API_URL": api}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _wait_healthy(api: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prefect server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"prefect server not healthy after {STARTUP_S} s:\n{log.read_text()[-3000:]}")


def _prefect(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(PREFECT), "--no-prompt", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (
        f"prefect {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done


def _post(env: dict[str, str], path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(f"{env['PREFECT_API_URL']}{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def test_deploy_all_creates_every_deployment_and_a_worker_runs_one(
    server: dict[str, str], tmp_path: Path, source_data: Path
) -> None:
    env = {
        **server,
        "MMOPS_REPO": str(REPO),
        "MMOPS_HOME": str(tmp_path),
        "MMOPS_SOURCE_DATA": str(source_data),
        "MMOPS_PARAMS": str(REPO / "params.yaml"),
    }
    _prefect(env, "work-pool", "create", POOL, "--type", "process")
    _prefect(env, "deploy", "--all")

    declared = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    found = {
        d["name"]: d for d in _post(env, "/deployments/filter", {"limit": 50}) if d["work_pool_name"] == POOL
    }
    assert set(found) == {d["name"] for d in declared}
    for spec in declared:
        deployment = found[spec["name"]]
        assert deployment["entrypoint"] == spec["entrypoint"]
        crons = sorted(s["schedule"]["cron"] for s in deployment["schedules"])
        assert crons == sorted(s["cron"] for s in spec.get("schedules", []))
        assert deployment["job_variables"]["env"]["MMOPS_HOME"] == str(tmp_path)

    # One small deployment end to end: a flow run picked up and executed by a real process worker.
    run = _post(env, f"/deployments/{found['ingest']['id']}/create_flow_run", {})
    _prefect(env, "worker", "start", "--pool", POOL, "--run-once", timeout=600)
    state = httpx.get(f"{env['PREFECT_API_URL']}/flow_runs/{run['id']}", timeout=30).json()["state"]
    assert state["type"] == "COMPLETED", state
    logs = _post(env, "/logs/filter", {"logs": {"flow_run_id": {"any_": [run["id"]]}}, "limit": 200})
    progress = [entry["message"] for entry in logs if entry["name"] == "mmops.progress"]
    assert any(m.startswith("ingest + validate") and "binance:BTCUSDT:1m" in m for m in progress), sorted(
        {e["name"] for e in logs}
    )
    series = BarStore(tmp_path / "data" / "bars").series()
    assert {(s.venue, s.symbol, s.interval) for s in series} >= {("binance", "BTCUSDT", "1m")}
