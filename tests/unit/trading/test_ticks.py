"""Tick-capture parsing: the shipped Binance captures, and malformed lines named by file and line."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from features.errors import DataError
from trading.ticks import group_tick_files, read_ticks, trade_bars

BBO = '{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"100.00","B":"1.0","a":"100.01","A":"2.0"}}'
TRADE = '{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","p":"%s","q":"0.5","T":%d,"m":%s}}'
DEPTH = '{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","s":"BTCUSDT","b":[],"a":[]}}'


def write_capture(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def test_shipped_spot_btcusdt_days_read_as_one_instrument(ticks_dir: Path) -> None:
    groups = group_tick_files(ticks_dir)
    assert set(groups) == {"spot_btcusdt", "spot_ethusdt", "usdm_btcusdt"}
    data = read_ticks(groups["spot_btcusdt"])
    assert (data.symbol, data.tick_size, len(data.trades), len(data.bbo)) == ("BTCUSDT", 0.01, 19904, 73174)
    assert set(np.unique(data.trades["side"])) == {-1, 1}
    assert data.trades["local_ns"].is_monotonic_increasing and data.bbo["local_ns"].is_monotonic_increasing
    assert (data.bbo["ask"] > data.bbo["bid"]).all()
    assert 640 < data.duration_s < 660  # 23:54:14 to 00:05:04 on the capture clock
    assert read_ticks(groups["usdm_btcusdt"]).tick_size == 0.1


def test_parses_fields_and_aggressor_side(tmp_path: Path) -> None:
    path = write_capture(
        tmp_path / "x_20240101.gz",
        [
            "1000 " + BBO,
            "1500 " + DEPTH,
            "2000 " + TRADE % ("100.00", 7, "true"),
            "3000 " + TRADE % ("100.01", 8, "false"),
            '4000 {"lastUpdateId":5,"bids":[],"asks":[]}',
        ],
    )
    data = read_ticks([path])
    assert data.bbo.iloc[0].tolist() == [1000, 100.0, 100.01, 1.0, 2.0]
    assert data.trades["side"].tolist() == [-1, 1]  # m=true: the buyer was the maker, a seller hit the bid
    assert data.trades["exch_ns"].tolist() == [7_000_000, 8_000_000]


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("not-a-number " + BBO, "expected '<local_timestamp_ns> <json object>'"),
        ("1234", "expected '<local_timestamp_ns> <json object>'"),
        ("1234 " + TRADE[:-3], "malformed trade message"),
        ("1234 " + BBO.replace('"b":"100.00",', ""), "field 'b' missing"),
        ("1234 " + TRADE.replace('"p":"%s",', "") % (7, "true"), "field 'p' missing"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, line: str, match: str) -> None:
    path = write_capture(tmp_path / "bad.gz", ["1000 " + BBO, "2000 " + TRADE % ("100.00", 7, "true"), line])
    with pytest.raises(DataError, match=match) as info:
        read_ticks([path])
    assert f"{path}:3" in str(info.value)


def test_not_gzip_and_missing_streams_are_data_errors(tmp_path: Path) -> None:
    plain = tmp_path / "plain.gz"
    plain.write_text("1000 {}\n")
    with pytest.raises(DataError, match="not a readable gzip"):
        read_ticks([plain])
    only_bbo = write_capture(tmp_path / "bbo.gz", ["1000 " + BBO])
    with pytest.raises(DataError, match="need both @bookTicker and @trade"):
        read_ticks([only_bbo])
    with pytest.raises(DataError, match="no such file"):
        group_tick_files(tmp_path / "missing")


def test_trade_bars_are_binned_by_exchange_time_and_drop_partial_ends(tmp_path: Path) -> None:
    minute = 60_000
    trades = [
        TRADE % (p, t, m)
        for p, t, m in [
            ("100.00", 59_000, "true"),  # partial first minute: dropped
            ("101.00", minute + 1, "false"),
            ("99.00", minute + 2, "true"),
            ("100.50", 2 * minute - 1, "false"),
            ("100.20", 2 * minute, "true"),
            ("100.30", 3 * minute + 5, "false"),  # last minute: partial
        ]
    ]
    data = read_ticks(
        [write_capture(tmp_path / "b.gz", ["1 " + BBO] + [f"{i + 2} {t}" for i, t in enumerate(trades)])]
    )
    bars = trade_bars(data.trades)
    assert bars["open_ns"].tolist() == [minute * 1_000_000, 2 * minute * 1_000_000]
    assert bars[["open", "high", "low", "close"]].iloc[0].tolist() == [101.0, 101.0, 99.0, 100.5]
    assert bars["taker_buy_volume"].tolist() == [1.0, 0.0]
    assert bars["volume"].tolist() == [1.5, 0.5]
