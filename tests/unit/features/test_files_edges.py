"""Bad files found in review that the text fuzzer cannot make: archives, columnar types, mappings.

Each must end as a one-line ``MmopsError`` naming the file, never another exception.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.errors import ConfigError, SourceError
from features.sources import files
from features.sources.layout import FileLayout
from flows.cli import app
from flows.ingest import worth_retrying

SERIES = {"symbol": "BTCUSDT", "venue": "binance", "interval": "1m"}
CSV = "timestamp,open,high,low,close,volume\n" + "".join(
    f"2026-03-01 00:0{i}:00,{100 + i},{101 + i},{99 + i},{100.5 + i},{1 + i}\n" for i in range(5)
)


def test_a_negative_column_position_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="position -1 is negative"):
        FileLayout(columns={"close": -1})


def test_two_columns_read_from_one_source_column_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(CSV)
    with pytest.raises(SourceError, match="open and close both map to column 'open'"):
        files.read_bars(path, layout=FileLayout(columns={"open": "open", "close": "open"}), **SERIES)


def test_an_lzma_zip_member_that_is_corrupt_is_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "bars.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_LZMA) as archive:
        archive.writestr("bars.csv", CSV * 50)
    blob = bytearray(path.read_bytes())
    blob[60:90] = b"\x00" * 30  # inside the compressed member
    path.write_bytes(bytes(blob))
    with pytest.raises(SourceError, match=r"bars\.zip"):
        files.read_bars(path, layout=FileLayout(), **SERIES)


def test_parquet_times_outside_what_nanoseconds_hold_are_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    frame = pd.read_csv(pd.io.common.StringIO(CSV))
    frame["timestamp"] = pd.array(
        pd.date_range("3000-01-01", periods=5, freq="min", unit="s"), dtype="datetime64[s]"
    )
    frame.to_parquet(path, index=False)
    with pytest.raises(SourceError, match="outside 1677-2262"):
        files.read_bars(path, layout=FileLayout(), **SERIES)


def test_binary_columns_that_are_not_utf8_are_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    frame = pd.read_csv(pd.io.common.StringIO(CSV))
    frame["close"] = [b"\xff\xfe\x00" + bytes([i]) for i in range(5)]
    frame.to_parquet(path, index=False)
    with pytest.raises(SourceError, match="not UTF-8"):
        files.read_bars(path, layout=FileLayout(), **SERIES)


def test_a_message_quoting_markup_is_printed_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMOPS_HOME", str(tmp_path / "home"))
    path = tmp_path / "bars.csv"
    path.write_text(CSV.replace("100.5,", "[/x],", 1))
    args = ["--path", str(path), "--symbol", "BTCUSDT", "--venue", "binance", "--interval", "1m"]
    result = CliRunner().invoke(app, ["ingest", "--source", "file", *args])
    assert result.exit_code == 1, result.output
    assert "[/x]" in result.output and "Traceback" not in result.output


class _State:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def result(self, raise_on_failure: bool = True) -> Any:
        return self.error


def test_only_temporary_failures_are_retried() -> None:
    from features.errors import DataError, TemporaryError

    assert worth_retrying(None, None, _State(TemporaryError("venue busy")))
    assert worth_retrying(None, None, _State(OSError("disk busy")))
    assert not worth_retrying(None, None, _State(SourceError("bars.csv: line 3 ...")))
    assert not worth_retrying(None, None, _State(DataError("validation failed")))
