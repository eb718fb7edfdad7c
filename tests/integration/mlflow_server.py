"""A real ``mlflow server`` for the scale-out tests: runs and the registry in PostgreSQL, artifacts
in a local folder the server serves (``--artifacts-destination``), clients on
``MLFLOW_TRACKING_URI=http://127.0.0.1:PORT`` only: no client ever opens the folder itself.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from postgres import free_port
from prefect_server import poll

MLFLOW = Path(sys.executable).with_name("mlflow")
STARTUP_S = 240  # creating MLflow's tables in an empty database runs every migration: minutes under load


@contextmanager
def mlflow_server(backend_uri: str, root: Path, *, env: dict[str, str]) -> Iterator[str]:
    """Start the server on a free loopback port; yields its tracking URI; stops it afterwards.

    Args:
        backend_uri: the SQLAlchemy URL of its (empty or existing) database.
        root: holds ``artifacts/`` (the served artifact store) and ``server.log``.
        env: the server's environment.
    """
    port = free_port()
    log_path = root / "server.log"
    uri = f"http://127.0.0.1:{port}"
    command = [
        str(MLFLOW),
        "server",
        "--backend-store-uri",
        backend_uri,
        "--artifacts-destination",
        str(root / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",  # one process on 2 cores: each worker takes ~30 s to import MLflow under load
    ]
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:

            def healthy() -> bool:
                if proc.poll() is not None:
                    raise AssertionError(
                        f"mlflow server exited {proc.returncode}:\n{log_path.read_text()[-3000:]}"
                    )
                try:
                    return httpx.get(f"{uri}/health", timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            poll(healthy, timeout=STARTUP_S, every=1, what=f"mlflow server healthy ({log_path})")
            yield uri
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
