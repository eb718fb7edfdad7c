"""The protocol table: one row per family x task x hold-out window, baselines beside each model.

Hand-computed float64 values are compared with ``pytest.approx``'s default (relative 1e-6): the
round-off of these few operations is ~1e-15, so the default only absorbs the rounding of the
decimal constants written here, and a wrong formula or a missed fee is off by far more.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from features.config import FeaturesConfig
from trading.config import BacktestConfig, QuoteConfig, RiskConfig
from training.config import EvaluateConfig, FamilyConfig, ModelsConfig, SplitConfig, TuneConfig
from training.pipeline import Candidate, TrackingSettings, prepare_job
from training.protocol import COLUMNS, protocol_jobs, protocol_table, run_protocol, to_markdown


def _candidate(family: str, sharpe: float) -> Candidate:
    metrics = {
        f"{w}_{k}": v
        for w in ("backtest", "forward")
        for k, v in {
            "mae": 0.012,
            "sharpe": sharpe,
            "bh_pnl_pct": 16.7,
            "sharpe_diff": 0.5,
            "sharpe_diff_lo": -1.0,
            "sharpe_diff_hi": 2.0,
        }.items()
    }
    return Candidate(
        family=family,
        task="regressor",
        study="s",
        run_id="r",
        model_dir=Path("m"),
        metrics=metrics,
        best_params={},
        trials=3,
        best_value=0.0,
    )


def test_table_has_a_row_per_window_and_renders_missing_metrics_as_a_dash() -> None:
    table = protocol_table([_candidate("rf", 1.5), _candidate("sgd", math.nan)])
    assert list(table.columns) == list(COLUMNS)
    assert list(zip(table["family"], table["window"], strict=True)) == [
        ("rf", "backtest"),
        ("rf", "forward"),
        ("sgd", "backtest"),
        ("sgd", "forward"),
    ]
    assert math.isnan(table.loc[0, "rmse"])  # not in the metrics: NaN, never a sentinel
    lines = to_markdown(table).splitlines()
    assert len(lines) == 2 + 4
    assert "| rf | regressor | backtest | 0.012 | – |" in lines[2]
    assert "0.50 [-1.00, 2.00]" in lines[2] and "| 1.50 |" in lines[2]
    assert "| – |" in lines[4]  # sgd's undefined Sharpe


def test_protocol_on_kraken_daily_tunes_each_family_and_registers_nothing(
    source_data: Path, tmp_path: Path
) -> None:
    import mlflow

    from features.sources.files import read_file

    bars = read_file(source_data / "kraken-daily" / "XBTUSD_1440.csv", preset="kraken")
    bars = bars.loc[bars["timestamp"] >= pd.Timestamp("2020-01-01", tz="UTC")].reset_index(drop=True)
    split = SplitConfig()
    split = split.model_copy(
        update={"profiles": {"daily": split.profiles["daily"].model_copy(update={"n_folds": 2})}}
    )
    models = ModelsConfig(rf=FamilyConfig(fixed={"n_estimators": 10, "max_depth": 3, "n_jobs": 1}))
    tune = TuneConfig(objective="loss", trials=1, n_startup_trials=1)
    base = prepare_job(
        bars,
        family="rf",
        task="regressor",
        features=FeaturesConfig(),
        split=split,
        tune=tune,
        models=models,
        quote=QuoteConfig(),
        risk=RiskConfig(),
        backtest=BacktestConfig(),
        evaluate=EvaluateConfig(),
    )
    assert not any(
        name.startswith("ofi_") for name in base.dataset.feature_names
    )  # Kraken has no taker volume
    jobs = protocol_jobs(base, models, families=["rf", "sgd"], tasks=["regressor"])
    settings = TrackingSettings(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifact_root=(tmp_path / "art").as_uri(),
        optuna_storage=f"sqlite:///{tmp_path / 'optuna.db'}",
        scratch=tmp_path / "models",
        repo=tmp_path,
        dvc_data_hash="none",
        params_doc={},
    )
    table = run_protocol(
        jobs,
        settings,
        trials=1,
        timeout_s=None,
        evaluate=EvaluateConfig(bootstrap_samples=100, importance_rows=100),
    )
    assert table.shape == (4, len(COLUMNS))
    assert set(table["family"]) == {"rf", "sgd"} and (table["trials"] == 1).all()
    assert (table["mae"] > 0).all() and (table["rmse"] >= table["mae"]).all()
    by_window = table.groupby("window")["bh_pnl_pct"].nunique()
    assert (by_window == 1).all()  # the same baseline beside every model of a window
    close = bars.set_index("timestamp")["close"]
    first, last = (close[pd.Timestamp(d, tz="UTC")] for d in ("2023-08-01", "2023-10-31"))
    forward_bh = table.loc[table["window"] == "forward", "bh_pnl_pct"].iloc[0]
    assert forward_bh == pytest.approx((last / first - 1) * 100)
    client = mlflow.MlflowClient(settings.tracking_uri)
    assert client.search_registered_models() == []
    with pytest.raises(ValueError, match="unknown model family"):
        protocol_jobs(base, models, families=["xgb"], tasks=["regressor"])
