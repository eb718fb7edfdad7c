"""``mmops drift`` end to end: real bars in the store, a real champion in a real MLflow registry
(an SGD fitted on the real features of its training week), reports on disk and in MLflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.build import compute_features, make_labels
from features.config import FeaturesConfig
from features.store import BarStore
from flows.cli import app

NAME = "mmops-BTCUSDT-1m"
TRAIN = ("2026-03-02T00:00:00+00:00", "2026-03-08T23:59:00+00:00")


def mmops(*args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def register_champion(home: Path, bars: pd.DataFrame, *, alias: bool = True) -> str:
    from mlflow.tracking import MlflowClient

    from training import tracking
    from training.models import make_model

    features = compute_features(bars, FeaturesConfig()).loc[TRAIN[0] : TRAIN[1]].dropna()
    labels = make_labels(
        bars.set_index("timestamp", drop=False).loc[features.index].reset_index(drop=True), horizon=15
    )
    keep = labels["fwd_return"].notna().to_numpy()
    model = make_model("sgd", "regressor", max_iter=50)
    model.fit(
        features.to_numpy()[keep], labels["fwd_return"].to_numpy()[keep], feature_names=list(features.columns)
    )
    model_dir = model.save(home / "scratch" / "sgd")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    tracking.use_tracking(uri)
    experiment = tracking.ensure_experiment("mmops-tests", artifact_root=(home / "mlartifacts").as_uri())
    tags = {
        "mmops.family": "sgd",
        "mmops.task": "regressor",
        "mmops.symbol": "BTCUSDT",
        "mmops.interval": "1m",
        "mmops.venue": "binance",
        "mmops.train.start": TRAIN[0],
        "mmops.train.end": TRAIN[1],
    }
    with tracking.parent_run(experiment, run_name="sgd-test", tags={}):
        version = tracking.log_signal_model(
            model_dir, registered_name=NAME, tags=tags, metrics={"forward_mae": 1e-3}
        )
    if alias:
        MlflowClient(uri).set_registered_model_alias(NAME, "champion", version)
    return version


@pytest.fixture
def stored(home: Path, btc_bars: pd.DataFrame) -> pd.DataFrame:
    bars = btc_bars.loc[btc_bars["timestamp"] < pd.Timestamp("2026-03-13", tz="UTC")].reset_index(drop=True)
    BarStore(home / "data" / "bars").merge(bars)
    return bars


def test_drift_computes_saves_logs_and_reviews(home: Path, stored: pd.DataFrame) -> None:
    version = register_champion(home, stored)
    doc = json.loads(mmops("drift", "--series", "BTCUSDT-1m", "--json").stdout)
    assert doc["model_version"] == version and doc["source"] == "bars"
    assert doc["reference"]["start"] == TRAIN[0] and doc["reference"]["source"] == "tags"
    assert len(doc["windows"]) == 2 and doc["windows"][-1]["end"] == "2026-03-12T23:59:00+00:00"
    assert doc["prediction"] is not None and doc["event"]["resource"] == "mmops.monitor.BTCUSDT-1m"
    assert Path(doc["report"]).is_file() and Path(doc["snapshot"]).is_file()
    human = mmops("drift").stdout
    assert human.startswith(f"BTCUSDT-1m v{version}: ") and "report: " in human
    reviewed = json.loads(mmops("drift", "review", "--json").stdout)["reports"]
    assert len(reviewed) == 2 and {r["version"] for r in reviewed} == {version}
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"{NAME}-monitoring")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2 and {r.data.tags["mmops.model_version"] for r in runs} == {version}
    assert "drift_share" in runs[0].data.metrics


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--series", "ETHUSDT-1m"], "unknown series 'ETHUSDT-1m'"),
        (["--window", "100"], "100 bars is under monitor.min_window_bars"),
        (["--window", "soon"], "give bars (1440) or a duration"),
        (["--end", "2026-03-01 06:00"], "current window holds"),
    ],
    ids=["unknown-series", "window-too-small", "bad-window", "empty-window"],
)
def test_bad_input_is_one_line(home: Path, stored: pd.DataFrame, args: list[str], message: str) -> None:
    register_champion(home, stored)
    result = mmops("drift", *args, code=1)
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 2  # one line (a long one may wrap once)


def test_no_champion_is_one_line(home: Path, stored: pd.DataFrame) -> None:
    register_champion(home, stored, alias=False)
    result = mmops("drift", code=1)
    assert "has no @champion" in result.output and "Traceback" not in result.output
