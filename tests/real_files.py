"""Files as users bring them, built at test time from the real shared data (never committed).

Each builder writes into a folder the test owns and returns the path, so the same layouts
serve the reader's unit tests, the fuzz test and the CLI acceptance tests.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd

BERLIN = "Europe/Berlin"


def freqtrade(source_data: Path, name: str) -> pd.DataFrame:
    """One shared freqtrade feather (``date`` UTC, open..volume)."""
    return pd.read_feather(source_data / "ohlcv" / name)


def btc_5m_over_fall_back(source_data: Path) -> pd.DataFrame:
    """288 real BTC/USDT 5m bars, 2024-10-26 12:00 to 2024-10-27 11:55 UTC: Berlin's clocks go
    back from 03:00 to 02:00 on 2024-10-27, so the local times 02:00..02:55 occur twice."""
    bars = freqtrade(source_data, "binance_BTC_USDT-5m_2024-03-01_2025-07-02.feather")
    window = bars[(bars["date"] >= "2024-10-26 12:00") & (bars["date"] < "2024-10-27 12:00")]
    return window.reset_index(drop=True)


def local_parquet(bars: pd.DataFrame, path: Path, *, tz: str = BERLIN) -> Path:
    """The issue's Parquet: ``timestamp, symbol, open, high, low, close, volume``, naive local times."""
    frame = pd.DataFrame(
        {
            "timestamp": bars["date"].dt.tz_convert(tz).dt.tz_localize(None),
            "symbol": "BTCUSDT",
            **{c: bars[c] for c in ("open", "high", "low", "close", "volume")},
        }
    )
    frame.to_parquet(path, index=False)
    return path


def kraken_lines(source_data: Path, name: str = "XBTUSD_1440.csv") -> list[str]:
    return (source_data / "kraken-daily" / name).read_text().splitlines()


def kline_lines(source_data: Path, month: str = "2026-03", rows: int | None = None) -> list[str]:
    """The real headerless Binance kline rows of one monthly dump (microsecond open times)."""
    with zipfile.ZipFile(source_data / "binance-spot-1m" / f"BTCUSDT-1m-{month}.zip") as archive:
        lines = archive.read(archive.namelist()[0]).decode().splitlines()
    return lines[:rows] if rows else lines


def hourly_from_klines(source_data: Path, *, hours: int = 240) -> pd.DataFrame:
    """Real 1m klines of March 2026 aggregated to hours: open, high, low, close, volume, quote, trades."""
    rows = [line.split(",") for line in kline_lines(source_data, rows=hours * 60)]
    minute = pd.DataFrame(
        {
            "ts": pd.to_datetime([int(r[0]) for r in rows], unit="us", utc=True),
            "open": [float(r[1]) for r in rows],
            "high": [float(r[2]) for r in rows],
            "low": [float(r[3]) for r in rows],
            "close": [float(r[4]) for r in rows],
            "volume": [float(r[5]) for r in rows],
            "quote_volume": [float(r[7]) for r in rows],
            "trades": [int(r[8]) for r in rows],
        }
    )
    how = {"open": "first", "high": "max", "low": "min", "close": "last"}
    hourly = minute.resample("1h", on="ts").agg(
        {**how, "volume": "sum", "quote_volume": "sum", "trades": "sum"}
    )
    return hourly.reset_index().rename(columns={"ts": "timestamp"})


def cryptodatadownload_csv(hourly: pd.DataFrame, path: Path, *, switch_format_at: int | None = None) -> Path:
    """A CryptoDataDownload-style file: URL line, header, newest row first, ``unix`` in ms and a
    ``date`` column whose format changes part-way (``2026-03-01 01-PM`` before ``switch_format_at``
    rows from the oldest, ``2026-03-01 13:00:00`` after)."""
    lines = [
        "https://www.CryptoDataDownload.com",
        "unix,date,symbol,open,high,low,close,Volume BTC,Volume USDT,tradecount",
    ]
    for i, row in enumerate(hourly.itertuples(index=False)):
        old_style = switch_format_at is not None and i < switch_format_at
        date = row.timestamp.strftime("%Y-%m-%d %I-%p" if old_style else "%Y-%m-%d %H:%M:%S")
        lines.append(
            f"{row.timestamp.value // 1_000_000},{date},BTC/USDT,{row.open!r},{row.high!r},{row.low!r},"
            f"{row.close!r},{row.volume!r},{row.quote_volume!r},{row.trades}"
        )
    path.write_text("\n".join([*lines[:2], *reversed(lines[2:])]) + "\n")
    return path


def newest_first_csv(bars: pd.DataFrame, path: Path, *, duplicates: tuple[int, ...] = ()) -> Path:
    """``date,open,high,low,close,volume`` newest first; the rows at ``duplicates`` (0-based, in
    time order) appear twice, right after themselves."""
    lines = []
    for i, row in enumerate(bars.itertuples(index=False)):
        line = f"{row.date.isoformat()},{row.open!r},{row.high!r},{row.low!r},{row.close!r},{row.volume!r}"
        lines += [line, line] if i in duplicates else [line]
    path.write_text("date,open,high,low,close,volume\n" + "\n".join(reversed(lines)) + "\n")
    return path


def canonical_rows(bars: pd.DataFrame) -> pd.DataFrame:
    """A freqtrade frame as the canonical columns it fills (for comparing with what was read)."""
    return bars.rename(columns={"date": "timestamp"})[["timestamp", "open", "high", "low", "close", "volume"]]
