"""Shared fixtures: the real source data, and an isolated MMOPS_HOME per test."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Third-party state (Prefect's home and database, caches) in a fresh folder for the session,
    never in the user's home, set before any test imports Prefect, MLflow or TensorFlow."""
    from flows.cli_common import QUIET_ENVIRONMENT, QUIET_LOGGERS
    from flows.settings import Locations, use_home

    tools_home = Path(tempfile.mkdtemp(prefix="mmops-tests-"))
    use_home(
        Locations(home=tools_home, source_data=_source_data(), params_file=REPO / "params.yaml"), force=True
    )
    config.add_cleanup(lambda: shutil.rmtree(tools_home, ignore_errors=True))
    # Quiet mode from the start, as every in-process CLI call sets it: the same state in any test order.
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)


def _source_data() -> Path:
    return Path(os.environ.get("MMOPS_SOURCE_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def source_data() -> Path:
    path = _source_data()
    if not (path / "binance-spot-1m").is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI must have the shared data at {path} (set MMOPS_SOURCE_DATA)")
        pytest.skip(f"shared data not found at {path} (set MMOPS_SOURCE_DATA)")
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source_data: Path) -> Path:
    """An empty MMOPS_HOME using the repository's params.yaml."""
    monkeypatch.setenv("MMOPS_HOME", str(tmp_path))
    monkeypatch.setenv("MMOPS_SOURCE_DATA", str(source_data))
    monkeypatch.setenv("MMOPS_PARAMS", str(REPO / "params.yaml"))
    return tmp_path


@pytest.fixture(scope="session")
def btc_bars(source_data: Path) -> pd.DataFrame:
    """The 87,840 real BTCUSDT 1m bars of March-April 2026 in the canonical schema."""
    from features.sources.binance import dump_files, read_dumps

    return read_dumps(dump_files(source_data / "binance-spot-1m"))


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server for the whole session (each costs 15-20 s to start, more on a
    first start under load: the limit is generous because a slow start is not a failure)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=300):
        yield
