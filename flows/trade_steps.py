"""What ``mmops trade`` and the demo share: settings, the bars to replay (read by
:mod:`trading.worker.replay`), the signal source, the control API beside the worker, and the
demo's replay of the newest day.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from features.errors import ConfigError
from features.schema import normalize_symbol
from flows.params import Params
from flows.settings import Locations
from trading.worker.replay import ReplayData

if TYPE_CHECKING:
    from serving.control.api import Tokens
    from serving.control.views import ControlContext
    from trading.worker.live import LiveRun
    from trading.worker.loop import WorkerSettings
    from trading.worker.run import PaperRun, TradeReport
    from trading.worker.types import SignalSource


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
    """:func:`trading.worker.replay.replay_data` on this home's store and params."""
    from trading.worker.replay import replay_data as read_replay

    return read_replay(
        where.bars, params.features, replay=replay, symbols=symbols, interval=interval, start=start, end=end
    )


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


@dataclass(frozen=True)
class ApiOptions:
    """Where the control API listens beside the worker, its tokens, and who hears its address."""

    host: str
    port: int
    tokens: Tokens
    on_start: Callable[[str], None] = lambda _url: None


def control_context(run: PaperRun) -> ControlContext:
    """What the control API needs besides the journal, from the run."""
    import numpy as np

    from serving.control.views import ControlContext

    s = run.settings
    stamps = np.unique(np.concatenate([f["timestamp"].to_numpy() for f in run.frames.values()]))
    return ControlContext(
        journal=run.journal,
        symbols=tuple(run.frames),
        quote=s.quote,
        risk=s.risk,
        backtest=s.backtest,
        ticks_total=len(stamps),
    )


def live_control_context(run: LiveRun) -> ControlContext:
    """What the control API needs besides the journal, for a live run (no last tick)."""
    from serving.control.views import ControlContext

    s = run.settings
    return ControlContext(
        journal=run.journal,
        symbols=tuple(run.markets),
        quote=s.quote,
        risk=s.risk,
        backtest=s.backtest,
        ticks_total=None,
    )


@contextlib.asynccontextmanager
async def _control_api(context: Callable[[], ControlContext], api: ApiOptions | None) -> AsyncIterator[None]:
    if api is None:
        yield
        return
    from serving.control.api import create_app
    from serving.control.server import serving

    async with serving(create_app(context(), api.tokens), host=api.host, port=api.port) as url:
        api.on_start(url)
        yield


async def replay_and_close(
    run: PaperRun, source: SignalSource | None, *, api: ApiOptions | None = None
) -> TradeReport:
    """Run (or resume) a paper replay, with the control API on the same loop when ``api`` is
    given, then close the signal source whatever happened."""
    from trading.worker.run import run_paper

    try:
        async with _control_api(lambda: control_context(run), api):
            result, _worker = await run_paper(run, source)
        return result
    finally:
        if source is not None:
            await source.close()


async def trade_live(
    params: Params,
    *,
    venue: str,
    exchange_id: str,
    sandbox: bool,
    symbols: list[str],
    interval: str,
    journal: Path,
    source: SignalSource | None,
    max_ticks: int | None,
    api: ApiOptions | None = None,
) -> TradeReport:
    """A live run (``mmops trade --replay live`` or ``--venue ccxt``): the exchange built, its
    markets resolved, the venue opened, the run started or resumed; everything closed after.

    Raises:
        ConfigError: an unknown exchange or market, missing keys, no sandbox, units that differ.
        VenueAmbiguous: the exchange could not be reached to start (try again).
    """
    from trading.worker.ccxt_exchange import close_exchange, make_exchange, resolve_markets
    from trading.worker.ccxt_venue import CcxtVenue, state_path
    from trading.worker.live import LiveRun, run_live, run_tag
    from trading.worker.orders import order_prefix

    exchange = make_exchange(exchange_id, sandbox=sandbox, keys_from_env=venue == "ccxt")
    live_venue = None
    try:
        markets = await resolve_markets(exchange, symbols)
        settings = worker_settings(params, interval)
        if venue == "ccxt":
            live_venue = await CcxtVenue.open(
                exchange,
                symbols=list(markets),
                backtest=settings.backtest,
                db=state_path(journal),
                client_prefix=order_prefix(settings.trade, run_tag(journal)),
            )
        run = LiveRun(
            markets=markets, interval=interval, settings=settings, journal=journal, max_ticks=max_ticks
        )
        async with _control_api(lambda: live_control_context(run), api):
            result, _worker = await run_live(run, exchange=exchange, venue=live_venue, source=source)
        return result
    finally:
        if live_venue is not None:
            live_venue.close()
        if source is not None:
            await source.close()
        await close_exchange(exchange)
