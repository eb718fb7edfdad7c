"""``mmops train | tune | evaluate`` on real BTCUSDT 1m data, with a small budget.

What a reviewer needs from a training run: the Optuna study with its trials, an MLflow parent
run per study with a nested run per trial, metrics and artifacts, and a registered version with
lineage tags. Two tuning processes on one SQLite study must end with the union of their trials.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from budget import small_budget_params
from typer.testing import CliRunner

from flows.cli import app

REPO = Path(__file__).resolve().parents[2]
MONTH = "BTCUSDT-1m-2026-03.zip"


@pytest.fixture(scope="module")
def train_home(tmp_path_factory: pytest.TempPathFactory, source_data: Path) -> Path:
    """One real month ingested; params with a small budget."""
    from features.pipeline import ingest_source
    from flows.params import load_params

    home = tmp_path_factory.mktemp("train")
    params = small_budget_params(home / "params.yaml")
    ingest_source(
        "binance-dump",
        source_data / "binance-spot-1m" / MONTH,
        store_root=home / "data" / "bars",
        quarantine_root=home / "data" / "quarantine",
        gx_root=None,
        validation=load_params(params).validation,
        now=pd.Timestamp.now(tz="UTC"),
    )
    return home


@pytest.fixture
def mmops(train_home: Path, monkeypatch: pytest.MonkeyPatch, source_data: Path) -> CliRunner:
    for key in ("MLFLOW_TRACKING_URI", "MMOPS_OPTUNA_STORAGE", "MMOPS_ARTIFACT_ROOT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MMOPS_HOME", str(train_home))
    monkeypatch.setenv("MMOPS_SOURCE_DATA", str(source_data))
    monkeypatch.setenv("MMOPS_PARAMS", str(train_home / "params.yaml"))
    return CliRunner()


def run_json(runner: CliRunner, *args: str) -> dict[str, Any]:
    result = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.e2e
def test_train_leaves_study_runs_artifacts_and_a_registered_version(
    mmops: CliRunner, train_home: Path, tmp_path: Path
) -> None:
    import mlflow
    import optuna
    from mlflow.tracking import MlflowClient

    result = run_json(mmops, "train", "--families", "sgd,lstm")
    assert result["registered_model"] == "mmops-BTCUSDT-1m"
    assert result["version"] == "1"
    assert {c["family"] for c in result["candidates"]} == {"sgd", "lstm"}

    for family in ("sgd", "lstm"):
        study = optuna.load_study(
            study_name=f"mmops-BTCUSDT-1m-{family}-regressor", storage=f"sqlite:///{train_home / 'optuna.db'}"
        )
        assert len(study.trials) == 2

    mlflow.set_tracking_uri(f"sqlite:///{train_home / 'mlflow.db'}")
    client = MlflowClient()
    experiment = client.get_experiment_by_name("mmops-BTCUSDT-1m-regressor")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 2
    assert len(children) == 4
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {p.info.run_id for p in parents}
    assert all("fold_score" in c.data.metrics for c in children)

    version = client.get_model_version("mmops-BTCUSDT-1m", "1")
    for tag in (
        "lineage.git_commit",
        "lineage.dvc_data_hash",
        "lineage.params_hash",
        "lineage.packages",
        "lineage.bars_hash",
        "mmops.family",
        "mmops.task",
        "mmops.symbol",
        "mmops.train.start",  # the refit's window: drift monitoring's reference
        "mmops.train.end",
        "mmops.train.rows",
    ):
        assert version.tags.get(tag), tag
    assert version.tags["mmops.train.start"] < version.tags["mmops.train.end"]
    # Models-from-code: the logged model is source plus the artifact directory, nothing to unpickle,
    # and mlflow.pyfunc gives the same signals as the ONNX Predictor that serving runs.
    from training.artifact import load_predictor
    from training.tracking import download_model

    model_dir, _ = download_model("models:/mmops-BTCUSDT-1m/1", dest=tmp_path)
    logged = model_dir.parents[1]
    flavor = yaml.safe_load((logged / "MLmodel").read_text())["flavors"]["python_function"]
    assert flavor.get("model_code_path") and not list(logged.rglob("*.pkl"))
    predictor = load_predictor(model_dir)
    names = list(predictor.info.feature_names)
    rows = np.random.default_rng(5).standard_normal((20, len(names))).astype(np.float32)
    frame = pd.DataFrame(rows, columns=names)  # the signature is float32, as the model takes
    np.testing.assert_array_equal(
        mlflow.pyfunc.load_model("models:/mmops-BTCUSDT-1m/1").predict(frame),
        predictor.predict_frame(rows),
    )
    chosen = client.get_run(version.run_id)
    for metric in (
        "backtest_sharpe",
        "forward_sharpe",
        "forward_as_sharpe",
        "forward_mae",
        "forward_sharpe_diff_lo",
        "forward_utility",
        "forward_as_utility",
        "forward_pnl_diff_lo",
        "forward_utility_diff_hi",
        "forward_skill",
        "forward_mae_ratio",
        "forward_accuracy_lo",
        "forward_majority_accuracy",
    ):
        assert metric in chosen.data.metrics, metric
    artifacts = {
        a.path
        for folder in ("plots", "tables", "importance")
        for a in client.list_artifacts(chosen.info.run_id, folder)
    }
    assert {
        "plots/equity.png",
        "tables/trials_folds.csv",
        "tables/split_plan.json",
        "importance/permutation_importance.csv",
    } <= artifacts

    # evaluate reproduces the forward-window figures through the registry and the ONNX fast path
    evaluated = run_json(
        mmops, "evaluate", "--model-uri", "models:/mmops-BTCUSDT-1m/1", "--window", "forward"
    )
    # The same float64 computation on the same rows, once in tuning and once through the registry:
    # only the metric's trip through MLflow's store could round it, and 1e-9 is far above that.
    assert evaluated["metrics"]["sharpe"] == pytest.approx(chosen.data.metrics["forward_sharpe"], rel=1e-9)
    assert evaluated["metrics"]["mae"] == pytest.approx(chosen.data.metrics["forward_mae"], rel=1e-9)
    assert evaluated["metrics"]["utility"] == pytest.approx(chosen.data.metrics["forward_utility"], rel=1e-9)


@pytest.mark.e2e
def test_evaluate_on_a_raw_dump_never_writes_the_store(
    mmops: CliRunner, train_home: Path, source_data: Path
) -> None:
    run_json(mmops, "tune", "--model", "sgd", "--trials", "1")
    manifest_before = sorted(p.read_bytes() for p in (train_home / "data" / "bars").rglob("_manifest.json"))
    april = source_data / "binance-spot-1m" / "BTCUSDT-1m-2026-04.zip"
    result = run_json(mmops, "evaluate", "--model-uri", "models:/mmops-BTCUSDT-1m/1", "--data", str(april))
    assert result["metrics"]["labelled_rows"] > 40_000
    assert {"bh_pnl_pct", "lf_sharpe", "as_sharpe", "sharpe_diff"} <= set(result["metrics"])
    assert (
        sorted(p.read_bytes() for p in (train_home / "data" / "bars").rglob("_manifest.json"))
        == manifest_before
    )
    bad = mmops.invoke(
        app, ["evaluate", "--model-uri", "models:/mmops-BTCUSDT-1m@nope", "--window", "forward"]
    )
    assert bad.exit_code == 1
    assert "cannot load the model" in bad.stderr


@pytest.mark.e2e
def test_two_tune_processes_share_one_sqlite_study(
    train_home: Path, tmp_path: Path, source_data: Path
) -> None:
    env = {
        **os.environ,
        "MMOPS_HOME": str(train_home),
        "MMOPS_PARAMS": str(train_home / "params.yaml"),
        "MMOPS_SOURCE_DATA": str(source_data),
        "MMOPS_OPTUNA_STORAGE": f"sqlite:///{tmp_path / 'shared.db'}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    cmd = [sys.executable, "-m", "flows", "tune", "--model", "sgd", "--trials", "3", "--json"]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (out, errors) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, errors[-2000:]
        assert json.loads(out.strip().splitlines()[-1])["registered_model"] == "mmops-BTCUSDT-1m"
    import optuna

    study = optuna.load_study(
        study_name="mmops-BTCUSDT-1m-sgd-regressor", storage=f"sqlite:///{tmp_path / 'shared.db'}"
    )
    assert len(study.trials) == 6
    assert sorted(t.number for t in study.trials) == list(range(6))  # the union, numbered once each
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    assert all(t.state in finished for t in study.trials)  # none failed or left running
    versions = sorted(json.loads(out.strip().splitlines()[-1])["version"] for out, _ in outputs)
    assert len(set(versions)) == 2  # each process registered its own version


@pytest.mark.e2e
def test_retrain_flow_registers_and_gates_under_prefect(
    mmops: CliRunner, train_home: Path, prefect_harness: None
) -> None:
    from flows.retrain import retrain_flow

    result = retrain_flow(families=["sgd"], trials=1)
    assert result["version"]
    assert result["gate"]["version"] == result["version"]
    assert isinstance(result["gate"]["passed"], bool)
    assert Path(result["gate"]["report"]).is_file()
    status = run_json(mmops, "registry", "status")
    assert result["version"] in json.dumps(status)  # the registry lists the new version
    # the gate command, with the real evaluator, reaches the same verdict as the flow
    gated = mmops.invoke(app, ["gate", "--version", result["version"], "--json"])
    assert gated.exit_code == (0 if result["gate"]["passed"] else 1), gated.output
    assert json.loads(gated.stdout.strip().splitlines()[-1])["passed"] == result["gate"]["passed"]
