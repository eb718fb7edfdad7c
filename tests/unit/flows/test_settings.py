"""Runtime locations: everything a run writes stays under MMOPS_HOME, the user's settings win."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flows.settings import Locations, use_home

PATH_VARIABLES = ("PREFECT_HOME", "XDG_CACHE_HOME", "MPLCONFIGDIR", "KERAS_HOME", "BENTOML_HOME")


def _where(home: Path) -> Locations:
    return Locations(home=home, source_data=home / "src", params_file=home / "params.yaml")


def test_third_party_state_lives_under_the_home(tmp_path: Path) -> None:
    env = _where(tmp_path).tool_environment()
    for key in PATH_VARIABLES:
        assert Path(env[key]).is_relative_to(tmp_path), key
    # hidden folders: a `prefect/` or `bentoml/` folder in a checkout reads as a first-party package
    assert {Path(env[k]).relative_to(tmp_path).parts[0] for k in PATH_VARIABLES} <= {
        ".prefect",
        ".cache",
        ".bentoml",
    }
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true" and env["DO_NOT_TRACK"] == "1"
    assert int(env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"]) >= 120  # Prefect's 20 s is too short


def test_the_users_own_settings_win_unless_forced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in _where(tmp_path).tool_environment():
        monkeypatch.delenv(key, raising=False)  # and restored after the test: no leak into the session
    monkeypatch.setenv("PREFECT_HOME", "/srv/team-prefect")
    use_home(_where(tmp_path))
    assert os.environ["PREFECT_HOME"] == "/srv/team-prefect"
    assert os.environ["KERAS_HOME"] == str(tmp_path / ".cache" / "keras")
    use_home(_where(tmp_path), force=True)
    assert os.environ["PREFECT_HOME"] == str(tmp_path / ".prefect")


def test_every_location_is_a_url_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("MLFLOW_TRACKING_URI", "MMOPS_OPTUNA_STORAGE", "MMOPS_ARTIFACT_ROOT"):
        monkeypatch.delenv(key, raising=False)
    local = _where(tmp_path)
    assert local.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert local.optuna_storage == f"sqlite:///{tmp_path / 'optuna.db'}"
    assert local.artifact_root == (tmp_path / "mlartifacts").as_uri()

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    monkeypatch.setenv("MMOPS_OPTUNA_STORAGE", "postgresql+psycopg2://mmops@db.internal/optuna")
    served = _where(tmp_path)
    assert served.tracking_uri == "http://mlflow.internal:5000"
    assert served.optuna_storage == "postgresql+psycopg2://mmops@db.internal/optuna"
    assert served.artifact_root is None  # the tracking server's own store: no client writes a local path
    monkeypatch.setenv("MMOPS_ARTIFACT_ROOT", "s3://bucket/mlflow")
    assert _where(tmp_path).artifact_root == "s3://bucket/mlflow"
