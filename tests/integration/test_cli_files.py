"""``mmops ingest --source file`` on files users bring, built from the real shared data.

Successful ingests run in-process (typer's CliRunner: one Great Expectations start for the
module); the failure contract (one line on stderr, exit 1, the store byte-identical, the raw
file in quarantine) runs through the real ``mmops`` process.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import real_files as rf
import yaml
from typer.main import get_command
from typer.testing import CliRunner

from features.config import ValidationConfig
from features.pipeline import ingest_source
from features.store import BarStore
from flows.cli import app

REPO = Path(__file__).resolve().parents[2]
BTC = ["--symbol", "BTCUSDT", "--venue", "binance"]


def ingest(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["ingest", "--source", "file", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def store_digest(root: Path) -> str:
    """SHA-256 over every file of the store tree (names and contents)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def test_local_naive_parquet_with_tz_lands_on_the_right_utc_bars(home: Path, source_data: Path) -> None:
    source = rf.btc_5m_over_fall_back(source_data)
    path = rf.local_parquet(source, home / "btc-local.parquet")
    local = pd.read_parquet(path)["timestamp"]
    assert (str(local.iloc[0]), str(local.iloc[-1])) == ("2024-10-26 14:00:00", "2024-10-27 12:55:00")
    (series,) = ingest("--path", str(path), *BTC, "--interval", "5m", "--tz", "Europe/Berlin")["series"]
    assert series["read"]["tz"] == "Europe/Berlin" and series["read"]["ambiguous_local_times"] == 24
    bars = BarStore(home / "data" / "bars").read("binance", "BTCUSDT", "5m")
    # by hand: 14:00 CEST (UTC+2) is 12:00 UTC; 12:55 CET (UTC+1, after the clocks went back) is 11:55 UTC
    first, last = bars.iloc[0], bars.iloc[-1]
    assert first["timestamp"] == pd.Timestamp("2024-10-26 12:00", tz="UTC")
    assert (first["open"], first["high"], first["low"], first["close"], first["volume"]) == (
        67138.0,
        67180.0,
        67110.0,
        67166.0,
        26.16012,
    )
    assert last["timestamp"] == pd.Timestamp("2024-10-27 11:55", tz="UTC")
    assert (last["open"], last["high"], last["low"], last["close"], last["volume"]) == (
        67128.04,
        67128.05,
        67128.03,
        67128.04,
        6.53553,
    )
    assert len(bars) == 288 and bars["timestamp"].diff().dropna().eq(pd.Timedelta(minutes=5)).all()
    assert (bars["timestamp"].to_numpy() == source["date"].to_numpy()).all()


def test_kraken_export_with_a_trailing_comma_ingests(home: Path, source_data: Path) -> None:
    path = home / "XBTUSD_1440.csv"
    path.write_text("".join(line + ",\n" for line in rf.kraken_lines(source_data)))
    (series,) = ingest("--preset", "kraken", "--path", str(path))["series"]
    assert (series["series"], series["rows_total"]) == ("kraken:XBTUSD:1d", 3727)
    stored = BarStore(home / "data" / "bars").read("kraken", "XBTUSD", "1d")
    assert stored["trades"].iloc[2] == 4 and stored["timestamp"].iloc[0] == pd.Timestamp(
        "2013-10-06", tz="UTC"
    )


def test_newest_first_csv_with_duplicate_rows_ingests_and_counts_them(home: Path, source_data: Path) -> None:
    eth = rf.freqtrade(source_data, "binance_ETH_USDT-1h_2023-01-01_2024-01-10.feather").iloc[:500]
    path = rf.newest_first_csv(eth, home / "eth.csv", duplicates=(0, 7, 499))
    (series,) = ingest("--path", str(path), "--symbol", "ETHUSDT", "--venue", "binance", "--interval", "1h")[
        "series"
    ]
    read = series["read"]
    assert (read["rows_read"], read["duplicates_dropped"], read["sorted"]) == (503, 3, True)
    assert series["rows_added"] == 500
    stored = BarStore(home / "data" / "bars").read("binance", "ETHUSDT", "1h")
    assert (stored["close"].to_numpy() == eth["close"].to_numpy()).all()


def test_cryptodatadownload_file_reads_its_unix_column_when_told(home: Path, source_data: Path) -> None:
    path = rf.cryptodatadownload_csv(
        rf.hourly_from_klines(source_data), home / "export.csv", switch_format_at=100
    )
    runner = CliRunner()
    args = ["ingest", "--source", "file", "--path", str(path), *BTC, "--interval", "1h"]
    mixed = runner.invoke(app, [*args, "--columns", "timestamp=date"])
    assert mixed.exit_code == 1 and "line 143: '2026-03-05 03-AM' does not match the format" in mixed.stderr
    chosen = runner.invoke(app, [*args, "--columns", "timestamp=unix"], catch_exceptions=False)
    assert chosen.exit_code == 0, chosen.output
    assert "timestamp<-unix (ms, UTC)" in " ".join(chosen.stdout.split())  # the human line, however wrapped
    assert "volume<-Volume BTC" in " ".join(chosen.stdout.split())
    assert len(BarStore(home / "data" / "bars").read("binance", "BTCUSDT", "1h")) == 240


def test_params_datasets_reach_the_same_reader(
    home: Path, source_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    rf.cryptodatadownload_csv(rf.hourly_from_klines(source_data, hours=48), raw / "Binance_BTCUSDT_1h.csv")
    rf.local_parquet(rf.btc_5m_over_fall_back(source_data), raw / "btc-local.parquet")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["datasets"] = [
        {
            "source": "file",
            "path": "Binance_BTCUSDT_1h.csv",
            "preset": "cryptodatadownload",
            "venue": "binance",
            "symbol": "BTCUSDT",
            "interval": "1h",
        },
        {
            "source": "file",
            "path": "btc-local.parquet",
            "columns": {"timestamp": "timestamp"},
            "tz": "Europe/Berlin",
            "venue": "binance",
            "symbol": "BTCUSDT",
            "interval": "5m",
        },
    ]
    (home / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv("MMOPS_PARAMS", str(home / "params.yaml"))
    result = CliRunner().invoke(
        app, ["ingest", "--all", "--root", str(raw), "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    series = json.loads(result.stdout)["series"]
    assert [(s["series"], s["rows_total"]) for s in series] == [
        ("binance:BTCUSDT:1h", 48),
        ("binance:BTCUSDT:5m", 288),
    ]
    assert [s["read"]["chosen_by"]["timestamp"] for s in series] == ["preset", "columns"]


def test_ingest_help_documents_every_option_with_an_example() -> None:
    command = get_command(app).commands["ingest"]  # type: ignore[attr-defined]
    undocumented = [
        p.opts[0] for p in command.params if p.opts[0] != "--help" and "e.g." not in (p.help or "")
    ]
    assert undocumented == []
    shown = CliRunner().invoke(app, ["ingest", "--help"], env={"COLUMNS": "200"}).stdout
    for option in (
        "--columns",
        "--time-unit",
        "--time-format",
        "--tz",
        "--ambiguous",
        "--preset",
        "default: UTC",
    ):
        assert option in shown
    assert shown.count("mmops ingest --source file") >= 3  # the epilog's examples


# -- the failure contract, through the real process ----------------------------------------------
def mmops(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "flows", *args]
    return subprocess.run(command, capture_output=True, text=True, env=os.environ.copy(), check=False)


def _conflicting(home: Path, source_data: Path) -> tuple[Path, str, list[str]]:
    eth = rf.freqtrade(source_data, "binance_ETH_USDT-1h_2023-01-01_2024-01-10.feather").iloc[:50]
    path = rf.newest_first_csv(eth, home / "eth.csv", duplicates=(47,))
    lines = path.read_text().splitlines()
    lines[4] = lines[4].rsplit(",", 1)[0] + ",1.5"  # the copy of 2023-01-02T23:00 on line 5 differs
    path.write_text("\n".join(lines) + "\n")
    return path, r"open time 2023-01-02T23:00:00\+00:00 is on lines 4 and 5 with different values", ["1h"]


def _truncated_gzip(home: Path, source_data: Path) -> tuple[Path, str, list[str]]:
    path = home / "XBTUSD_1440.csv.gz"
    path.write_bytes(gzip.compress("\n".join(rf.kraken_lines(source_data)).encode())[:-100])
    return path, "truncated or corrupt gzip", ["1d", "--preset", "kraken"]


def _wrong_zone(home: Path, source_data: Path) -> tuple[Path, str, list[str]]:
    bars = rf.freqtrade(source_data, "binance_BTC_USDT-5m_2024-03-01_2025-07-02.feather")
    window = bars[(bars["date"] >= "2024-03-30 12:00") & (bars["date"] < "2024-03-31 12:00")]
    path = rf.local_parquet(window, home / "utc-times.parquet", tz="UTC")  # but read as Berlin time
    return (
        path,
        r"row 169: local time 2024-03-31 02:00:00 does not exist in Europe/Berlin",
        ["5m", "--tz", rf.BERLIN],
    )


@pytest.mark.parametrize("make", [_conflicting, _truncated_gzip, _wrong_zone], ids=lambda f: f.__name__[1:])
def test_a_bad_file_is_one_line_exit_1_store_unchanged_raw_file_quarantined(
    home: Path, source_data: Path, make: Any
) -> None:
    seed = source_data / "kraken-daily" / "ETHUSD_1440.csv"
    ingest_source(
        "file",
        seed,
        store_root=home / "data" / "bars",
        quarantine_root=home / "data" / "quarantine",
        gx_root=None,
        validation=ValidationConfig(),
        now=pd.Timestamp.now(tz="UTC"),
        preset="kraken",
    )
    before = store_digest(home / "data" / "bars")
    path, reason, options = make(home, source_data)
    result = mmops("ingest", "--source", "file", "--path", str(path), *BTC, "--interval", *options)
    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert (
        result.stderr.startswith(f"error: {path}") and pd.Series([result.stderr]).str.contains(reason).all()
    )
    assert "Traceback" not in result.stderr
    assert store_digest(home / "data" / "bars") == before
    (kept,) = (home / "data" / "quarantine").iterdir()
    assert (kept / path.name).read_bytes() == path.read_bytes() and str(kept) in result.stderr
