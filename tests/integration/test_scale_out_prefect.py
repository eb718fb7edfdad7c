"""The ``nightly`` deployment run by a ``prefect worker`` against a ``prefect server`` (not the
temporary one), its study on PostgreSQL and its results in the MLflow tracking server: the
worker's environment is the whole configuration (docs/scale-out.md).

The daily Kraken series alone keeps the run short (a few thousand bars, one SGD trial); the
session's tracking server is shared with test_scale_out.py, whose model is the minute series.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from budget import small_budget_params
from postgres import Postgres
from prefect_server import POOL, REPO, deployments, get, post, prefect

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
NAME = "mmops-XBTUSD-1d"


def test_the_nightly_deployment_on_a_worker_writes_to_the_servers(
    prefect_api: dict[str, str], postgres: Postgres, tracking_server: str, tmp_path: Path, source_data: Path
) -> None:
    import optuna
    from mlflow.tracking import MlflowClient

    params = small_budget_params(tmp_path / "params.yaml")
    doc = yaml.safe_load(params.read_text())
    doc["data"]["datasets"] = [d for d in doc["data"]["datasets"] if d["interval"] == "1d"]
    params.write_text(yaml.safe_dump(doc, sort_keys=False))
    storage = postgres.create_database("nightly")
    env = {
        **{k: v for k, v in prefect_api.items() if k != "MMOPS_ARTIFACT_ROOT"},
        "MMOPS_REPO": str(REPO),
        "MMOPS_HOME": str(tmp_path),
        "MMOPS_PARAMS": str(params),
        "MMOPS_SOURCE_DATA": str(source_data),
        "MMOPS_OPTUNA_STORAGE": storage,
        "MLFLOW_TRACKING_URI": tracking_server,
    }
    prefect(env, "work-pool", "create", POOL, "--type", "process")
    prefect(env, "deploy", "--name", "nightly")
    nightly = deployments(env)["nightly"]
    body = {"parameters": {"families": ["sgd"], "trials": 1}}
    run = post(env, f"/deployments/{nightly['id']}/create_flow_run", body)
    prefect(env, "worker", "start", "--pool", POOL, "--run-once", timeout=600)
    state = get(env, f"/flow_runs/{run['id']}")["state"]
    assert state["type"] == "COMPLETED", state

    client = MlflowClient(tracking_uri=tracking_server, registry_uri=tracking_server)
    (version,) = client.search_model_versions(f"name='{NAME}'")
    assert version.tags["mmops.family"] == "sgd" and version.tags["mmops.retrain.mode"] == "standard"
    assert version.tags["mmops.gate.verdict"] in ("passed", "failed")  # gated, whatever one trial earns
    assert client.get_run(version.run_id).info.artifact_uri.startswith("mlflow-artifacts:/")
    assert version.tags["mmops.gate.report"].startswith(f"runs:/{version.run_id}/gate/")
    study = optuna.load_study(study_name=f"{NAME}-sgd-regressor", storage=storage)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]
