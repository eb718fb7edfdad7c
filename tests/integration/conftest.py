"""Fixtures of the integration tests that need real servers: Prefect (prefect_server.py),
PostgreSQL (postgres.py) and an MLflow tracking server on it (mlflow_server.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from mlflow_server import mlflow_server
from postgres import Postgres, postgres_server
from prefect_server import prefect_server


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A ``prefect server start`` of this test module's own; the environment that talks to it."""
    with prefect_server(tmp_path_factory.mktemp("prefect-server")) as env:
        yield env


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL cluster for the session (each test module creates its own databases)."""
    with postgres_server() as pg:
        yield pg


@pytest.fixture(scope="session")
def tracking_server(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One ``mlflow server`` for the session, on its own PostgreSQL database; yields its URI."""
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # GenAI scoring jobs: a second process for nothing
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    root = tmp_path_factory.mktemp("mlflow-server")
    with mlflow_server(postgres.create_database("mlflow"), root, env=env) as uri:
        yield uri
