"""Property: any mutation of a real file either reads into valid canonical bars or raises a
``DataError`` (an ``MmopsError``) whose message names the file. No other exception, ever.

The bases are small real files of every layout the reader knows; the mutations are the ways
files get damaged or vary in the wild. The default run is bounded and derandomized (the same
examples every time); ``MMOPS_FUZZ_EXAMPLES=5000`` runs a longer search.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import real_files as rf
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from features.errors import DataError
from features.schema import ARROW_SCHEMA, COLUMNS
from features.sources import files
from features.sources.layout import FileLayout

EXAMPLES = int(os.environ.get("MMOPS_FUZZ_EXAMPLES", "150"))
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
STRAY = [
    "abc",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "Infinity",
    "",
    " ",
    '"',
    "1e400",
    "-1",
    "0",
    "1.5.5",
    "null",
    "2024-13-45",
    "12:00",
    "\x00",
    "é",
    "\ufeff",
    "9" * 30,
    ",",
    ";",
    "\t",
    "\r",
    "\n",
]


@dataclass(frozen=True)
class Base:
    name: str
    blob: bytes
    preset: str | None
    interval: str
    tz: str = "UTC"

    def __repr__(self) -> str:  # failure reports show the mutated bytes, not every base
        return f"Base({self.name!r}, preset={self.preset!r})"


@pytest.fixture(scope="module")
def bases(source_data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Base]:
    folder = tmp_path_factory.mktemp("bases")
    hourly = rf.hourly_from_klines(source_data, hours=48)
    eth = rf.freqtrade(source_data, "binance_ETH_USDT-1h_2023-01-01_2024-01-10.feather").iloc[:48]
    kraken = "\n".join(rf.kraken_lines(source_data)[:48]) + "\n"
    local = rf.local_parquet(rf.btc_5m_over_fall_back(source_data).iloc[130:180], folder / "local.parquet")
    return [
        Base("XBTUSD_1440.csv", kraken.encode(), "kraken", "1d"),
        Base("XBTUSD_1440.csv", kraken.replace("\n", ",\n").encode(), None, "1d"),
        Base(
            "Binance_BTCUSDT_1h.csv",
            rf.cryptodatadownload_csv(hourly, folder / "cdd.csv").read_bytes(),
            "cryptodatadownload",
            "1h",
        ),
        Base(
            "BTCUSDT-1m-2026-03.csv",
            ("\n".join(rf.kline_lines(source_data, rows=48)) + "\n").encode(),
            "binance-kline-csv",
            "1m",
        ),
        Base(
            "eth.csv", rf.newest_first_csv(eth, folder / "eth.csv", duplicates=(3,)).read_bytes(), None, "1h"
        ),
        Base(
            "dump.json", (FIXTURES / "ccxt_binance_fetch_ohlcv_BTC_USDT_1m.json").read_bytes(), "ccxt", "1m"
        ),
        Base("local.parquet", local.read_bytes(), None, "5m", rf.BERLIN),
    ]


def _lines(blob: bytes) -> list[str]:
    return blob.decode("utf-8", errors="replace").split("\n")


@st.composite
def mutated(draw: st.DrawFn, bases: list[Base]) -> tuple[Base, bytes, str]:
    """A base file and 1-3 mutations of it, described for the failure report."""
    base = draw(st.sampled_from(bases))
    blob = base.blob
    done = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(MUTATIONS))
        blob = kind(draw, blob)
        done.append(kind.__name__)
    return base, blob, "+".join(done)


def truncate(draw: st.DrawFn, blob: bytes) -> bytes:
    return blob[: draw(st.integers(0, max(len(blob) - 1, 0)))]


def flip_bytes(draw: st.DrawFn, blob: bytes) -> bytes:
    out = bytearray(blob)
    for _ in range(draw(st.integers(1, 4))):
        if out:
            out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
    return bytes(out)


def _edit_line(draw: st.DrawFn, blob: bytes, edit: str) -> bytes:
    lines = _lines(blob)
    at = draw(st.integers(0, len(lines) - 1))
    fields = lines[at].split(",")
    spot = draw(st.integers(0, max(len(fields) - 1, 0)))
    if edit == "drop":
        del fields[spot]
    elif edit == "add":
        fields.insert(spot, draw(st.sampled_from(STRAY)))
    else:
        fields[spot] = draw(st.sampled_from(STRAY))
    lines[at] = ",".join(fields)
    return "\n".join(lines).encode()


def drop_field(draw: st.DrawFn, blob: bytes) -> bytes:
    return _edit_line(draw, blob, "drop")


def add_field(draw: st.DrawFn, blob: bytes) -> bytes:
    return _edit_line(draw, blob, "add")


def stray_value(draw: st.DrawFn, blob: bytes) -> bytes:
    return _edit_line(draw, blob, "replace")


def stray_text(draw: st.DrawFn, blob: bytes) -> bytes:
    at = draw(st.integers(0, len(blob)))
    return blob[:at] + draw(st.text(max_size=12)).encode("utf-8", errors="replace") + blob[at:]


def swap_columns(draw: st.DrawFn, blob: bytes) -> bytes:
    lines = [line.split(",") for line in _lines(blob)]
    width = max(len(f) for f in lines)
    a, b = draw(st.integers(0, width - 1)), draw(st.integers(0, width - 1))
    for fields in lines:
        if max(a, b) < len(fields):
            fields[a], fields[b] = fields[b], fields[a]
    return "\n".join(",".join(f) for f in lines).encode()


def swap_lines(draw: st.DrawFn, blob: bytes) -> bytes:
    lines = _lines(blob)
    a, b = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
    lines[a], lines[b] = lines[b], lines[a]
    return "\n".join(lines).encode()


def duplicate_line(draw: st.DrawFn, blob: bytes) -> bytes:
    lines = _lines(blob)
    at = draw(st.integers(0, len(lines) - 1))
    return "\n".join([*lines[: at + 1], lines[at], *lines[at + 1 :]]).encode()


def reverse_lines(draw: st.DrawFn, blob: bytes) -> bytes:
    return "\n".join(reversed(_lines(blob))).encode()


def bom(draw: st.DrawFn, blob: bytes) -> bytes:
    return b"\xef\xbb\xbf" + blob


def crlf(draw: st.DrawFn, blob: bytes) -> bytes:
    return blob.replace(b"\n", b"\r\n")


def gzipped(draw: st.DrawFn, blob: bytes) -> bytes:
    return gzip.compress(blob, mtime=0)


def empty_header(draw: st.DrawFn, blob: bytes) -> bytes:
    lines = _lines(blob)
    lines[0] = draw(st.sampled_from(["", ",,,,,", " "]))
    return "\n".join(lines).encode()


def other_delimiter(draw: st.DrawFn, blob: bytes) -> bytes:
    delimiter = draw(st.sampled_from([";", "\t", "|", " "]))
    if draw(st.booleans()):
        return blob.replace(b",", delimiter.encode())
    lines = _lines(blob)
    at = draw(st.integers(0, len(lines) - 1))
    lines[at] = lines[at].replace(",", delimiter)
    return "\n".join(lines).encode()


def nan_inf(draw: st.DrawFn, blob: bytes) -> bytes:
    lines = _lines(blob)
    at = draw(st.integers(0, len(lines) - 1))
    token = draw(st.sampled_from(["NaN", "inf", "-inf", "nan", "Infinity", ""]))
    fields = lines[at].split(",")
    fields[draw(st.integers(0, len(fields) - 1))] = token
    lines[at] = ",".join(fields)
    return "\n".join(lines).encode()


def json_shape(draw: st.DrawFn, blob: bytes) -> bytes:
    try:
        rows = json.loads(blob)
    except ValueError:
        return blob
    if not isinstance(rows, list) or not rows:
        return blob
    at = draw(st.integers(0, len(rows) - 1))
    rows[at] = draw(st.sampled_from([None, "x", [1, 2], {"a": 1}, [True] * 6, [1775001600000] * 6, 1.5]))
    return json.dumps(rows).encode()


MUTATIONS = [
    truncate,
    flip_bytes,
    drop_field,
    add_field,
    stray_value,
    stray_text,
    swap_columns,
    swap_lines,
    duplicate_line,
    reverse_lines,
    bom,
    crlf,
    gzipped,
    empty_header,
    other_delimiter,
    nan_inf,
    json_shape,
]


def assert_valid_bars(read: files.FileRead) -> None:
    bars = read.bars
    assert list(bars.columns) == list(COLUMNS)
    pa.Table.from_pandas(bars, schema=ARROW_SCHEMA, preserve_index=False)  # the store's types and nullability
    stamps = bars["timestamp"].astype("int64").to_numpy()
    assert (np.diff(stamps) > 0).all(), "oldest first, unique open times"
    values = bars[["open", "high", "low", "close", "volume", "quote_volume", "taker_buy_volume"]].to_numpy()
    assert not np.isinf(values).any()
    assert read.rows_read - read.duplicates_dropped == len(bars) > 0


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), use_preset=st.booleans())
def test_any_mutated_real_file_reads_or_fails_with_a_data_error_naming_it(
    bases: list[Base], data: st.DataObject, use_preset: bool
) -> None:
    base, blob, how = data.draw(mutated(bases), label="base and mutations")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / base.name
        path.write_bytes(blob)
        layout = FileLayout(preset=base.preset if use_preset else None, tz=base.tz)
        error: DataError | None = None
        try:
            read = files.read_bars(
                path, layout=layout, symbol="BTCUSDT", venue="binance", interval=base.interval
            )
        except DataError as exc:
            error = exc
        if error is not None:
            assert str(path) in str(error), f"{how}: the message does not name the file: {error}"
            event("rejected with a DataError naming the file")
        else:
            assert_valid_bars(read)
            event("read into valid bars")


def test_the_bases_themselves_read(bases: list[Base], tmp_path: Path) -> None:
    for base in bases:
        path = tmp_path / base.name
        path.write_bytes(base.blob)
        read = files.read_bars(
            path,
            layout=FileLayout(preset=base.preset, tz=base.tz),
            symbol="BTCUSDT",
            venue="binance",
            interval=base.interval,
        )
        assert_valid_bars(read)
        assert pd.Timestamp(read.bars["timestamp"].iloc[0]).tzname() == "UTC"
