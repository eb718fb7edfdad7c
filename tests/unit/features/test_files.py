"""The generic file reader on files built from the real shared data: layouts, presets, times,
order and duplicates, and a clear error (file, line or row, column) for every bad input."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path
from typing import get_args

import numpy as np
import pandas as pd
import pytest
import real_files as rf

from features.config import DatasetConfig
from features.errors import ConfigError, SourceError
from features.sources import binance, ccxt_source, files
from features.sources.layout import PRESETS, FileLayout, PresetName, parse_columns

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SERIES = {"symbol": "BTCUSDT", "venue": "binance"}


@pytest.fixture(scope="module")
def fall_back(source_data: Path) -> pd.DataFrame:
    return rf.btc_5m_over_fall_back(source_data)


@pytest.fixture(scope="module")
def hourly(source_data: Path) -> pd.DataFrame:
    return rf.hourly_from_klines(source_data)


@pytest.fixture(scope="module")
def eth_1h(source_data: Path) -> pd.DataFrame:
    return rf.freqtrade(source_data, "binance_ETH_USDT-1h_2023-01-01_2024-01-10.feather").iloc[:500]


@pytest.fixture(scope="module")
def ccxt_rows() -> list[list[float]]:
    rows: list[list[float]] = json.loads((FIXTURES / "ccxt_binance_fetch_ohlcv_BTC_USDT_1m.json").read_text())
    return rows


def read(path: Path, interval: str = "1m", **layout: object) -> files.FileRead:
    return files.read_bars(path, layout=FileLayout(**layout), interval=interval, **SERIES)  # type: ignore[arg-type]


def assert_same_bars(bars: pd.DataFrame, expected: pd.DataFrame) -> None:
    for column in expected.columns:
        np.testing.assert_array_equal(bars[column].to_numpy(), expected[column].to_numpy(), err_msg=column)


# -- times -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("unit", "factor"), [("s", 10**-3), ("ms", 1), ("us", 10**3), ("ns", 10**6)])
def test_the_unit_of_unix_times_is_detected_by_magnitude(
    tmp_path: Path, ccxt_rows: list[list[float]], unit: str, factor: float
) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("".join(f"{int(r[0] * factor)},{','.join(map(str, r[1:]))}\n" for r in ccxt_rows))
    result = read(path)
    assert result.times.unit == unit and result.times.tz == "UTC"
    assert result.bars["timestamp"].iloc[0] == pd.Timestamp(ccxt_rows[0][0], unit="ms", tz="UTC")


def test_mixed_units_and_numbers_too_small_for_a_unix_time_are_rejected(
    tmp_path: Path, ccxt_rows: list[list[float]]
) -> None:
    lines = [f"{int(r[0])},{','.join(map(str, r[1:]))}" for r in ccxt_rows]
    path = tmp_path / "bars.csv"
    path.write_text(
        "\n".join(
            [
                *lines[:3],
                lines[3].replace(str(int(ccxt_rows[3][0])), str(int(ccxt_rows[3][0]) // 1000)),
                *lines[4:],
            ]
        )
    )
    with pytest.raises(
        SourceError,
        match=r"bars.csv: column 0 \(0-based\): mixed unix-time units, line 1 is in ms but line 4 is in s",
    ):
        read(path)
    path.write_text("\n".join(f"{i},{','.join(map(str, r[1:]))}" for i, r in enumerate(ccxt_rows)))
    with pytest.raises(SourceError, match=r"line 1: 0 is too small for a unix time"):
        read(path)


def test_naive_local_times_across_the_fall_back_hour_land_on_utc(
    tmp_path: Path, fall_back: pd.DataFrame
) -> None:
    path = rf.local_parquet(fall_back, tmp_path / "local.parquet")
    result = read(path, "5m", tz=rf.BERLIN)
    assert_same_bars(result.bars, rf.canonical_rows(fall_back))
    assert (result.times.tz, result.times.ambiguous_resolved) == (rf.BERLIN, 24)  # 02:00..02:55 twice
    newest_first = rf.local_parquet(fall_back.iloc[::-1], tmp_path / "newest-first.parquet")
    again = read(newest_first, "5m", tz=rf.BERLIN)
    assert again.sorted and again.bars.equals(result.bars)


def test_repeated_local_times_follow_the_policy_and_are_never_shifted_silently(
    tmp_path: Path, fall_back: pd.DataFrame
) -> None:
    path = rf.local_parquet(fall_back, tmp_path / "local.parquet")
    with pytest.raises(
        SourceError, match=r"row 145: local time 2024-10-27 02:00:00 occurs twice in Europe/Berlin"
    ):
        read(path, "5m", tz=rf.BERLIN, ambiguous="raise")
    # one reading for both copies makes them collide: rejected as conflicting rows, not merged
    with pytest.raises(
        SourceError, match=r"2024-10-27T00:00:00\+00:00 is on rows 145 and 157 with different values"
    ):
        read(path, "5m", tz=rf.BERLIN, ambiguous="earliest")
    single = rf.local_parquet(
        fall_back.drop(index=150), tmp_path / "single.parquet"
    )  # 02:30 summer time gone
    with pytest.raises(SourceError, match=r"row 162: local time 2024-10-27 02:30:00 occurs 1 time\(s\)"):
        read(single, "5m", tz=rf.BERLIN)


def test_a_local_time_that_does_not_exist_is_rejected_with_its_row(tmp_path: Path, source_data: Path) -> None:
    bars = rf.freqtrade(source_data, "binance_BTC_USDT-5m_2024-03-01_2025-07-02.feather")
    window = bars[(bars["date"] >= "2024-03-30 12:00") & (bars["date"] < "2024-03-31 12:00")]
    assert_same_bars(
        read(rf.local_parquet(window, tmp_path / "ok.parquet"), "5m", tz=rf.BERLIN).bars,
        rf.canonical_rows(window),
    )
    utc_as_local = rf.local_parquet(window, tmp_path / "utc.parquet", tz="UTC")
    with pytest.raises(
        SourceError, match=r"row 169: local time 2024-03-31 02:00:00 does not exist in Europe/Berlin"
    ):
        read(utc_as_local, "5m", tz=rf.BERLIN)


def test_zones_apply_to_naive_times_only(tmp_path: Path, eth_1h: pd.DataFrame) -> None:
    path = rf.newest_first_csv(eth_1h, tmp_path / "eth.csv")  # ISO times with +00:00
    assert read(path, "1h").times.tz == "as in file"
    with pytest.raises(
        SourceError, match=r"has UTC offsets in its values; --tz Asia/Tokyo applies only to naive"
    ):
        read(path, "1h", tz="Asia/Tokyo")
    text = path.read_text().splitlines()
    path.write_text("\n".join([*text[:5], text[5].replace("+00:00", ""), *text[6:]]))
    with pytest.raises(SourceError, match=r"column 'date', line 6: .* has no UTC offset, unlike line 2"):
        read(path, "1h")


def test_mixed_date_formats_are_rejected_with_the_row_unless_the_format_is_given(
    tmp_path: Path, hourly: pd.DataFrame
) -> None:
    path = rf.cryptodatadownload_csv(hourly, tmp_path / "cdd.csv", switch_format_at=100)
    with pytest.raises(
        SourceError, match=r"column 'date', line 143: '2026-03-05 03-AM' does not match the format"
    ):
        read(path, "1h", columns={"timestamp": "date"})
    day_first = tmp_path / "day-first.csv"
    day_first.write_text(
        "date,open,high,low,close,volume\n"
        + "".join(
            f"{t:%d/%m/%Y %H:%M},1,2,0.5,1.5,3\n" for t in pd.date_range("2024-01-12", periods=48, freq="h")
        )
    )
    with pytest.raises(
        SourceError, match=r"line 26: '13/01/2024 00:00' does not match the format '%m/%d/%Y %H:%M' of line 2"
    ):
        read(day_first, "1h")  # the first row reads month first; the 13th day cannot
    result = read(day_first, "1h", time_format="%d/%m/%Y %H:%M")
    assert result.bars["timestamp"].iloc[-1] == pd.Timestamp("2024-01-13 23:00", tz="UTC")


# -- layouts and presets -------------------------------------------------------------------------
def test_usual_names_in_any_case_are_detected_and_reported(
    tmp_path: Path, ccxt_rows: list[list[float]]
) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        " Open Time ;OPEN;High;low;Close;Volume\n" + "".join(";".join(map(str, r)) + "\n" for r in ccxt_rows)
    )
    result = read(path)
    expected = {"timestamp": "Open Time", "open": "OPEN", "high": "High", "low": "low", "close": "Close"}
    assert result.to_dict()["columns"] == {**expected, "volume": "Volume"}
    assert set(result.to_dict()["chosen_by"].values()) == {"auto"}
    assert "timestamp<-Open Time (ms, UTC)" in result.summary()


def test_explicit_columns_win_and_unknown_names_are_named(tmp_path: Path, hourly: pd.DataFrame) -> None:
    path = rf.cryptodatadownload_csv(hourly, tmp_path / "cdd.csv", switch_format_at=100)
    result = read(
        path, "1h", columns=parse_columns(["timestamp=unix,volume=Volume USDT", "quote_volume=Volume BTC"])
    )
    assert result.to_dict()["columns"]["volume"] == "Volume USDT"
    assert result.to_dict()["chosen_by"]["timestamp"] == "columns"
    np.testing.assert_array_equal(result.bars["volume"], hourly["quote_volume"])
    with pytest.raises(
        SourceError, match=r"unknown column 'Unixx'; did you mean 'unix'\?.*--columns timestamp=NAME"
    ):
        read(path, "1h", columns={"timestamp": "Unixx"})


def test_cryptodatadownload_preset_reads_the_name_the_volumes_and_the_order(
    tmp_path: Path, hourly: pd.DataFrame
) -> None:
    path = rf.cryptodatadownload_csv(hourly, tmp_path / "Binance_BTCUSDT_1h.csv", switch_format_at=100)
    result = files.read_bars(path, layout=FileLayout(preset="cryptodatadownload"))
    bars = result.bars
    assert (bars["venue"].iloc[0], bars["symbol"].iloc[0], bars["interval"].iloc[0]) == (
        "binance",
        "BTCUSDT",
        "1h",
    )
    assert result.sorted and result.header_line == 2 and result.rows_read == len(hourly)
    assert_same_bars(bars, hourly)


@pytest.mark.parametrize("trailing_comma", [True, False])
@pytest.mark.parametrize("trades", [True, False])
def test_kraken_exports_with_or_without_trailing_comma_and_trades(
    tmp_path: Path, source_data: Path, trailing_comma: bool, trades: bool
) -> None:
    lines = rf.kraken_lines(source_data)
    lines = [line if trades else line.rsplit(",", 1)[0] for line in lines]
    path = tmp_path / "XBTUSD_1440.csv"
    path.write_text("".join(line + ("," if trailing_comma else "") + "\n" for line in lines))
    bars = files.read_file(path, preset="kraken")
    expected = files.read_file(source_data / "kraken-daily" / "XBTUSD_1440.csv", preset="kraken")
    assert_same_bars(bars, expected[[c for c in expected.columns if c != "trades"]])
    assert bars["trades"].isna().all() != trades


def test_ccxt_dumps_as_json_and_csv_read_like_the_live_adapter(
    tmp_path: Path, ccxt_rows: list[list[float]]
) -> None:
    expected = ccxt_source.parse_ohlcv(ccxt_rows, symbol="BTCUSDT", venue="binance", interval="1m")
    as_csv = tmp_path / "dump.csv"
    as_csv.write_text("".join(",".join(map(str, r)) + "\n" for r in ccxt_rows))
    for path in (FIXTURES / "ccxt_binance_fetch_ohlcv_BTC_USDT_1m.json", as_csv):
        pd.testing.assert_frame_equal(read(path, preset="ccxt").bars, expected)


def test_binance_kline_csv_with_a_header_reads_like_the_dump_reader(
    tmp_path: Path, source_data: Path
) -> None:
    rows = rf.kline_lines(source_data, rows=600)
    header = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore"
    path = tmp_path / "BTCUSDT-1m-2026-03.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    zipped = tmp_path / "BTCUSDT-1m-2026-03.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("BTCUSDT-1m-2026-03.csv", "\n".join(rows) + "\n")
    result = files.read_bars(path, layout=FileLayout(preset="binance-kline-csv"))
    pd.testing.assert_frame_equal(result.bars, binance.read_dump(zipped))
    assert result.times.unit == "us" and result.to_dict()["columns"]["trades"] == "count"


def test_wrappers_and_dialects_read_the_same_bars(tmp_path: Path, eth_1h: pd.DataFrame) -> None:
    text = rf.newest_first_csv(eth_1h, tmp_path / "eth.csv").read_text()
    expected = read(tmp_path / "eth.csv", "1h").bars
    variants = {
        "bom-crlf.csv": ("\ufeff" + text.replace("\n", "\r\n")).encode(),
        "semicolons.csv": text.replace(",", ";").encode(),
        "tabs.txt": text.replace(",", "\t").encode(),
        "eth.csv.gz": gzip.compress(text.encode()),
        "gzip-named-plainly.csv": gzip.compress(text.encode()),
        "preamble.csv": ("# exported by a tool\nhttps://example.com\n\n" + text).encode(),
        "blank-lines.csv": text.replace("\n", "\n\n", 3).encode(),
    }
    for name, blob in variants.items():
        (tmp_path / name).write_bytes(blob)
        pd.testing.assert_frame_equal(read(tmp_path / name, "1h").bars, expected, obj=name)


def test_a_parquet_with_the_time_as_its_index(tmp_path: Path, eth_1h: pd.DataFrame) -> None:
    path = tmp_path / "indexed.parquet"
    eth_1h.set_index("date").to_parquet(path)
    assert_same_bars(read(path, "1h").bars, rf.canonical_rows(eth_1h))


# -- order and duplicates ------------------------------------------------------------------------
def test_newest_first_is_sorted_and_exact_duplicates_are_dropped_and_counted(
    tmp_path: Path, eth_1h: pd.DataFrame
) -> None:
    result = read(rf.newest_first_csv(eth_1h, tmp_path / "eth.csv", duplicates=(0, 7, 499)), "1h")
    assert (result.rows_read, result.duplicates_dropped, result.sorted) == (503, 3, True)
    assert_same_bars(result.bars, rf.canonical_rows(eth_1h))


def test_conflicting_duplicates_are_rejected_naming_both_lines(tmp_path: Path, eth_1h: pd.DataFrame) -> None:
    path = rf.newest_first_csv(eth_1h, tmp_path / "eth.csv", duplicates=(497,))
    lines = path.read_text().splitlines()  # header, then 499 (newest), 498, 497, 497 copy on line 5
    lines[4] = lines[4].rsplit(",", 1)[0] + ",1.5"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        SourceError,
        match=r"open time 2023-01-21T17:00:00\+00:00 is on lines 4 and 5 with different values \(volume .* vs 1.5\).*lines count from 1, header included",
    ):
        read(path, "1h")


def test_other_disorder_is_rejected_naming_the_rows(tmp_path: Path, eth_1h: pd.DataFrame) -> None:
    path = rf.newest_first_csv(eth_1h.iloc[::-1], tmp_path / "eth.csv")  # oldest first
    lines = path.read_text().splitlines()
    lines[10], lines[11] = lines[11], lines[10]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        SourceError, match=r"starts oldest-first but line 12 .* breaks that order after line 11"
    ):
        read(path, "1h")


# -- errors --------------------------------------------------------------------------------------
HEADER = "timestamp,open,high,low,close,volume,trades\n"
ROW = "1772323200000,66973.26,67029.25,66967.18,66998.58,9.19306,5610\n"
BAD_FILES: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "the file is empty"),
    "header only": (HEADER.encode(), "no rows after line 0|has no rows"),
    "extra field": (
        (HEADER + ROW + ROW.replace("66998.58", "66998,58")).encode(),
        "line 3 has 8 fields, the header has 7",
    ),
    "text in a price": (
        (HEADER + ROW.replace("66998.58", "abc")).encode(),
        r"column 'close' \(for close\), line 2: 'abc' is not a number",
    ),
    "inf": (
        (HEADER + ROW.replace("9.19306", "inf")).encode(),
        r"column 'volume' \(for volume\), line 2: 'inf' is not a finite number",
    ),
    "fractional trades": (
        (HEADER + ROW.replace("5610", "56.5")).encode(),
        r"line 2: '56.5' is not a whole number",
    ),
    "empty time": (
        (HEADER + "," + ROW.split(",", 1)[1]).encode(),
        r"column 'timestamp', line 2: the time is empty",
    ),
    "truncated": (
        (HEADER + ROW + ROW[:20]).encode(),
        r"line 3 has 2 fields, the header has 7 \(the last line: the file looks truncated\)",
    ),
    "not utf-8": ((HEADER + ROW).encode() + b"\xff\xfe\x00" + ROW.encode(), r"line 3 is not UTF-8 text"),
    "utf-16": ((HEADER + ROW).encode("utf-16"), "UTF-16"),
    "bad json": (
        b"[[1772323200000, 1, 2, 0.5, 1.5, 3], [1772323260000, 1, 2",
        r"line 1, column \d+: not valid JSON",
    ),
    "json of scalars": (b"[1, 2, 3]", "row 1 of the JSON is a int"),
    "ragged json": (
        b"[[1772323200000, 1, 2, 0.5, 1.5, 3], [1772323260000, 1, 2]]",
        "row 2 has 3 fields, row 1 has 6",
    ),
    "no delimiter": (b"hello world\nthis is not a csv\n", "cannot find the field delimiter"),
    "headerless, 9 columns": (
        (ROW.strip() + ",1,2\n").encode(),
        r"no timestamp, open, high, low, close, volume column found \(columns: 9 columns without a header\)",
    ),
    "no volume": (b"date,open,high,low,close\n2024-01-01,1,2,0.5,1.5\n", "no volume column found"),
    "bad gzip": (gzip.compress((HEADER + ROW).encode())[:-12], "truncated or corrupt gzip"),
    "two files in a zip": (b"", "expected one file inside the zip, found 2"),
    "corrupt parquet": (b"PAR1" + b"\x00" * 64, "cannot read as parquet"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_every_bad_file_is_a_source_error_naming_the_file_and_place(tmp_path: Path, kind: str) -> None:
    blob, match = BAD_FILES[kind]
    path = tmp_path / "input.csv"
    if kind == "two files in a zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("a.csv", HEADER + ROW)
            archive.writestr("b.csv", HEADER + ROW)
        blob = buffer.getvalue()
    path.write_bytes(blob)
    with pytest.raises(SourceError, match=match) as caught:
        read(path)
    assert str(caught.value).startswith(str(path))


def test_symbol_and_interval_are_asked_for_when_the_name_does_not_say(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(HEADER + ROW)
    with pytest.raises(
        SourceError, match=r"give --symbol, --interval, --venue; the file name does not say them$"
    ):
        files.read_bars(path, layout=FileLayout())
    with pytest.raises(SourceError, match=r"give --symbol, --interval; .* names like XBTUSD_1440.csv"):
        files.read_bars(path, layout=FileLayout(preset="kraken"))


# -- options -------------------------------------------------------------------------------------
def test_layout_options_are_checked_and_name_the_nearest() -> None:
    with pytest.raises(ConfigError, match=r"unknown column 'clse'; did you mean 'close'\?"):
        FileLayout(columns={"clse": "Close"})
    with pytest.raises(
        ConfigError, match=r"unknown time zone 'Europe/Berln'; did you mean 'Europe/Berlin'\?"
    ):
        FileLayout(tz="Europe/Berln")
    with pytest.raises(ConfigError, match=r"unknown time unit 'sec'"):
        FileLayout(time_unit="sec")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"'close' is not canonical=source"):
        parse_columns(["timestamp=unix,close"])
    assert parse_columns(["timestamp=0, close = 'Close Price'"]) == {"timestamp": 0, "close": "Close Price"}
    assert set(get_args(PresetName)) == set(PRESETS)


def test_a_params_dataset_builds_the_layout_the_command_line_builds() -> None:
    dataset = DatasetConfig.model_validate(
        {
            "source": "file",
            "path": "x.csv",
            "symbol": "BTCUSDT",
            "interval": "1h",
            "tz": rf.BERLIN,
            "columns": {"timestamp": "unix", "volume": "Volume BTC"},
            "preset": "cryptodatadownload",
        }
    )
    cli = FileLayout(
        preset="cryptodatadownload", columns=parse_columns(["timestamp=unix,volume=Volume BTC"]), tz=rf.BERLIN
    )
    assert dataset.layout() == cli
    with pytest.raises(ValueError, match="apply to source: file only"):
        DatasetConfig.model_validate({"path": "x", "symbol": "BTCUSDT", "interval": "1m", "tz": rf.BERLIN})
