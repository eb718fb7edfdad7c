"""The market data of a paper replay: bars from the validated store, a Binance dump or any OHLCV
file the ingest reads, or a tick capture; with the history before the first traded bar that
warms the online features up (never traded).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.config import FeaturesConfig
from features.errors import ConfigError, DataError
from features.schema import normalize_interval
from trading.ticks import TickData, read_ticks, select_capture

WARMUP_EXTRA_BARS = 512  # beyond the feature windows: room for any model lookback the service asks for


@dataclass(frozen=True)
class ReplayData:
    """The bars of a replay: what is traded, and the warm-up before it."""

    frames: dict[str, pd.DataFrame]
    history: dict[str, pd.DataFrame]
    interval: str
    source: str

    def describe(self) -> str:
        first = min(f["timestamp"].iloc[0] for f in self.frames.values())
        last = max(f["timestamp"].iloc[-1] for f in self.frames.values())
        rows = sum(len(f) for f in self.frames.values())
        span = f"{first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC"
        return f"{self.source}: {', '.join(self.frames)} {self.interval}, {rows} bars, {span}"


def _window(
    bars: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp | None, warmup: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    ts = bars["timestamp"]
    if len(ts) < 2:
        raise DataError(f"{len(ts)} bar(s) in the series: a replay needs at least 2")
    last = end if end is not None else ts.iloc[-1]
    first = start if start is not None else last - pd.Timedelta(days=1) + (ts.iloc[1] - ts.iloc[0])
    traded = bars.loc[(ts >= first) & (ts <= last)].reset_index(drop=True)
    before = bars.loc[ts < first].tail(warmup).reset_index(drop=True)
    return traded, before


def replay_data(
    bars_root: Path,
    features: FeaturesConfig,
    *,
    replay: str,
    symbols: list[str],
    interval: str | None,
    start: str | None,
    end: str | None,
) -> ReplayData:
    """The bars of ``symbols`` from the store under ``bars_root`` (``replay="store"``) or a
    file/dump path; ``features`` (the params section) sets how much warm-up history is kept.

    Without ``start`` the replay is the newest day before ``end`` (default: the last bar).

    Raises:
        ConfigError: bad times, or a path that does not exist.
        DataError: a symbol has no bars in the range.
    """
    ivl = normalize_interval(interval or "1m")
    t0 = _time("--start", start)
    t1 = _time("--end", end)
    if t0 is not None and t1 is not None and t1 < t0:
        raise ConfigError(f"--end {end} is before --start {start}")
    warmup = warmup_bars(features, ivl)
    all_bars = (
        _read_store(bars_root, symbols, ivl) if replay == "store" else _read_path(Path(replay), symbols, ivl)
    )
    frames, history = {}, {}
    for sym, bars in all_bars.items():
        traded, before = _window(bars, t0, t1, warmup)
        if len(traded) < 2:
            raise DataError(
                f"{replay} {sym} {ivl}: {len(traded)} bars between {start or 'the newest day'} and {end or 'the end'}; need 2"
            )
        frames[sym], history[sym] = traded, before
    return ReplayData(
        frames=frames, history=history, interval=ivl, source="store" if replay == "store" else replay
    )


def warmup_bars(features: FeaturesConfig, interval: str) -> int:
    """Bars before the first tick a symbol's online features need (the longest window, plus slack)."""
    return max(features.for_interval(interval).resolved_windows) + 1 + WARMUP_EXTRA_BARS


def _time(name: str, value: str | None) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        t = pd.Timestamp(value)
    except ValueError as exc:
        raise ConfigError(f"{name} {value!r}: not a timestamp such as 2026-03-01T00:00") from exc
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _read_store(root: Path, symbols: list[str], interval: str) -> dict[str, pd.DataFrame]:
    from features.pipeline import resolve_venue
    from features.store import BarStore

    store = BarStore(root)
    out = {}
    for sym in symbols:
        if not any(k.symbol == sym and k.interval == interval for k in store.series()):
            known = ", ".join(str(k) for k in store.series()) or "none"
            raise DataError(f"no {sym} {interval} bars in {root} (stored: {known}); run `mmops ingest` first")
        out[sym] = store.read(resolve_venue(store, sym, interval, None), sym, interval)
    return out


def _read_path(path: Path, symbols: list[str], interval: str) -> dict[str, pd.DataFrame]:
    from features.sources.binance import dump_files, read_dumps
    from features.sources.files import read_file

    if not path.exists():
        raise ConfigError(f"--replay {path}: no such file or folder (or give --replay store)")
    if path.is_dir() or path.suffix == ".zip":
        files = dump_files(path)
        out = {}
        for sym in symbols:
            mine = [f for f in files if f.name.upper().startswith(f"{sym}-{interval}-".upper())]
            if not mine:
                raise DataError(f"--replay {path}: no {sym}-{interval}-*.zip dump files")
            out[sym] = read_dumps(mine).sort_values("timestamp", ignore_index=True)
        return out
    if len(symbols) != 1:
        raise ConfigError(f"--replay {path}: one file holds one series; give one symbol, not {symbols}")
    # the venue a file's bars came from does not matter to a paper replay (nor does its name)
    return {symbols[0]: read_file(path, symbol=symbols[0], interval=interval, venue="file")}


def tick_capture(replay: str, symbols: str) -> TickData | None:
    """The tick capture ``--replay`` names (a ``.gz`` capture, or a folder of them and one
    ``--symbols``: ``BTCUSDT`` or a capture name such as ``usdm_btcusdt``), or None when it names
    bars (the store, a dump, a bar file)."""
    path = Path(replay)
    if replay == "store" or not (path.name.endswith(".gz") or (path.is_dir() and any(path.glob("*.gz")))):
        return None
    names = [name.strip() for name in symbols.split(",") if name.strip()]
    if len(names) != 1:
        raise ConfigError(
            f"--replay {path}: a tick replay trades one instrument; give one symbol, not {names}"
        )
    _name, files = select_capture(path, names[0])
    return read_ticks(files)
