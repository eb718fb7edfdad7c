"""``mmops tune --model as`` then a family on real BTCUSDT 1m data: the tuned model-free quoter's
settings are recorded (JSON, MLflow params and tags), and the family's version is compared with
that quoter (``tas_``), in tuning and again through the registry (``mmops evaluate``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from budget import small_budget_params
from typer.testing import CliRunner

from flows.cli import app

MONTH = "BTCUSDT-1m-2026-03.zip"


@pytest.fixture
def mmops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source_data: Path) -> CliRunner:
    from features.pipeline import ingest_source
    from flows.params import load_params

    params = small_budget_params(tmp_path / "params.yaml")
    ingest_source(
        "binance-dump",
        source_data / "binance-spot-1m" / MONTH,
        store_root=tmp_path / "data" / "bars",
        quarantine_root=tmp_path / "data" / "quarantine",
        gx_root=None,
        validation=load_params(params).validation,
        now=pd.Timestamp.now(tz="UTC"),
    )
    for key in ("MLFLOW_TRACKING_URI", "MMOPS_OPTUNA_STORAGE", "MMOPS_ARTIFACT_ROOT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MMOPS_HOME", str(tmp_path))
    monkeypatch.setenv("MMOPS_SOURCE_DATA", str(source_data))
    monkeypatch.setenv("MMOPS_PARAMS", str(params))
    return CliRunner()


def run_json(runner: CliRunner, *args: str) -> dict[str, Any]:
    result = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.e2e
def test_a_family_is_compared_with_the_tuned_quoter(mmops: CliRunner, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    calibration = tmp_path / "calibration.json"
    calibration.write_text(
        json.dumps({"instruments": {"spot": {"fits": {"mid": {"kappa_per_price": 0.08}}}}})
    )
    quoter = run_json(
        mmops,
        "tune",
        "--model",
        "as",
        "--trials",
        "3",
        "--calibration",
        str(calibration),
        "--out",
        str(tmp_path / "q"),
    )
    assert quoter["study"] == "mmops-BTCUSDT-1m-as-quoter" and quoter["trials"] == 3
    saved = json.loads((tmp_path / "q" / "best_settings.json").read_text())
    assert saved["settings"] == quoter["best_settings"]
    assert set(saved["settings"]) == {"kappa", "gamma", "min_half_spread_bps", "order_lots", "refresh_bars"}
    for window in ("backtest", "forward"):
        assert f"{window}_tas_over_as_pnl_diff_pct" in quoter["metrics"]

    import optuna

    study = optuna.load_study(study_name=quoter["study"], storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    kappas = [t.params["quote.kappa"] for t in study.trials]
    # params.yaml's kappa, tune.quote_starts' calibrated one, then the --calibration file's
    assert kappas == pytest.approx([5e-4, 3.3e-4, 8e-4], rel=1e-12)

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(quoter["run_id"])
    assert float(run.data.params["quote.kappa"]) == pytest.approx(saved["settings"]["kappa"])
    assert run.data.tags["mmops.tas.kappa"] == repr(saved["settings"]["kappa"])

    family = run_json(mmops, "tune", "--model", "sgd", "--trials", "1")
    version = client.get_model_version("mmops-BTCUSDT-1m", family["version"])
    assert version.tags["mmops.tas_study"] == quoter["study"]
    assert version.tags["mmops.tas.order_lots"] == repr(saved["settings"]["order_lots"])
    logged = client.get_run(version.run_id).data.metrics
    # the tuned quoter scores the same on the forward window in its own study and beside the model
    assert logged["forward_tas_pnl_pct"] == pytest.approx(quoter["metrics"]["forward_tas_pnl_pct"], rel=1e-9)
    evaluated = run_json(
        mmops,
        "evaluate",
        "--model-uri",
        f"models:/mmops-BTCUSDT-1m/{family['version']}",
        "--window",
        "forward",
    )
    # the same float64 computation on the same rows; only MLflow's store could round it
    assert evaluated["metrics"]["tas_pnl_pct"] == pytest.approx(logged["forward_tas_pnl_pct"], rel=1e-9)
    assert evaluated["metrics"]["tas_sharpe_diff"] == pytest.approx(
        logged["forward_tas_sharpe_diff"], rel=1e-9
    )
