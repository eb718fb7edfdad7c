"""Scale-out on real servers: an Optuna study on PostgreSQL shared by three ``mmops tune``
processes (one killed mid-trial), an ``mlflow server`` on PostgreSQL serving the artifacts, and
the gate, an approval and ``mmops serve`` reaching the registry only through its URL.

Every process gets its locations from the environment (``MMOPS_OPTUNA_STORAGE``,
``MLFLOW_TRACKING_URI``), as on separate machines: no client opens the server's files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from budget import small_budget_params
from postgres import Postgres, free_port
from prefect_server import poll
from test_serving import TOKEN, running_server
from typer.testing import CliRunner

from flows.cli import app

MONTH = "BTCUSDT-1m-2026-03.zip"
NAME = "mmops-BTCUSDT-1m"
STUDY = f"{NAME}-sgd-regressor"
HEARTBEAT_S = 2
GRACE_S = 12  # 6 missed beats: a first trial loads numba's cache and sklearn under a loaded machine
TUNE_S = 600  # one tuner's limit on a loaded 2-core machine (start-up ~20 s, 2 trials, refit, evaluation)


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, source_data: Path, postgres: Postgres, tracking_server: str
) -> dict[str, Any]:
    """One real month ingested; a small budget, quick heartbeats, a gate that passes what trains."""
    from features.pipeline import ingest_source
    from flows.params import load_params

    home = tmp_path_factory.mktemp("scale-out")
    params = small_budget_params(home / "params.yaml")
    doc = yaml.safe_load(params.read_text())
    doc["tune"].update(heartbeat_s=HEARTBEAT_S, grace_s=GRACE_S, max_retry=1)
    # the gate's logic is tested elsewhere; here it must pass a 2-trial model so approval can follow
    doc["gate"].update(
        min_utility=-1e9, max_drawdown_pct=100.0, min_utility_over_quoter=-1e9, min_pnl_over_quoter=-1e9
    )
    doc["gate"].update(min_trades=0)
    params.write_text(yaml.safe_dump(doc, sort_keys=False))
    ingest_source(
        "binance-dump",
        source_data / "binance-spot-1m" / MONTH,
        store_root=home / "data" / "bars",
        quarantine_root=home / "data" / "quarantine",
        gx_root=None,
        validation=load_params(params).validation,
        now=pd.Timestamp.now(tz="UTC"),
    )
    env = {
        **{k: v for k, v in os.environ.items() if k != "MMOPS_ARTIFACT_ROOT"},
        "MMOPS_HOME": str(home),
        "MMOPS_PARAMS": str(params),
        "MMOPS_SOURCE_DATA": str(source_data),
        "MMOPS_OPTUNA_STORAGE": postgres.create_database("optuna"),
        "MLFLOW_TRACKING_URI": tracking_server,
    }
    return {"home": home, "env": env, "postgres": postgres, "tracking": tracking_server}


@pytest.fixture
def mmops(world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The CLI in this process, with the world's environment."""
    for key, value in world["env"].items():
        if key.startswith(("MMOPS_", "MLFLOW_")):
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("MMOPS_ARTIFACT_ROOT", raising=False)
    return CliRunner()


def tuner(env: dict[str, str], log: Path, trials: int = 2) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "flows", "tune", "--model", "sgd", "--trials", str(trials), "--json"]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=log.open("w"), text=True, start_new_session=True
    )


def finished(proc: subprocess.Popen[str], log: Path) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=TUNE_S)
    assert proc.returncode == 0, log.read_text()[-3000:]
    return dict(json.loads(out.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def tuned(world: dict[str, Any]) -> dict[str, Any]:
    """Three tuners on one study. The first is frozen (SIGSTOP) between two folds of a trial, so
    that trial's heartbeat stops at a known point; once it is stale the other two start, and while
    they tune the frozen one is killed with SIGKILL. Returns the study, the killed trial (as first
    seen) and the two others' results."""
    import optuna

    env, home = world["env"], world["home"]
    storage = optuna.storages.RDBStorage(env["MMOPS_OPTUNA_STORAGE"])  # a reader: no heartbeat of its own

    def trials(state: optuna.trial.TrialState) -> list[optuna.trial.FrozenTrial]:
        try:
            study = optuna.load_study(study_name=STUDY, storage=storage)
        except KeyError:  # not created yet
            return []
        return study.get_trials(deepcopy=False, states=(state,))

    victim = tuner(env, home / "tuner-0.log")
    others: list[subprocess.Popen[str]] = []
    try:
        # mid-trial: its parameters drawn and its first fold reported, the second fold still to run
        running = poll(
            lambda: [t for t in trials(optuna.trial.TrialState.RUNNING) if t.intermediate_values],
            timeout=TUNE_S,
            every=0.05,
            what="a trial that has reported its first fold",
        )
        os.kill(victim.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        assert victim.poll() is None, "the first tuner ended before it could be stopped mid-trial"
        killed = running[0]
        time.sleep(max(0.0, frozen_at + GRACE_S + 1 - time.monotonic()))  # stale by the others' first trial
        others += [tuner(env, home / f"tuner-{i}.log") for i in (1, 2)]
        poll(
            lambda: (
                any(t.number != killed.number for t in trials(optuna.trial.TrialState.RUNNING))
                or any(p.poll() is not None for p in others)
            ),
            timeout=TUNE_S,
            every=0.2,
            what="the other tuners' first trial",
        )
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.wait(timeout=30) == -signal.SIGKILL
        results = [finished(p, home / f"tuner-{i}.log") for i, p in zip((1, 2), others, strict=True)]
    finally:
        for proc in [victim, *others]:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
    return {
        "study": optuna.load_study(study_name=STUDY, storage=storage),
        "killed": killed,
        "results": results,
    }


@pytest.mark.e2e
def test_three_tuners_share_one_postgres_study_and_the_killed_ones_trial_is_retried(
    tuned: dict[str, Any], world: dict[str, Any]
) -> None:
    import optuna
    from mlflow.tracking import MlflowClient

    state = optuna.trial.TrialState
    study, killed = tuned["study"], tuned["killed"]
    by_number = {t.number: t for t in study.trials}
    assert len(by_number) == 5  # the killed trial and 2 + 2 of the others (one of them its retry)
    assert by_number[killed.number].state == state.FAIL  # failed by a survivor once its heartbeat was stale
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1, [t.system_attrs for t in study.trials]
    assert set(by_number[killed.number].intermediate_values) == {0}  # killed between its two folds
    assert retries[0].params == by_number[killed.number].params  # run again at the same point
    assert retries[0].state in (state.COMPLETE, state.PRUNED)
    others = [t for t in study.trials if t.number != killed.number]
    assert all(t.state in (state.COMPLETE, state.PRUNED) for t in others)  # none RUNNING or WAITING
    assert sorted(by_number) == list(range(5))

    # the registry: one version per tuner that finished, each from a finished run of this study;
    # the killed tuner registered nothing, and its parent run is the one left RUNNING
    client = MlflowClient(tracking_uri=world["tracking"], registry_uri=world["tracking"])
    versions = sorted(r["version"] for r in tuned["results"])
    assert versions == ["1", "2"]
    for number in versions:
        version = client.get_model_version(NAME, number)
        assert version.tags["mmops.study"] == STUDY and version.tags["lineage.bars_hash"]
        assert client.get_run(version.run_id).info.status == "FINISHED"
    experiment = client.get_experiment_by_name(f"{NAME}-regressor")
    assert experiment is not None and experiment.artifact_location.startswith("mlflow-artifacts:")
    parents = client.search_runs([experiment.experiment_id], filter_string=f"tags.`mmops.study` = '{STUDY}'")
    assert sorted(r.info.status for r in parents) == ["FINISHED", "FINISHED", "RUNNING"]
    nested = client.search_runs([experiment.experiment_id], filter_string="tags.`optuna.trial` != ''")
    assert sorted(int(r.data.tags["optuna.trial"]) for r in nested) == sorted(t.number for t in others)


@pytest.mark.e2e
def test_gate_approve_and_serve_the_champion_through_the_tracking_server(
    tuned: dict[str, Any], world: dict[str, Any], mmops: CliRunner, tmp_path: Path
) -> None:
    from serving.client import SignalClient

    gated = mmops.invoke(app, ["gate", "--version", "1", "--json"], catch_exceptions=False)
    assert gated.exit_code == 0, gated.output
    assert json.loads(gated.stdout.strip().splitlines()[-1])["passed"]
    approved = mmops.invoke(
        app, ["approve", "--version", "1", "--by", "tests", "--reason", "scale-out", "--json"]
    )
    assert approved.exit_code == 0, approved.output
    status = mmops.invoke(app, ["registry", "status", "--json"], catch_exceptions=False)
    assert json.loads(status.stdout.strip().splitlines()[-1])["aliases"] == {"champion": "1"}

    from mlflow.tracking import MlflowClient

    champion = MlflowClient(tracking_uri=world["tracking"]).get_model_version(NAME, "1")
    # another "machine": a home of its own, nothing but the tracking server's URL in common
    with (
        running_server(tmp_path, world["tracking"], serve={"model": NAME, "poll_interval_s": 0.5}) as server,
        SignalClient(server["base"], token=TOKEN, timeout_s=10.0) as client,
    ):
        info = client.info()
        assert (info.model, info.champion.version, info.champion.family) == (NAME, "1", "sgd")
        assert info.champion.lineage["lineage.bars_hash"] == champion.tags["lineage.bars_hash"]
        rng = np.random.default_rng(0)
        window = rng.normal(size=(info.window_rows, len(info.feature_names)))
        out = client.predict({"BTCUSDT": window}, feature_names=info.feature_names)
    assert [(s.version, s.alias) for s in out.signals] == [("1", "champion")]
    assert np.isfinite(out.signals[0].value)


def test_unreachable_servers_end_a_command_with_one_line(
    world: dict[str, Any], mmops: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = free_port()  # nothing listens there
    monkeypatch.setenv("MMOPS_OPTUNA_STORAGE", f"postgresql+psycopg2://mmops:secret@127.0.0.1:{dead}/optuna")
    result = mmops.invoke(app, ["tune", "--model", "sgd", "--trials", "1"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line, no traceback
    assert f"study storage postgresql+psycopg2://mmops:***@127.0.0.1:{dead}/optuna: database unreachable" in (
        result.stderr
    )
    assert "secret" not in result.stderr

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{dead}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's own backoff takes ~4 min
    result = mmops.invoke(app, ["registry", "status"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert f"tracking server unreachable at http://127.0.0.1:{dead}/api/2.0/mlflow" in result.stderr
