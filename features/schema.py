"""The canonical bar schema every source is converted into.

One row is one bar of one ``symbol`` on one ``venue`` at one ``interval``. ``timestamp`` is the
bar's open time, UTC, nanosecond resolution. Fields a source does not provide are null, never
zero: a Kraken daily file has no taker-buy volume, and zero would read as "all sells".
"""

from __future__ import annotations

import re
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa

from features.errors import DataError

TIMESTAMP: Final = "timestamp"
KEY_COLUMNS: Final = ("symbol", "venue", "interval")
PRICE_COLUMNS: Final = ("open", "high", "low", "close")
VALUE_COLUMNS: Final = (*PRICE_COLUMNS, "volume", "quote_volume", "trades", "taker_buy_volume")
COLUMNS: Final = (TIMESTAMP, *KEY_COLUMNS, *VALUE_COLUMNS)

ARROW_SCHEMA: Final = pa.schema(
    [
        pa.field(TIMESTAMP, pa.timestamp("ns", tz="UTC"), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("venue", pa.string(), nullable=False),
        pa.field("interval", pa.string(), nullable=False),
        pa.field("open", pa.float64()),
        pa.field("high", pa.float64()),
        pa.field("low", pa.float64()),
        pa.field("close", pa.float64()),
        pa.field("volume", pa.float64()),
        pa.field("quote_volume", pa.float64()),
        pa.field("trades", pa.int64()),
        pa.field("taker_buy_volume", pa.float64()),
    ]
)

_NS_PER_UNIT: Final = {"s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_NS_PER_UNIT["d"] = 24 * _NS_PER_UNIT["h"]
_NS_PER_UNIT["w"] = 7 * _NS_PER_UNIT["d"]
_INTERVAL_RE: Final = re.compile(r"^(\d+)([smhdw])$")


def interval_ns(interval: str) -> int:
    """Length of an interval such as ``1m``, ``15m``, ``1h`` or ``1d`` in nanoseconds.

    Raises:
        DataError: the interval is not ``<count><s|m|h|d|w>``.
    """
    match = _INTERVAL_RE.match(interval)
    if match is None or int(match.group(1)) == 0:
        raise DataError(f"interval {interval!r} is not of the form <count><s|m|h|d|w>, e.g. 1m, 1h, 1d")
    return int(match.group(1)) * _NS_PER_UNIT[match.group(2)]


def normalize_interval(interval: str) -> str:
    """Canonical spelling of an interval: ``60m`` -> ``1h``, ``1440m`` -> ``1d``."""
    ns = interval_ns(interval)
    for unit in ("w", "d", "h", "m", "s"):
        if ns % _NS_PER_UNIT[unit] == 0:
            return f"{ns // _NS_PER_UNIT[unit]}{unit}"
    raise AssertionError("unreachable: every interval is a whole number of seconds")


def normalize_symbol(symbol: str) -> str:
    """Exchange-neutral symbol spelling: ``BTC/USDT``, ``btc_usdt`` and ``BTC-USDT`` -> ``BTCUSDT``."""
    cleaned = re.sub(r"[/_\-: ]", "", symbol).upper()
    if not cleaned.isalnum():
        raise DataError(f"symbol {symbol!r} has characters other than letters and digits")
    return cleaned


def empty_bars() -> pd.DataFrame:
    """An empty frame with the canonical columns and dtypes."""
    return ARROW_SCHEMA.empty_table().to_pandas()


def conform(frame: pd.DataFrame, *, symbol: str, venue: str, interval: str) -> pd.DataFrame:
    """Return ``frame`` with exactly the canonical columns, order and dtypes.

    ``frame`` must have a ``timestamp`` column (datetime64, UTC) and any subset of the value
    columns; missing value columns become null. Rows are not reordered or checked here:
    validation does that and reports what it finds.
    """
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    ts = pd.to_datetime(frame[TIMESTAMP].to_numpy(), utc=True)
    out[TIMESTAMP] = ts.as_unit("ns")
    out["symbol"] = normalize_symbol(symbol)
    out["venue"] = venue.lower()
    out["interval"] = normalize_interval(interval)
    for column in VALUE_COLUMNS:
        if column not in frame:
            out[column] = pd.array([pd.NA] * len(out), dtype="Int64") if column == "trades" else np.nan
        elif column == "trades":
            out[column] = pd.array(np.asarray(frame[column], dtype="float64"), dtype="Int64")
        else:
            out[column] = np.asarray(frame[column], dtype="float64")
    return out
