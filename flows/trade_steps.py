"""What ``mmops trade`` and the demo share: the bars to replay and the signal source.

``--replay store`` reads the validated bar store; a path reads a Binance dump (a zip or a
folder of them) or any OHLCV file the ingest reads (columns detected, as ``mmops ingest``);
a tick capture (``.gz``, or a folder of them) is replayed event by event (:func:`tick_capture`).
History before the first traded bar warms the online features up and is never traded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from features.errors import ConfigError, DataError
from features.schema import normalize_interval, normalize_symbol
from flows.params import Params
from flows.settings import Locations
from trading.ticks import TickData, read_ticks, select_capture

if TYPE_CHECKING:
    from trading.worker.loop import WorkerSettings
    from trading.worker.run import PaperRun, TradeReport
    from trading.worker.types import SignalSource

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


def worker_settings(params: Params, interval: str, *, speed: float | None = None) -> WorkerSettings:
    """The worker's settings from params.yaml (quote, risk, backtest, trade, features)."""
    from trading.worker.loop import WorkerSettings

    return WorkerSettings(
        quote=params.quote,
        risk=params.risk,
        backtest=params.backtest,
        trade=params.trade,
        features=params.features.for_interval(interval),
        speed=speed,
    )


def parse_symbols(text: str) -> list[str]:
    symbols = [normalize_symbol(s) for s in text.split(",") if s.strip()]
    if not symbols:
        raise ConfigError("--symbols: give at least one symbol, e.g. BTCUSDT or BTCUSDT,ETHUSDT")
    if len(set(symbols)) != len(symbols):
        raise ConfigError(f"--symbols: {text!r} names a symbol twice")
    return symbols


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
    where: Locations,
    params: Params,
    *,
    replay: str,
    symbols: list[str],
    interval: str | None,
    start: str | None,
    end: str | None,
) -> ReplayData:
    """The bars of ``symbols`` from the store (``replay="store"``) or a file/dump path.

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
    warmup = max(params.features.for_interval(ivl).resolved_windows) + 1 + WARMUP_EXTRA_BARS
    all_bars = (
        _read_store(where, symbols, ivl) if replay == "store" else _read_path(Path(replay), symbols, ivl)
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


def _time(name: str, value: str | None) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        t = pd.Timestamp(value)
    except ValueError as exc:
        raise ConfigError(f"{name} {value!r}: not a timestamp such as 2026-03-01T00:00") from exc
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _read_store(where: Locations, symbols: list[str], interval: str) -> dict[str, pd.DataFrame]:
    from features.pipeline import resolve_venue
    from features.store import BarStore

    store = BarStore(where.bars)
    out = {}
    for sym in symbols:
        if not any(k.symbol == sym and k.interval == interval for k in store.series()):
            known = ", ".join(str(k) for k in store.series()) or "none"
            raise DataError(
                f"no {sym} {interval} bars in {where.bars} (stored: {known}); run `mmops ingest` first"
            )
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


def champion_source(where: Locations, params: Params) -> SignalSource | None:
    """The served model set in this process (no HTTP), or None when there is no champion."""
    from flows.cli_governance import serve_settings
    from flows.training_steps import model_name, open_registry
    from training.registry import GovernanceError

    try:
        aliases = open_registry(where).aliases(model_name(params, None))
    except GovernanceError:  # nothing registered yet
        return None
    if "champion" not in aliases:
        return None
    from serving.engine import engine_from_settings
    from serving.worker_source import EngineSignalSource

    settings = serve_settings(where, params, model=None, canary=None, shadow=False)
    engine = engine_from_settings(settings)
    engine.start()
    return EngineSignalSource(engine)


def newest_day_replay(where: Locations, params: Params) -> tuple[TradeReport, str]:
    """The demo's last step: a paper replay of the primary series' newest stored day through the
    worker, on the champion when one is approved, model-free otherwise. Returns (report, replay)."""
    import asyncio

    from trading.worker.run import PaperRun, paper_paths

    primary = params.data.datasets[0]
    if not primary.symbol or not primary.interval:
        raise ConfigError("the first dataset in params.yaml has no symbol/interval to replay")
    data = replay_data(
        where,
        params,
        replay="store",
        symbols=[primary.symbol],
        interval=primary.interval,
        start=None,
        end=None,
    )
    journal = where.home / "trading" / "demo-journal.db"
    for path in (journal, *paper_paths(journal)):  # each demo replays afresh
        for suffix in ("", "-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
    run = PaperRun(
        frames=data.frames,
        interval=data.interval,
        settings=worker_settings(params, data.interval),
        journal=journal,
        history=data.history,
    )
    return asyncio.run(replay_and_close(run, champion_source(where, params))), data.describe()


async def replay_and_close(run: PaperRun, source: SignalSource | None) -> TradeReport:
    """Run (or resume) a paper replay, then close the signal source whatever happened."""
    from trading.worker.run import run_paper

    try:
        result, _worker = await run_paper(run, source)
        return result
    finally:
        if source is not None:
            await source.close()


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
