"""Generic OHLCV files (CSV, Parquet, Feather) with a column mapping, and presets.

Presets describe well-known layouts:

- ``freqtrade``: feather/parquet with ``date`` (UTC datetime), open, high, low, close, volume;
  venue, symbol and interval come from freqtrade's file name,
  e.g. ``binance_BTC_USDT-1h_2017-08-17_2024-04-21.feather``.
- ``kraken``: Kraken's OHLCVT export, headerless CSV: unix seconds, OHLC, volume, trades;
  symbol and interval (minutes) from the name, e.g. ``XBTUSD_1440.csv``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from features.errors import SourceError
from features.schema import VALUE_COLUMNS, conform, normalize_interval, normalize_symbol

TimeUnit = Literal["s", "ms", "us", "ns", "datetime"]


@dataclass(frozen=True, slots=True)
class FileLayout:
    """How to read one file layout into canonical bars.

    Attributes:
        columns: canonical column -> source column (name, or position for headerless CSV).
        time_unit: unit of the timestamp column (``datetime`` for parsed date strings/types).
        header: whether a CSV has a header row.
    """

    columns: dict[str, str | int]
    time_unit: TimeUnit = "datetime"
    header: bool = True
    name_pattern: re.Pattern[str] | None = None
    venue: str | None = None
    interval_minutes_in_name: bool = False


PRESETS: dict[str, FileLayout] = {
    "freqtrade": FileLayout(
        columns={
            "timestamp": "date",
            "open": "open",
            "high": "high",
            "low": "low",
            "close": "close",
            "volume": "volume",
        },
        name_pattern=re.compile(
            r"^(?P<venue>[a-z0-9]+)_(?P<symbol>[A-Z0-9]+_[A-Z0-9]+)-(?P<interval>\d+[mhdw])"
        ),
    ),
    "kraken": FileLayout(
        columns={"timestamp": 0, "open": 1, "high": 2, "low": 3, "close": 4, "volume": 5, "trades": 6},
        time_unit="s",
        header=False,
        name_pattern=re.compile(r"^(?P<symbol>[A-Z0-9]+)_(?P<interval>\d+)\.csv$"),
        venue="kraken",
        interval_minutes_in_name=True,
    ),
}


def read_file(
    path: Path,
    *,
    preset: str | None = None,
    layout: FileLayout | None = None,
    symbol: str | None = None,
    venue: str | None = None,
    interval: str | None = None,
) -> pd.DataFrame:
    """Read one OHLCV file into canonical bars.

    Symbol, venue and interval come from the arguments when given, else from the preset's file
    name pattern.

    Raises:
        SourceError: unknown preset, unreadable file, missing columns, non-numeric values, or
            symbol/venue/interval that can be neither parsed nor were given.
    """
    if layout is None:
        if preset not in PRESETS:
            raise SourceError(f"unknown preset {preset!r}; known presets: {', '.join(sorted(PRESETS))}")
        layout = PRESETS[preset]
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    named = _from_name(path, layout)
    symbol, venue, interval = (
        symbol or named.get("symbol"),
        venue or named.get("venue"),
        interval or named.get("interval"),
    )
    if not (symbol and venue and interval):
        raise SourceError(
            f"{path}: give --symbol, --interval (and a venue) explicitly; the file name does not say"
        )
    raw = _load(path, layout)
    if raw.empty:
        raise SourceError(f"{path}: the file has no rows")
    frame = pd.DataFrame({"timestamp": _timestamps(raw, layout, path)})
    for target, source in layout.columns.items():
        if target == "timestamp":
            continue
        if source not in raw.columns:
            raise SourceError(
                f"{path}: column {source!r} (for {target}) is missing; columns are {list(raw.columns)}"
            )
        values = pd.to_numeric(raw[source], errors="coerce")
        bad = values.isna() & raw[source].notna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise SourceError(
                f"{path}: row {row + 1}, column {source!r}: {raw[source].iloc[row]!r} is not a number"
            )
        frame[target] = values.to_numpy()
    return conform(frame, symbol=symbol, venue=venue, interval=interval)


def _from_name(path: Path, layout: FileLayout) -> dict[str, str]:
    if layout.name_pattern is None:
        return {}
    match = layout.name_pattern.match(path.name)
    if match is None:
        return {}
    found = {k: v for k, v in match.groupdict().items() if v}
    if "symbol" in found:
        found["symbol"] = normalize_symbol(found["symbol"])
    if "interval" in found:
        raw = found["interval"]
        found["interval"] = normalize_interval(f"{raw}m" if layout.interval_minutes_in_name else raw)
    if layout.venue:
        found.setdefault("venue", layout.venue)
    return found


def _load(path: Path, layout: FileLayout) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".feather":
            return pd.read_feather(path)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".gz", ".txt"):
            return pd.read_csv(path, header=0 if layout.header else None, dtype=str)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise SourceError(f"{path}: cannot read as {suffix.lstrip('.')} ({exc})") from exc
    raise SourceError(f"{path}: unsupported file type {suffix!r}; use .csv, .parquet or .feather")


def _timestamps(raw: pd.DataFrame, layout: FileLayout, path: Path) -> pd.DatetimeIndex:
    source = layout.columns["timestamp"]
    if source not in raw.columns:
        raise SourceError(f"{path}: timestamp column {source!r} is missing; columns are {list(raw.columns)}")
    column = raw[source]
    try:
        if layout.time_unit == "datetime":
            return pd.DatetimeIndex(pd.to_datetime(column, utc=True))
        numeric = pd.to_numeric(column, errors="raise")
        return pd.DatetimeIndex(pd.to_datetime(numeric.astype("int64"), unit=layout.time_unit, utc=True))
    except (ValueError, TypeError, OverflowError) as exc:
        raise SourceError(
            f"{path}: timestamp column {source!r} does not parse as {layout.time_unit} ({exc})"
        ) from exc


__all__ = ["PRESETS", "VALUE_COLUMNS", "FileLayout", "read_file"]
