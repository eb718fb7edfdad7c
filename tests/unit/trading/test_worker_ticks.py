"""The worker on a tick capture: a paper tick replay through the venue interface and the journal
gives the tick backtest's fills (time, side, price, lots, fee) and final equity exactly, and a
replay stopped half way and resumed from its files gives the uninterrupted run's fills.

Everything is compared with ``==``: the worker and the venue run the tick kernel's own compiled
pieces on the same integers, and book cash with the same float operations in the same order,
so any difference is a bug, not round-off.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.config import FeaturesConfig
from trading.config import BacktestConfig, QuoteConfig, RiskConfig, TradeConfig
from trading.tick_backtest import run_tick_backtest
from trading.tick_engine import CASH
from trading.ticks import TickData, read_ticks
from trading.worker.journal import Journal
from trading.worker.loop import WorkerSettings
from trading.worker.paper_ticks import PaperTickVenue, TickReplay
from trading.worker.tick_loop import TickWorker

COLUMNS = ["timestamp", "side", "price", "lots", "fee"]
B = BacktestConfig()  # latency 50 ms, requote_on_fill, haircut 1 tick
# quotes close enough to the touch that the replay fills a few hundred times
TIGHT = QuoteConfig(max_spread_ticks=30, order_lots=5)
SMALL_BOOK = RiskConfig(max_position_lots=20)


@dataclass(frozen=True)
class Case:
    quote: QuoteConfig
    risk: RiskConfig
    backtest: BacktestConfig
    requote_on_bbo: bool = False


@pytest.fixture(scope="module")
def capture(ticks_dir: Path) -> TickData:
    return read_ticks([ticks_dir / "spot_btcusdt_20240808.gz"])  # BTCUSDT spot, ~6 minutes


def first_seconds(data: TickData, seconds: float) -> TickData:
    """The capture's first ``seconds`` (both streams cut at the same capture time)."""
    end = int(data.bbo["local_ns"].iloc[0]) + int(seconds * 1e9)
    bbo = data.bbo[data.bbo["local_ns"] < end].reset_index(drop=True)
    trades = data.trades[data.trades["local_ns"] < end].reset_index(drop=True)
    return TickData(data.symbol, bbo, trades, data.tick_size, data.files)


def make_worker(data: TickData, case: Case, folder: Path) -> tuple[TickWorker, Journal, PaperTickVenue]:
    replay = TickReplay.from_capture(
        data, quote=case.quote, risk=case.risk, backtest=case.backtest, requote_on_bbo=case.requote_on_bbo
    )
    settings = WorkerSettings(
        quote=case.quote,
        risk=case.risk,
        backtest=case.backtest,
        trade=TradeConfig(),
        features=FeaturesConfig().for_interval("1m"),
    )
    venue = PaperTickVenue(replay, db=folder / "venue.db")
    journal = Journal(folder / "journal.db")
    return TickWorker(replay=replay, venue=venue, journal=journal, settings=settings), journal, venue


def journal_fills(journal: Journal, tick: float) -> pd.DataFrame:
    f = pd.DataFrame(journal.fills(), columns=["ts_ns", "side", "price_ticks", "lots", "fee", "maker"])
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(f["ts_ns"].astype(np.int64), utc=True),
            "side": np.where(f["side"] > 0, "buy", "sell"),
            "price": f["price_ticks"] * tick,
            "lots": f["lots"].astype(np.int64),
            "fee": f["fee"].astype(np.float64),
        }
    )


def backtest_of(data: TickData, case: Case) -> tuple[pd.DataFrame, float, pd.DataFrame]:
    res = run_tick_backtest(
        data, quote=case.quote, risk=case.risk, backtest=case.backtest, requote_on_bbo=case.requote_on_bbo
    )
    return res.trades[COLUMNS].reset_index(drop=True), res.metrics.final_equity, res.trades


CASES = {
    "default": (Case(QuoteConfig(), RiskConfig(), B), 10),
    "participation 0.3": (
        Case(QuoteConfig(), RiskConfig(), B.model_copy(update={"max_participation": 0.3})),
        20,
    ),
    "requote on fill, latency 250 ms": (
        Case(TIGHT, SMALL_BOOK, B.model_copy(update={"requote_on_fill": True, "latency_ms": 250})),
        100,
    ),
    "tight, participation 0.3, latency 0": (
        Case(TIGHT, SMALL_BOOK, B.model_copy(update={"max_participation": 0.3, "latency_ms": 0})),
        100,
    ),
    # a loss of 3 latches the kill switch: flattens at the touch (taker), and again after the
    # fills of the quotes still arriving within the latency
    "kill switch flatten": (
        Case(TIGHT, RiskConfig(max_loss=3.0, max_position_lots=20), B.model_copy(update={"latency_ms": 250})),
        20,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_paper_tick_replay_gives_the_tick_backtests_fills_and_equity(
    name: str, capture: TickData, tmp_path: Path
) -> None:
    case, at_least = CASES[name]
    expected, equity, trades = backtest_of(capture, case)
    assert len(expected) >= at_least  # the comparison is about real fills
    worker, journal, venue = make_worker(capture, case, tmp_path)
    asyncio.run(worker.run())
    got = journal_fills(journal, case.backtest.tick_size)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert worker.equity() == equity
    assert worker.finished
    assert venue.sf[CASH] == worker.state.fs[CASH]  # the venue's account is the worker's book
    if name == "kill switch flatten":
        takers = int((trades["liquidity"] == "taker").sum())
        assert takers == 2
        assert sum(1 for f in journal.fills() if not f["maker"]) == takers
        assert any("HALTED" in e["message"] for e in journal.events(("risk",)))


def test_requote_on_every_bbo_move_on_the_first_150_seconds(capture: TickData, tmp_path: Path) -> None:
    data = first_seconds(capture, 150.0)  # every best bid/ask move is a wake-up: keep it short
    case = Case(TIGHT, SMALL_BOOK, B.model_copy(update={"latency_ms": 100, "max_participation": 0.5}), True)
    expected, equity, _ = backtest_of(data, case)
    assert len(expected) >= 20
    worker, journal, _venue = make_worker(data, case, tmp_path)
    asyncio.run(worker.run())
    pd.testing.assert_frame_equal(journal_fills(journal, case.backtest.tick_size), expected, check_exact=True)
    assert worker.equity() == equity
    assert worker.next_tick > 2 * worker.tick_replay.n_steps  # it did wake on the BBO moves


def test_a_replay_stopped_half_way_resumes_from_its_files(capture: TickData, tmp_path: Path) -> None:
    case = Case(TIGHT, SMALL_BOOK, B.model_copy(update={"latency_ms": 250, "max_participation": 0.3}))
    whole, journal, venue = make_worker(capture, case, tmp_path / "whole")
    asyncio.run(whole.run())
    expected = journal_fills(journal, case.backtest.tick_size)
    half = whole.next_tick // 2
    journal.close()
    venue.close()

    first, journal, venue = make_worker(capture, case, tmp_path / "split")
    assert asyncio.run(first.run(max_ticks=half)) == half
    assert not first.finished
    assert len(journal.open_orders()) > 0  # it stopped with orders working on the venue
    early = len(journal.fills())
    journal.close()
    venue.close()

    second, journal, venue = make_worker(capture, case, tmp_path / "split")
    found = asyncio.run(second.start())
    assert found["resumed"] and found["next_tick"] == half
    assert second.state.inventory(0) == first.state.inventory(0)
    asyncio.run(second.run())
    got = journal_fills(journal, case.backtest.tick_size)
    assert 0 < early < len(got)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert second.equity() == whole.equity()
    assert second.next_tick == whole.next_tick


def test_the_journal_refuses_another_runs_settings(capture: TickData, tmp_path: Path) -> None:
    from features.errors import ConfigError

    worker, journal, venue = make_worker(capture, Case(QuoteConfig(), RiskConfig(), B), tmp_path)
    asyncio.run(worker.run(max_ticks=3))
    journal.close()
    venue.close()
    other, _journal, _venue = make_worker(
        capture, Case(QuoteConfig(), RiskConfig(), B.model_copy(update={"latency_ms": 10})), tmp_path
    )
    with pytest.raises(ConfigError, match="journal of another run"):
        asyncio.run(other.start())


def test_the_kill_switch_and_resume_on_a_tick_replay(capture: TickData, tmp_path: Path) -> None:
    case = Case(TIGHT, SMALL_BOOK, B)
    worker, journal, venue = make_worker(capture, case, tmp_path)
    asyncio.run(worker.run(max_ticks=100))
    journal.set_control("kill", '{"by": "test", "reason": "drill"}')
    asyncio.run(worker.run(max_ticks=40))
    row = worker.status()["books"]["live"][worker.symbols[0]]
    assert row["status"] == "HALTED" and "kill_switch" in row["reasons"] and row["inventory_lots"] == 0
    killed_at = worker.next_tick
    events = [e["message"] for e in journal.events(("risk",))]
    assert any("kill switch pressed: cancel all, flatten" in m for m in events)  # the reason, in words
    journal.set_control("resume", '{"by": "test", "reason": "drill over"}')
    asyncio.run(worker.run())
    assert journal.events(("resume",)) and journal.control("kill") is None
    quoted = [o for o in journal.orders() if o.tick > killed_at and o.kind == "limit"]
    assert quoted  # quoting again after a person cleared it
    journal.close()
    venue.close()
