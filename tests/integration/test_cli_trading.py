"""``mmops backtest`` and ``mmops simulate`` in-process (typer's CliRunner) on one real month."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app

MONTH = "BTCUSDT-1m-2026-03.zip"


@pytest.fixture(scope="module")
def store_home(tmp_path_factory: pytest.TempPathFactory, source_data: Path) -> Path:
    """An MMOPS_HOME with March 2026 BTCUSDT 1m ingested once for the module."""
    from features.pipeline import ingest_source
    from flows.params import load_params
    from flows.settings import REPO_ROOT

    home = tmp_path_factory.mktemp("home")
    ingest_source(
        "binance-dump",
        source_data / "binance-spot-1m" / MONTH,
        store_root=home / "data" / "bars",
        quarantine_root=home / "data" / "quarantine",
        gx_root=None,
        validation=load_params(REPO_ROOT / "params.yaml").validation,
        now=pd.Timestamp.now(tz="UTC"),
    )
    return home


@pytest.fixture
def mmops(store_home: Path, monkeypatch: pytest.MonkeyPatch, source_data: Path) -> CliRunner:
    from flows.settings import REPO_ROOT

    monkeypatch.setenv("MMOPS_HOME", str(store_home))
    monkeypatch.setenv("MMOPS_SOURCE_DATA", str(source_data))
    monkeypatch.setenv("MMOPS_PARAMS", str(REPO_ROOT / "params.yaml"))
    return CliRunner()


def test_backtest_as_writes_all_outputs(mmops: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "bt"
    args = [
        "backtest",
        "--strategy",
        "as",
        "--symbol",
        "BTCUSDT",
        "--end",
        "2026-03-10T23:59",
        "--out",
        str(out),
    ]
    res = mmops.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.stderr
    payload = json.loads(res.stdout)
    assert payload["series"] == "binance:BTCUSDT:1m"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["bars"] == 10 * 1440
    assert metrics == payload["metrics"]
    equity = pd.read_parquet(out / "equity.parquet")
    trades = pd.read_parquet(out / "trades.parquet")
    assert {"cash", "inventory", "mark", "equity"} <= set(equity.columns)
    assert len(equity) == metrics["bars"]
    # The engine books equity from its own cash and position each bar, so the identity holds to one
    # float64 rounding at $1e5 (~2e-11); 1e-6 dollars is still below the smallest fee a bug could drop.
    np.testing.assert_allclose(
        equity["cash"] + equity["position"] * equity["mark"], equity["equity"], rtol=0, atol=1e-6
    )
    assert "fee" in trades.columns and len(trades) == metrics["n_trades"] > 0
    assert trades["fee"].sum() == pytest.approx(metrics["fees"])
    assert (out / "equity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_backtest_model_uses_signals_and_rejects_bad_input(mmops: CliRunner, tmp_path: Path) -> None:
    base = ["backtest", "--symbol", "BTCUSDT", "--start", "2026-03-02", "--end", "2026-03-02T23:59"]
    ts = pd.date_range("2026-03-02", periods=1440, freq="1min", tz="UTC")
    signals = tmp_path / "signals.parquet"
    pd.DataFrame({"timestamp": ts, "pred_return": 2e-4}).to_parquet(signals)
    good = mmops.invoke(
        app, [*base, "--strategy", "model", "--signals", str(signals), "--out", str(tmp_path / "m"), "--json"]
    )
    assert good.exit_code == 0, good.stderr
    plain = mmops.invoke(app, [*base, "--strategy", "as", "--out", str(tmp_path / "a"), "--json"])
    bid_model = pd.read_parquet(tmp_path / "m" / "equity.parquet")["bid"].iloc[5:].mean()
    bid_plain = pd.read_parquet(tmp_path / "a" / "equity.parquet")["bid"].iloc[5:].mean()
    assert plain.exit_code == 0 and bid_model > bid_plain  # a positive prediction shifts quotes up

    garbage = tmp_path / "garbage.parquet"
    garbage.write_text("not parquet")
    cases = {
        "needs --signals": [*base, "--strategy", "model"],
        "DOGEUSDT": ["backtest", "--symbol", "DOGEUSDT"],
        "not a readable Parquet": [*base, "--strategy", "model", "--signals", str(garbage)],
        "file not found": [*base, "--strategy", "model", "--signals", str(tmp_path / "missing.parquet")],
        "'as' or 'model'": [*base, "--strategy", "lstm"],
        "--start": ["backtest", "--symbol", "BTCUSDT", "--start", "yesterday-ish"],
    }
    for reason, args in cases.items():
        res = mmops.invoke(app, [*args, "--out", str(tmp_path / "x")])
        assert res.exit_code == 1, (reason, res.stdout, res.stderr)
        assert reason in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert res.stdout == ""


def test_simulate_prints_both_strategies(mmops: CliRunner) -> None:
    res = mmops.invoke(app, ["simulate", "--gamma", "0.1", "--paths", "200", "--seed", "3", "--json"])
    assert res.exit_code == 0, res.stderr
    payload = json.loads(res.stdout)
    keys = {"mean_profit", "std_profit", "mean_final_q", "std_final_q", "mean_spread"}
    for name in ("inventory", "symmetric"):
        assert keys <= set(payload[name])
    assert payload["inventory"]["std_final_q"] < payload["symmetric"]["std_final_q"]
    assert mmops.invoke(app, ["simulate", "--gamma", "0"]).exit_code == 1


def test_calibrate_reports_fit_and_bar_vs_tick(mmops: CliRunner, source_data: Path, tmp_path: Path) -> None:
    capture = source_data / "ticks" / "spot_ethusdt_20240808.gz"
    res = mmops.invoke(
        app,
        [
            "calibrate",
            "--ticks",
            str(capture),
            "--out",
            str(tmp_path),
            "--delta",
            "1",
            "--delta",
            "100",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.stderr
    (cal,) = json.loads(res.stdout)["instruments"].values()
    assert cal["symbol"] == "ETHUSDT" and cal["fits"]["mid"]["kappa_per_tick"] > 0
    assert cal["bar_vs_tick"]["delta_ticks"] == [1, 100]
    assert json.loads((tmp_path / "calibration.json").read_text())["instruments"].keys() == {"spot_ethusdt"}
    assert (tmp_path / "intensity.png").exists()
    bad = mmops.invoke(app, ["calibrate", "--ticks", str(tmp_path / "nothing-here")])
    assert bad.exit_code == 1 and "no such file" in bad.stderr
