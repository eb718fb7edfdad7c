"""``mmops backtest`` and ``mmops simulate`` in-process (typer's CliRunner) on one real month."""

from __future__ import annotations

import json
import socket
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


WINDOW = ["--start", "2026-03-10", "--end", "2026-03-10T08:00"]


def test_trade_paper_replay_equals_mmops_backtest_and_resumes(mmops: CliRunner, tmp_path: Path) -> None:
    import sqlite3

    journal = tmp_path / "j.db"
    run = mmops.invoke(
        app,
        ["trade", "--replay", "store", "--symbols", "BTCUSDT", *WINDOW, "--journal", str(journal), "--json"],
    )
    assert run.exit_code == 0, run.output
    doc = json.loads(run.stdout)
    assert doc["finished"] and doc["ticks_total"] == 481 and doc["model"] == "model-free"
    bt = mmops.invoke(
        app, ["backtest", "--symbol", "BTCUSDT", *WINDOW, "--out", str(tmp_path / "bt"), "--json"]
    )
    assert bt.exit_code == 0, bt.output
    trades = pd.read_parquet(tmp_path / "bt" / "trades.parquet")
    with sqlite3.connect(journal) as db:
        fills = db.execute("select ts_ns, side, price_ticks, lots, fee from fills order by seq").fetchall()
    expected = [
        (t.value, 1 if side == "buy" else -1, round(price / 0.01), lots, fee)
        for t, side, price, lots, fee in trades[["timestamp", "side", "price", "lots", "fee"]].itertuples(
            index=False
        )
    ]
    assert fills == expected and len(fills) > 50
    assert doc["final_equity"]["live"] == json.loads(bt.stdout)["metrics"]["final_equity"]
    again = mmops.invoke(
        app, ["trade", "--replay", "store", "--symbols", "BTCUSDT", *WINDOW, "--journal", str(journal)]
    )
    assert again.exit_code == 0 and "481/481 ticks" in again.stdout and "model-free" in again.stdout
    status = mmops.invoke(app, ["trade", "status", "--journal", str(journal), "--json"])
    assert json.loads(status.stdout)["phase"] == "finished"


def test_trade_kill_and_resume_through_the_journal(mmops: CliRunner, tmp_path: Path) -> None:
    journal = tmp_path / "j.db"
    base = ["trade", "--replay", "store", "--symbols", "BTCUSDT", *WINDOW, "--journal", str(journal)]
    assert mmops.invoke(app, [*base, "--max-ticks", "100"]).exit_code == 0
    kill = mmops.invoke(app, ["trade", "kill", "--journal", str(journal), "--by", "ops", "--reason", "drill"])
    assert kill.exit_code == 0 and "kill switch ON" in kill.stdout
    halted = mmops.invoke(app, [*base, "--max-ticks", "50", "--json"])
    state = json.loads(halted.stdout)["status"]["books"]["live"]["BTCUSDT"]
    assert state["status"] == "HALTED" and "kill_switch" in state["reasons"] and state["inventory_lots"] == 0
    status = mmops.invoke(app, ["trade", "status", "--journal", str(journal)])
    assert "kill switch ON" in status.stdout and "kill switch pressed" in status.stdout
    refused = mmops.invoke(app, ["trade", "resume", "--journal", str(journal), "--by", " ", "--reason", "x"])
    assert refused.exit_code == 1 and "--by and --reason must not be empty" in refused.output
    resumed = mmops.invoke(
        app, ["trade", "resume", "--journal", str(journal), "--by", "ops", "--reason", "over"]
    )
    assert resumed.exit_code == 0
    done = mmops.invoke(app, [*base, "--json"])
    assert json.loads(done.stdout)["status"]["books"]["live"]["BTCUSDT"]["status"] != "HALTED"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--venue", "kraken", "--symbols", "BTCUSDT"], "--venue 'kraken': paper or ccxt"),
        (["--venue", "ccxt", "--symbols", "BTC/USDT"], "a live run needs --exchange"),
        (["--venue", "ccxt", "--exchange", "nope", "--symbols", "BTC/USDT"], "unknown ccxt exchange 'nope'"),
        (
            ["--venue", "ccxt", "--exchange", "binance", "--symbols", "BTC/USDT"],
            "set MMOPS_BINANCE_API_KEY and MMOPS_BINANCE_SECRET",
        ),
        (["--replay", "live", "--exchange", "kraken", "--sandbox", "--symbols", "BTC/USD"], "no sandbox"),
        (
            ["--venue", "ccxt", "--exchange", "binance", "--replay", "store", "--symbols", "BTC/USDT"],
            "does not apply",
        ),
        (
            ["--replay", "live", "--exchange", "binance", "--speed", "10", "--symbols", "BTC/USDT"],
            "exchange's pace",
        ),
        (["--exchange", "binance", "--symbols", "BTCUSDT"], "--exchange and --sandbox are for live runs"),
        (["--symbols", "BTCUSDT", "--speed", "0"], "--speed '0': must be > 0"),
        (["--symbols", "BTCUSDT", "--speed", "fast"], "--speed 'fast': 'max' or a number"),
        ([], "--symbols is required"),
        (["--symbols", "BTCUSDT,BTCUSDT"], "names a symbol twice"),
        (["--symbols", "DOGEUSDT"], "no DOGEUSDT 1m bars in"),
        (["--symbols", "BTCUSDT", "--start", "yesterday-ish"], "--start 'yesterday-ish': not a timestamp"),
        (["--symbols", "BTCUSDT", "--start", "2030-01-01"], "0 bars between 2030-01-01"),
        (["--symbols", "BTCUSDT", "--replay", "/nonexistent/file.csv"], "no such file or folder"),
    ],
)
def test_trade_refuses_bad_options_in_one_line(
    mmops: CliRunner, args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MMOPS_BINANCE_API_KEY", raising=False)
    result = mmops.invoke(app, ["trade", *args, "--journal", str(tmp_path / "j.db")])
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output


def test_trade_controls_need_an_existing_journal(mmops: CliRunner, tmp_path: Path) -> None:
    for cmd in (["status"], ["kill"], ["resume", "--by", "a", "--reason", "b"]):
        result = mmops.invoke(app, ["trade", *cmd, "--journal", str(tmp_path / "none.db")])
        assert result.exit_code == 1 and "no journal here" in result.output
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not sqlite at all" * 100)
    result = mmops.invoke(app, ["trade", "status", "--journal", str(garbage)])
    assert result.exit_code == 1 and "not a journal this worker can open" in result.output
    import sqlite3

    foreign = tmp_path / "other.db"  # a real SQLite file of another program: nothing may be written to it
    with sqlite3.connect(foreign) as db:
        db.execute("create table orders (id integer primary key, book text)")
    before = foreign.read_bytes()
    for cmd in (["status"], ["kill"]):
        result = mmops.invoke(app, ["trade", *cmd, "--journal", str(foreign)])
        assert result.exit_code == 1 and "not an mmops worker journal" in result.output, result.output
    run = mmops.invoke(app, ["trade", "--symbols", "BTCUSDT", *WINDOW, "--journal", str(foreign)])
    assert (
        run.exit_code == 1 and "not an mmops worker journal" in run.output and "Traceback" not in run.output
    )
    assert foreign.read_bytes() == before


def test_a_live_run_without_the_network_says_so_in_one_line(
    mmops: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exchange cannot be reached (no name resolves: tests never use the network, even on a
    machine that has one), and the user reads why in one line."""

    def no_dns(*_args: object, **_kw: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    args = ["trade", "--replay", "live", "--exchange", "binance", "--symbols", "BTC/USDT"]
    result = mmops.invoke(app, [*args, "--journal", str(tmp_path / "j.db")])
    assert result.exit_code == 1, result.output
    assert "binance: load_markets:" in result.output and "Traceback" not in result.output
    assert "Unclosed client session" not in result.output
