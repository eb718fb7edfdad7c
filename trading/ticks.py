"""Raw Binance websocket captures (``<local_timestamp_ns> <json>`` per line, gzip) as BBO and trades.

Only the two streams the fill model needs are decoded: ``@bookTicker`` (best bid/ask, complete)
and ``@trade`` (``m`` = the buyer is the maker, so the aggressor sold). Book diffs (``@depth``)
and REST snapshots are checked for the line shape and skipped. Every line must be
``<integer ns> <json object>``; anything else raises :class:`DataError` naming the file and line.

Times are integer ns: ``local_ns`` is the capture clock (the only clock shared by both streams,
so events are ordered by it); ``exch_ns`` is the exchange trade time (what Binance klines bin
by). The capture clock of the shipped files runs about 1.27 s behind the exchange clock; the two
are never mixed in one comparison.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.errors import ConfigError, DataError

_DATE_SUFFIX = re.compile(r"_\d{8}$")


@dataclass(frozen=True)
class TickData:
    """One instrument's BBO updates and trades, sorted by ``local_ns``.

    ``bbo`` columns: ``local_ns`` (int64), ``bid``, ``ask`` (prices), ``bid_qty``, ``ask_qty``
    (base ccy). ``trades`` columns: ``local_ns``, ``exch_ns`` (int64), ``price``, ``qty`` (base
    ccy), ``side`` (int64: +1 the aggressor bought and lifted the ask, -1 it sold and hit the bid).
    ``tick_size`` is the price increment (inferred from the prices unless given).
    """

    symbol: str
    bbo: pd.DataFrame
    trades: pd.DataFrame
    tick_size: float
    files: tuple[str, ...]

    @property
    def duration_s(self) -> float:
        """Seconds from the first to the last event on the capture clock."""
        first = min(int(self.bbo["local_ns"].iloc[0]), int(self.trades["local_ns"].iloc[0]))
        last = max(int(self.bbo["local_ns"].iloc[-1]), int(self.trades["local_ns"].iloc[-1]))
        return (last - first) / 1e9


def instrument_name(path: Path) -> str:
    """``spot_btcusdt_20240808.gz`` -> ``spot_btcusdt`` (the capture files of one instrument)."""
    stem = path.name.removesuffix(".gz")
    return _DATE_SUFFIX.sub("", stem)


def select_capture(path: Path, symbol: str) -> tuple[str, list[Path]]:
    """The one capture under ``path`` for ``symbol`` (``BTCUSDT`` or a capture name such as
    ``spot_btcusdt``): its name and files.

    Raises:
        ConfigError: no capture, or several (e.g. spot and futures), match ``symbol``.
    """
    groups = group_tick_files(path)
    names = [n for n in groups if n == symbol.lower() or n.endswith("_" + symbol.lower())]
    if len(names) != 1:
        raise ConfigError(
            f"--ticks {path}: {len(names)} captures of {symbol} among {sorted(groups)}; "
            "pass one instrument's .gz file(s), or its capture name as --symbol (e.g. spot_btcusdt)"
        )
    return names[0], groups[names[0]]


def group_tick_files(path: Path) -> dict[str, list[Path]]:
    """The capture files under ``path`` (a file or a folder of ``*.gz``), grouped by instrument.

    Raises:
        DataError: nothing to read at ``path``.
    """
    if path.is_dir():
        files = sorted(path.glob("*.gz"))
    elif path.is_file():
        files = [path]
    else:
        raise DataError(f"{path}: no such file or folder of tick captures")
    if not files:
        raise DataError(f"{path}: no *.gz tick captures in this folder")
    groups: dict[str, list[Path]] = {}
    for file in files:
        groups.setdefault(instrument_name(file), []).append(file)
    return groups


def _field(data: dict[str, Any], key: str, where: str) -> Any:
    try:
        return data[key]
    except KeyError as exc:
        raise DataError(f"{where}: field {key!r} missing") from exc


def _parse_lines(
    lines: Iterable[str], name: str
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], set[str]]:
    bbo: list[tuple[Any, ...]] = []
    trades: list[tuple[Any, ...]] = []
    symbols: set[str] = set()
    for lineno, line in enumerate(lines, start=1):
        where = f"{name}:{lineno}"
        head, sep, body = line.partition(" ")
        if not sep or not head.isdigit() or not body.lstrip().startswith("{"):
            raise DataError(f"{where}: expected '<local_timestamp_ns> <json object>', got {line[:60]!r}")
        stream_end = body.find('"', 12)  # '{"stream":"btcusdt@trade", ...': the name ends here
        prefix = body[: max(stream_end, 0) + 1]
        is_bbo, is_trade = "@bookTicker" in prefix, "@trade" in prefix
        if not (is_bbo or is_trade):
            continue
        try:
            data = _field(json.loads(body), "data", where)
            symbols.add(str(_field(data, "s", where)))
            if is_bbo:
                row = (
                    int(head),
                    float(_field(data, "b", where)),
                    float(_field(data, "a", where)),
                    float(_field(data, "B", where)),
                    float(_field(data, "A", where)),
                )
                bbo.append(row)
            else:
                trades.append(
                    (
                        int(head),
                        int(_field(data, "T", where)) * 1_000_000,
                        float(_field(data, "p", where)),
                        float(_field(data, "q", where)),
                        -1 if _field(data, "m", where) else 1,
                    )
                )
        except (json.JSONDecodeError, TypeError, ValueError) as exc:
            if isinstance(exc, DataError):
                raise
            raise DataError(
                f"{where}: malformed {'bookTicker' if is_bbo else 'trade'} message ({exc})"
            ) from exc
    return bbo, trades, symbols


def infer_tick_size(prices: np.ndarray) -> float:
    """The price increment: the smallest gap between distinct prices, to 6 significant digits
    (the decimal prices parse to binary floats, so a gap of 0.01 reads as 0.009999999995)."""
    gaps = np.diff(np.unique(prices))
    gaps = gaps[gaps > 0]
    if len(gaps) == 0:
        raise DataError("tick captures: fewer than two distinct prices, cannot infer the tick size")
    return float(f"{gaps.min():.6g}")


def read_ticks(paths: Sequence[Path], *, tick_size: float | None = None) -> TickData:
    """Read the capture files of one instrument (e.g. the two days of ``spot_btcusdt``).

    Args:
        paths: gzip capture files of the same instrument, any order.
        tick_size: price increment; None infers it from the prices.

    Returns:
        BBO and trades sorted by the capture clock.

    Raises:
        DataError: a malformed line (the message names file and line), files of different
            symbols, or no BBO or no trades at all.
    """
    bbo: list[tuple[Any, ...]] = []
    trades: list[tuple[Any, ...]] = []
    symbols: set[str] = set()
    for path in sorted(paths):
        try:
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                b, t, s = _parse_lines(fh, str(path))
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: not a readable gzip text capture ({exc})") from exc
        bbo += b
        trades += t
        symbols |= s
    names = ", ".join(str(p) for p in paths)
    if len(symbols) > 1:
        raise DataError(f"{names}: several symbols {sorted(symbols)}; read one instrument at a time")
    if not bbo or not trades:
        raise DataError(
            f"{names}: need both @bookTicker and @trade messages, got {len(bbo)} and {len(trades)}"
        )
    bbo_frame = pd.DataFrame(bbo, columns=["local_ns", "bid", "ask", "bid_qty", "ask_qty"])
    trade_frame = pd.DataFrame(trades, columns=["local_ns", "exch_ns", "price", "qty", "side"])
    bbo_frame = bbo_frame.sort_values("local_ns", kind="stable", ignore_index=True)
    trade_frame = trade_frame.sort_values("local_ns", kind="stable", ignore_index=True)
    if tick_size is None:
        tick_size = infer_tick_size(
            np.concatenate([bbo_frame["bid"].to_numpy(), bbo_frame["ask"].to_numpy()])
        )
    return TickData(
        symbol=symbols.pop(),
        bbo=bbo_frame,
        trades=trade_frame,
        tick_size=tick_size,
        files=tuple(str(p) for p in sorted(paths)),
    )


def trade_bars(trades: pd.DataFrame, *, bar_ns: int = 60_000_000_000) -> pd.DataFrame:
    """OHLCV bars from trades, binned by exchange time like Binance klines.

    Only complete bars are kept (the first and last bar of the capture are partial).

    Returns:
        Columns ``open_ns`` (int64), ``open``, ``high``, ``low``, ``close``, ``volume``,
        ``taker_buy_volume`` (base ccy), ``trades``; one row per bar with at least one trade.

    Raises:
        DataError: fewer than three bars (nothing complete is left).
    """
    t = trades.sort_values("exch_ns", kind="stable")
    bar = t["exch_ns"].to_numpy() // bar_ns
    grouped = t.assign(bar=bar, buy=np.where(t["side"] > 0, t["qty"], 0.0)).groupby("bar")
    bars = grouped.agg(
        open=("price", "first"),
        high=("price", "max"),
        low=("price", "min"),
        close=("price", "last"),
        volume=("qty", "sum"),
        taker_buy_volume=("buy", "sum"),
        trades=("price", "size"),
    )
    if len(bars) < 3:
        raise DataError(f"trades cover {len(bars)} bars of {bar_ns / 1e9:g} s; need 3 (two are partial)")
    bars = bars.iloc[1:-1]
    return bars.assign(open_ns=bars.index.to_numpy() * bar_ns).reset_index(drop=True)
