"""A real local Prefect server and process worker for the tests that deploy ``prefect.yaml``.

``prefect server start`` of its own per test module (scheduler off: only the runs a test creates
or its events trigger), the ``prefect`` CLI against it, a long-running ``prefect worker`` and
bounded polls of the API. Every limit is generous: a first start creates and migrates the
database, and on a loaded 2-core machine that has taken minutes. Slow is not broken; a limit
exists so a broken run fails with the logs instead of hanging.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
PREFECT = Path(sys.executable).with_name("prefect")
POOL = "mmops-process"
STARTUP_S = 300
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def prefect_server(root: Path) -> Iterator[dict[str, str]]:
    """Start a server with its home under ``root``; yields the environment that talks to it."""
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(root / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    log_path = root / "server.log"
    api = f"http://127.0.0.1:{port}/api"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_healthy(api, proc, log_path)
            yield {**env, "PREFECT_API_URL": api}
        finally:
            _stop(proc)


def _wait_healthy(api: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    def healthy() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"prefect server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{api}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    poll(healthy, timeout=STARTUP_S, every=1, what=f"prefect server healthy ({log})")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def prefect(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``prefect --no-prompt ARGS`` from the repository root; fails the test on a non-zero exit."""
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


@contextmanager
def prefect_worker(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running process worker on :data:`POOL`, polling every 2 s (the default is 10 s)."""
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(PREFECT), "--no-prompt", "worker", "start", "--pool", POOL],
            cwd=REPO,
            env={**env, "PREFECT_WORKER_QUERY_SECONDS": "2"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            _stop(proc)


def post(env: dict[str, str], path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(f"{env['PREFECT_API_URL']}{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def get(env: dict[str, str], path: str, **query: Any) -> Any:
    response = httpx.get(f"{env['PREFECT_API_URL']}{path}", params=query, timeout=30)
    response.raise_for_status()
    return response.json()


def poll(check: Callable[[], T | None], *, timeout: float, every: float = 2.0, what: str) -> T:
    """``check()`` until it returns something truthy; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def deployments(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The pool's deployments by name."""
    found = post(env, "/deployments/filter", {"limit": 50})
    return {d["name"]: d for d in found if d["work_pool_name"] == POOL}


def flow_runs(env: dict[str, str], deployment_id: str) -> list[dict[str, Any]]:
    """Every flow run of one deployment, oldest first."""
    body = {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}, "sort": "EXPECTED_START_TIME_ASC"}
    return list(post(env, "/flow_runs/filter", body))


def state_names(env: dict[str, str], flow_run_id: str) -> list[str]:
    """The names of every state one flow run went through, in order."""
    states = get(env, "/flow_run_states/", flow_run_id=flow_run_id)
    return [s["name"] for s in sorted(states, key=lambda s: s["timestamp"])]


def run_logs(env: dict[str, str], flow_run_id: str) -> list[dict[str, Any]]:
    return list(post(env, "/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200}))
