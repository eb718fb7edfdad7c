"""The presets: well-known public OHLCV layouts, and what their file names say.

A preset fills what a :class:`~features.sources.layout.FileLayout` leaves open: where the
columns are (by name, or by position when the file has no header), the unit of the times, and
how ``symbol``, ``interval`` and ``venue`` are read out of the file name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal

from features.schema import TIMESTAMP

TimeUnit = Literal["auto", "s", "ms", "us", "ns", "datetime"]
PresetName = Literal["freqtrade", "kraken", "cryptodatadownload", "ccxt", "binance-kline-csv"]
Source = str | int  # a header name, or a 0-based position


@dataclass(frozen=True, slots=True)
class Preset:
    """A well-known public layout: where its columns are and what its file names say.

    Attributes:
        name: the ``--preset`` value.
        description: one line for ``--help``.
        columns: canonical column -> source (name, or 0-based position when the file has no header).
        optional: canonical columns of ``columns`` that a file of this layout may lack.
        time_unit: unit of the timestamp column.
        header: whether files have a header row (None: detect).
        name_pattern: parses ``symbol``, ``interval`` and ``venue`` out of the file name.
        venue: the venue when the name does not say it.
        interval_aliases: interval spellings of the file names -> canonical intervals.
        interval_minutes_in_name: the name's interval is a number of minutes (``XBTUSD_1440.csv``).
        name_example: a file name ``name_pattern`` reads.
    """

    name: str
    description: str
    columns: Mapping[str, Source] = field(default_factory=dict)
    optional: frozenset[str] = frozenset()
    time_unit: TimeUnit = "auto"
    header: bool | None = None
    name_pattern: re.Pattern[str] | None = None
    venue: str | None = None
    interval_aliases: Mapping[str, str] = field(default_factory=dict)
    interval_minutes_in_name: bool = False
    name_example: str | None = None


_POSITIONAL_OHLCV: Final = {TIMESTAMP: 0, "open": 1, "high": 2, "low": 3, "close": 4, "volume": 5}
PRESETS: Final[Mapping[str, Preset]] = MappingProxyType(
    {
        "freqtrade": Preset(
            "freqtrade",
            "freqtrade feather/parquet: date (UTC), open, high, low, close, volume",
            columns={TIMESTAMP: "date"},
            name_pattern=re.compile(
                r"^(?P<venue>[a-z0-9]+)_(?P<symbol>[A-Z0-9]+_[A-Z0-9]+)-(?P<interval>\d+[mhdw])"
            ),
            name_example="binance_BTC_USDT-1h_2017-08-17_2024-04-21.feather",
        ),
        "kraken": Preset(
            "kraken",
            "Kraken OHLCVT export, no header: unix seconds, open, high, low, close, volume[, trades], "
            "with or without a trailing comma",
            columns={**_POSITIONAL_OHLCV, "trades": 6},
            optional=frozenset({"trades"}),
            time_unit="s",
            header=False,
            name_pattern=re.compile(r"^(?P<symbol>[A-Z0-9]+)_(?P<interval>\d+)\.csv"),
            venue="kraken",
            interval_minutes_in_name=True,
            name_example="XBTUSD_1440.csv",
        ),
        "cryptodatadownload": Preset(
            "cryptodatadownload",
            "CryptoDataDownload CSV: a URL line, then unix,date,symbol,open,high,low,close,"
            "Volume <base>,Volume <quote>,tradecount, newest first; the unix column is the time",
            columns={TIMESTAMP: "unix"},
            header=True,
            name_pattern=re.compile(
                r"^(?P<venue>[A-Za-z]+)_(?P<symbol>[A-Z0-9]+)_(?:\d{4}_)?(?P<interval>d|1d|1h|1hr|h|minute|1min|m)\."
            ),
            interval_aliases={
                "d": "1d",
                "1d": "1d",
                "1h": "1h",
                "1hr": "1h",
                "h": "1h",
                "minute": "1m",
                "1min": "1m",
                "m": "1m",
            },
            name_example="Binance_BTCUSDT_1h.csv",
        ),
        "ccxt": Preset(
            "ccxt",
            "a ccxt fetch_ohlcv dump: JSON [[ms, o, h, l, c, v], ...] or the same rows as CSV",
            columns=_POSITIONAL_OHLCV,
        ),
        "binance-kline-csv": Preset(
            "binance-kline-csv",
            "Binance kline CSV, with or without a header: open_time (ms or us), open, high, low, close, "
            "volume, close_time, quote_volume, count, taker_buy_volume, ...",
            columns={**_POSITIONAL_OHLCV, "quote_volume": 7, "trades": 8, "taker_buy_volume": 9},
            name_pattern=re.compile(
                r"^(?P<symbol>[A-Z0-9]+)-(?P<interval>\d+[smhdw])-\d{4}-\d{2}(?:-\d{2})?\."
            ),
            venue="binance",
            name_example="BTCUSDT-1m-2026-03.csv",
        ),
    }
)


__all__ = ["PRESETS", "Preset", "PresetName", "Source", "TimeUnit"]
