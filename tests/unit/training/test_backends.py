"""The study storage and tracking store as configured backends: crashed trials retried after their
heartbeat goes stale, and servers that are down or hold an older schema named in one line."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import time
from pathlib import Path

import optuna
import pytest

from features.errors import OperationalError, TemporaryError
from training.config import TuneConfig
from training.tune import open_study, storage_failure


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed on return: nothing listens there


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_crashed_trial_is_failed_once_stale_and_retried_with_its_parameters(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    config = TuneConfig(heartbeat_s=1, grace_s=2, max_retry=1, n_startup_trials=1)
    crashed = open_study(url, "s", maximize=True, config=config)
    trial = crashed.ask()  # a tuner that dies here: its trial stays RUNNING, its heartbeat never beats
    x = trial.suggest_float("x", 0.0, 1.0)
    crashed._storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
    time.sleep(config.grace_s + 1)

    survivor = open_study(url, "s", maximize=True, config=config)
    survivor.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=1)
    states = {t.number: t.state for t in survivor.trials}
    assert states == {0: optuna.trial.TrialState.FAIL, 1: optuna.trial.TrialState.COMPLETE}
    retry = survivor.trials[1]
    assert retry.system_attrs["failed_trial"] == 0 and retry.params == {"x": x} and retry.value == x


def test_grace_must_outlast_a_heartbeat() -> None:
    with pytest.raises(ValueError, match=r"grace_s \(5\) must exceed heartbeat_s \(5\)"):
        TuneConfig(heartbeat_s=5, grace_s=5)


def test_an_unreachable_study_server_is_one_line_with_the_password_masked() -> None:
    port = dead_port()
    url = f"postgresql+psycopg2://mmops:secret@127.0.0.1:{port}/optuna"
    with pytest.raises(TemporaryError) as caught:  # Prefect's tasks retry it; the CLI says it once
        open_study(url, "s", maximize=True, config=TuneConfig())
    message = str(caught.value)
    assert message.startswith(f"study storage postgresql+psycopg2://mmops:***@127.0.0.1:{port}/optuna: ")
    assert "database unreachable, lost or locked" in message and "Connection refused" in message
    assert "secret" not in message and "\n" not in message


def test_a_study_storage_of_an_older_optuna_asks_for_an_upgrade(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    open_study(f"sqlite:///{db}", "s", maximize=True, config=TuneConfig())
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'v3.0.0.a'")  # as Optuna 3.0 left it
    with pytest.raises(OperationalError, match=r"optuna storage upgrade.*\(back the database up first\)"):
        open_study(f"sqlite:///{db}", "s", maximize=True, config=TuneConfig())


def test_storage_failure_looks_through_causes_and_ignores_other_errors() -> None:
    import sqlalchemy
    import sqlalchemy.exc

    engine = sqlalchemy.create_engine(f"postgresql+psycopg2://mmops@127.0.0.1:{dead_port()}/x")
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.OperationalError as exc:
        lost = exc
    try:
        raise RuntimeError("optuna gave up") from lost
    except RuntimeError as wrapped:
        failure = storage_failure(wrapped)
    assert isinstance(failure, TemporaryError)
    assert str(failure).startswith("database unreachable, lost or locked (connection to server at")
    assert storage_failure(ValueError("bad params")) is None


def test_tracking_failures_name_the_server_or_the_upgrade() -> None:
    from mlflow.exceptions import MlflowException

    from training.tracking import tracking_failure

    refused = MlflowException(
        "API request to http://127.0.0.1:9/api/2.0/mlflow/experiments/search failed with exception "
        "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: /api/2.0/mlflow/"
        "experiments/search (Caused by NewConnectionError(': Failed to establish a new connection: "
        "[Errno 111] Connection refused'))"
    )
    assert isinstance(tracking_failure(refused), TemporaryError)
    assert str(tracking_failure(refused)) == (
        "tracking server unreachable at http://127.0.0.1:9/api/2.0/mlflow/experiments/search "
        "(connection refused, after MLflow's retries); check MLFLOW_TRACKING_URI and that `mlflow server` is up"
    )
    old = MlflowException(
        "Detected out-of-date database schema (found version abc, but expected def). Take a backup of "
        "your database, then run 'mlflow db upgrade <database_uri>' to migrate"
    )
    assert isinstance(tracking_failure(old), OperationalError)
    assert str(tracking_failure(old)) == (
        "Detected out-of-date database schema (found version abc, but expected def); "
        "back it up, then run `mlflow db upgrade <uri>`"
    )
    assert tracking_failure(MlflowException("RESOURCE_DOES_NOT_EXIST: no model")) is None
    assert tracking_failure(ValueError("x")) is None


def test_use_tracking_on_an_out_of_date_sqlite_store_says_upgrade(tmp_path: Path) -> None:
    from training.tracking import use_tracking

    db = tmp_path / "mlflow.db"
    use_tracking(f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '451aebb31d03'")  # MLflow 1.x's first revision
    old = tmp_path / "old.db"  # a new URI: MLflow caches the store (and its schema check) per URI
    shutil.copy(db, old)
    with pytest.raises(OperationalError, match=r"out-of-date database schema.*mlflow db upgrade"):
        use_tracking(f"sqlite:///{old}")


def test_the_cli_reports_a_storage_lost_mid_command_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    import sqlalchemy
    import sqlalchemy.exc
    import typer

    from flows.cli_common import reported

    engine = sqlalchemy.create_engine(f"postgresql+psycopg2://mmops@127.0.0.1:{dead_port()}/x")

    @reported
    def command() -> None:
        try:
            with engine.connect():
                pass
        except sqlalchemy.exc.OperationalError as exc:
            raise RuntimeError("a trial's report failed") from exc  # as Optuna re-raises it

    with pytest.raises(typer.Exit):
        command()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: study storage: database unreachable, lost or locked"
    )

    @reported
    def broken() -> None:
        raise KeyError("not a server's failure")

    with pytest.raises(KeyError):  # anything else is still a bug with its traceback
        broken()
