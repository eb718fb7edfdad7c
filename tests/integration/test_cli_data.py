"""The data commands end to end on the shipped real data, through the real CLI process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import store_bytes

MMOPS = [sys.executable, "-m", "flows"]


def mmops(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*MMOPS, *args], capture_output=True, text=True, env=os.environ.copy(), check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"mmops {' '.join(args)} failed: {result.stderr}")
    return result


def test_binance_dump_ingest_info_and_idempotence(home: Path, source_data: Path) -> None:
    mmops("ingest", "--source", "binance-dump", "--path", str(source_data / "binance-spot-1m"), "--json")
    (info,) = json.loads(mmops("data", "info", "--json").stdout)["series"]
    assert (info["symbol"], info["interval"], info["rows"], info["gap_count"]) == ("BTCUSDT", "1m", 87840, 0)
    before = store_bytes(home / "data" / "bars")
    again = json.loads(
        mmops(
            "ingest", "--source", "binance-dump", "--path", str(source_data / "binance-spot-1m"), "--json"
        ).stdout
    )
    assert again["series"][0]["months_written"] == []
    assert store_bytes(home / "data" / "bars") == before


def test_every_shared_ohlcv_and_kraken_file_ingests_with_its_preset(home: Path, source_data: Path) -> None:
    for path in sorted((source_data / "ohlcv").glob("*.feather")):
        mmops("ingest", "--source", "file", "--preset", "freqtrade", "--path", str(path), "--json")
    for path in sorted((source_data / "kraken-daily").glob("*.csv")):
        mmops("ingest", "--source", "file", "--preset", "kraken", "--path", str(path), "--json")
    infos = {
        (i["venue"], i["symbol"], i["interval"]): i
        for i in json.loads(mmops("data", "info", "--json").stdout)["series"]
    }
    assert len(infos) == 9
    assert infos[("binance", "BTCUSDT", "1h")]["gap_count"] == 28
    assert infos[("binance", "BTCUSDT", "1h")]["longest_gap_bars"] == 33  # 34 h between two bars = 33 missing
    assert infos[("binance", "ETHUSDT", "1h")]["gap_count"] == 1
    assert infos[("kraken", "XBTUSD", "1d")]["rows"] == 3727
    assert infos[("binance", "BTCUSDT", "1m")]["rows"] == 130708


def test_features_end_equals_full_run_and_errors_exit_non_zero(
    home: Path, source_data: Path, tmp_path: Path
) -> None:
    mmops("ingest", "--source", "binance-dump", "--path", str(source_data / "binance-spot-1m"))
    full, cut = tmp_path / "full.parquet", tmp_path / "cut.parquet"
    mmops("features", "--symbol", "BTCUSDT", "--interval", "1m", "--out", str(full))
    mmops(
        "features", "--symbol", "BTCUSDT", "--interval", "1m", "--end", "2026-03-20T12:00", "--out", str(cut)
    )
    a, b = pd.read_parquet(full), pd.read_parquet(cut)
    pd.testing.assert_frame_equal(b, a.loc[: pd.Timestamp("2026-03-20T12:00", tz="UTC")], check_exact=True)
    bad = mmops("features", "--symbol", "DOGEUSDT", "--interval", "1m", check=False)
    assert bad.returncode == 1
    assert "DOGEUSDT" in bad.stderr
    assert bad.stdout == ""


def test_validate_command_writes_data_docs(home: Path, source_data: Path) -> None:
    mmops(
        "ingest",
        "--source",
        "file",
        "--preset",
        "kraken",
        "--path",
        str(source_data / "kraken-daily" / "XBTUSD_1440.csv"),
    )
    report = json.loads(mmops("validate", "--json").stdout)
    assert report["success"] is True
    assert Path(report["data_docs"]).is_file()


@pytest.mark.e2e
def test_prefect_data_flows_run_under_the_harness(home: Path, prefect_harness: None) -> None:
    from flows.ingest import features_flow, ingest_flow

    ingested = ingest_flow()
    assert [s["series"] for r in ingested for s in r["series"]] == [
        "binance:BTCUSDT:1m",
        "kraken:XBTUSD:1d",
    ]
    assert [f["rows"] for f in features_flow()] == [87840, 3727]
