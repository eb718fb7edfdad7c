"""Source parsing: units, presets, and clear errors on corrupt input."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.errors import ConfigError, SourceError
from features.sources import binance, ccxt_source, files
from features.sources.layout import FileLayout

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
ROW_MS = "1772323200000,66973.26,67029.25,66967.18,66998.58,9.19306,1772323259999,615904.38,5610,4.61069,308907.14,0"
ROW_US = "1772323260000000,66998.58,67006.78,66963.97,66967.55,29.24509,1772323319999999,1959180.15,4867,22.59,1513420.66,0"


def write_zip(path: Path, text: str) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(path.with_suffix(".csv").name, text)
    return path


def test_binance_millisecond_and_microsecond_files_give_the_same_timestamps(tmp_path: Path) -> None:
    ms = binance.read_dump(write_zip(tmp_path / "BTCUSDT-1m-2026-03.zip", ROW_MS + "\n"))
    us = binance.read_dump(
        write_zip(
            tmp_path / "BTCUSDT-1m-2026-04.zip",
            ROW_MS.replace("1772323200000,", "1772323200000000,", 1) + "\n",
        )
    )
    assert ms["timestamp"].iloc[0] == us["timestamp"].iloc[0] == pd.Timestamp("2026-03-01", tz="UTC")
    assert (
        ms["symbol"].iloc[0] == "BTCUSDT" and ms["interval"].iloc[0] == "1m" and ms["trades"].iloc[0] == 5610
    )


def test_real_dump_reads_all_rows(source_data: Path) -> None:
    bars = binance.read_dump(source_data / "binance-spot-1m" / "BTCUSDT-1m-2026-03.zip")
    assert len(bars) == 31 * 1440
    assert bars["timestamp"].diff().dropna().eq(pd.Timedelta(minutes=1)).all()
    assert (bars["taker_buy_volume"] <= bars["volume"]).all()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "empty"),
        (ROW_MS + "\n" + ROW_US + "\n", "mixed timestamp units"),
        (ROW_MS.rsplit(",", 2)[0] + "\n", "has 10 columns"),
        (ROW_MS.replace("66998.58", "abc", 1) + "\n", "'close'.*not a number"),
    ],
    ids=["empty", "mixed-units", "wrong-columns", "non-numeric"],
)
def test_corrupt_dumps_are_rejected_with_the_problem_named(tmp_path: Path, content: str, match: str) -> None:
    with pytest.raises(SourceError, match=match):
        binance.read_dump(write_zip(tmp_path / "BTCUSDT-1m-2026-03.zip", content))


def test_truncated_zip_is_rejected(tmp_path: Path, source_data: Path) -> None:
    blob = (source_data / "binance-spot-1m" / "BTCUSDT-1m-2026-03.zip").read_bytes()
    path = tmp_path / "BTCUSDT-1m-2026-03.zip"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(SourceError, match=r"truncated or corrupt|corrupt"):
        binance.read_dump(path)


def test_checksum_mismatch_is_refused() -> None:
    binance.verify_checksum(
        b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  x.zip", source="t"
    )
    with pytest.raises(SourceError, match="does not match"):
        binance.verify_checksum(
            b"abd", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  x.zip", source="t"
        )


def test_dump_url_follows_the_public_layout() -> None:
    assert binance.dump_url("BTCUSDT", "1m", "2026-03").endswith(
        "/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2026-03.zip"
    )
    assert "/daily/" in binance.dump_url("BTCUSDT", "1m", "2026-03-05")


def test_freqtrade_preset_takes_names_from_the_file(source_data: Path) -> None:
    bars = files.read_file(
        source_data / "ohlcv" / "binance_ETH_USDT-1h_2023-01-01_2024-01-10.feather", preset="freqtrade"
    )
    assert (bars["venue"].iloc[0], bars["symbol"].iloc[0], bars["interval"].iloc[0]) == (
        "binance",
        "ETHUSDT",
        "1h",
    )
    assert len(bars) == 8996 and bars["taker_buy_volume"].isna().all() and bars["trades"].isna().all()


def test_kraken_preset_reads_seconds_and_trades(source_data: Path) -> None:
    bars = files.read_file(source_data / "kraken-daily" / "XBTUSD_1440.csv", preset="kraken")
    assert (bars["venue"].iloc[0], bars["symbol"].iloc[0], bars["interval"].iloc[0]) == (
        "kraken",
        "XBTUSD",
        "1d",
    )
    assert bars["timestamp"].iloc[0] == pd.Timestamp("2013-10-06", tz="UTC") and len(bars) == 3727
    assert bars["trades"].iloc[2] == 4


def test_unknown_preset_and_missing_column_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown preset 'krakn'; did you mean 'kraken'"):
        files.read_file(tmp_path / "x.csv", preset="krakn")
    path = tmp_path / "binance_BTC_USDT-1h.csv"
    path.write_text("date,open,high,low\n2024-01-01,1,2,0.5\n")
    with pytest.raises(SourceError, match="no close, volume column found"):
        files.read_file(
            path, layout=FileLayout(preset="freqtrade"), symbol="BTCUSDT", venue="binance", interval="1h"
        )


def test_ccxt_recorded_response_parses() -> None:
    rows = json.loads((FIXTURES / "ccxt_binance_fetch_ohlcv_BTC_USDT_1m.json").read_text())
    bars = ccxt_source.parse_ohlcv(rows, symbol="BTC/USDT", venue="binance", interval="1m")
    assert len(bars) == len(rows) and bars["symbol"].iloc[0] == "BTCUSDT"
    assert bars["timestamp"].iloc[0] == pd.Timestamp(rows[0][0], unit="ms", tz="UTC")
    np.testing.assert_allclose(bars["close"], [r[4] for r in rows])
    with pytest.raises(SourceError, match="expected 6 fields"):
        ccxt_source.parse_ohlcv([[1, 2, 3]], symbol="BTC/USDT", venue="binance", interval="1m")


class FakeExchange:
    """Replays the recorded response page by page, as ccxt's fetch_ohlcv would (no network)."""

    id = "binance"

    def __init__(self, rows: list[list[float]]) -> None:
        self.rows, self.calls = rows, 0

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: int | None, limit: int | None
    ) -> list[list[float]]:
        self.calls += 1
        page = [r for r in self.rows if since is None or r[0] >= since]
        return page[: limit or len(page)]


def test_ccxt_incremental_fetch_pages_and_stops_before_the_open_bar() -> None:
    rows = json.loads((FIXTURES / "ccxt_binance_fetch_ohlcv_BTC_USDT_1m.json").read_text())
    exchange = FakeExchange(rows)
    since = pd.Timestamp(rows[2][0], unit="ms", tz="UTC")
    until = pd.Timestamp(rows[-1][0], unit="ms", tz="UTC")
    bars = ccxt_source.fetch_incremental(
        exchange, market="BTC/USDT", interval="1m", since=since, until=until, page_limit=3
    )
    assert len(bars) == len(rows) - 3 and exchange.calls >= 3
    assert bars["timestamp"].iloc[-1] < until
