"""The live bar feed: a regular clock of ticks from an exchange's fetch_ohlcv, and a live run
over it that trades exactly like a replay of the same bars."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fake_exchange import FakeExchange, ManualClock
from worker_helpers import FILL_COLUMNS, journal_fills, paper, settings

from trading.backtest import engine_params
from trading.config import BacktestConfig
from trading.worker.feed import BarFeed
from trading.worker.journal import Journal
from trading.worker.loop import Worker

MIN_NS = 60_000_000_000


def exchange(bars: pd.DataFrame, clock: ManualClock) -> FakeExchange:
    """The fake exchange on the test's clock, serving ``bars`` as BTC/USDT (market id BTCUSDT)."""
    ex = FakeExchange(symbols={"BTCUSDT": "BTC/USDT"}, clock=clock)
    cols = ["timestamp", "open", "high", "low", "close", "volume"]
    ex.record(
        "BTC/USDT", [[int(t.value // 1_000_000), *rest] for t, *rest in bars[cols].itertuples(index=False)]
    )
    return ex


def _seconds(ts: pd.Timestamp) -> float:
    return ts.value / 1e9


@pytest.fixture
def day(btc_march: pd.DataFrame) -> pd.DataFrame:
    return btc_march.iloc[:1200].reset_index(drop=True)


def test_ticks_come_on_a_regular_clock_and_late_or_failed_bars_never_rewrite_the_past(
    day: pd.DataFrame,
) -> None:
    start = day["timestamp"].iloc[1000]
    clock = ManualClock(_seconds(start) + 2.5)  # bar 999 closed 2.5 s ago
    ex = exchange(day, clock)
    feed = BarFeed(
        ex, markets={"BTCUSDT": "BTC/USDT"}, interval="1m", backtest=BacktestConfig(), sleep=clock.sleep
    )
    feed.clock = clock

    async def go() -> list[Any]:
        replay, history = await feed.start(first_ns=None, warmup=200)
        assert len(replay) == 1 and int(replay.timeline[0]) == day["timestamp"].iloc[999].value
        assert len(history["BTCUSDT"]) == 200 and history["BTCUSDT"]["timestamp"].iloc[-1] < start
        out = [replay]
        ex.hide_bars.add(int(day["timestamp"].iloc[1001].value // 1_000_000))  # the exchange misses a bar
        ex.on("fetch_ohlcv", "unavailable", when=lambda n, _a: n == 2)  # and one poll fails: asked again
        for _ in range(2):
            out.append(await feed.next())
        ex.hide_bars.clear()  # the missed bar turns up late, after its tick went out without it
        for _ in range(3):
            out.append(await feed.next())
        return out

    replays = asyncio.run(go())
    last = replays[-1]
    assert len(last) == 6  # one tick per minute, whatever the exchange sent
    assert np.array_equal(np.diff(last.timeline), np.full(5, MIN_NS))
    assert last.has[:, 0].tolist() == [True, True, False, True, True, True]  # tick 2 has no bar
    for earlier in replays:  # every replay handed out is a prefix of the later ones
        n = len(earlier)
        assert np.array_equal(earlier.row_of, last.row_of[:n]) and np.array_equal(
            earlier.close, last.close[:n]
        )
    notes = [(pd.Timestamp(n.ts_ns, tz="UTC"), n.message) for n in feed.take_notes()]
    missed = day["timestamp"].iloc[1001]
    assert notes == [
        (missed, f"no bar from the exchange for the tick of {missed}"),
        (missed, f"bar {missed} came after its tick: dropped"),
    ]
    want = np.rint(day["close"].iloc[[999, 1000, 1002, 1003, 1004]].to_numpy() / 0.01)
    assert np.array_equal(last.close[last.has[:, 0], 0], want)  # the bars as sent, in ticks
    assert ex.count("fetch_ohlcv") == 1 + 5 + 1  # the start, one poll a tick, and the failed poll asked again


def test_a_worker_refuses_a_feed_that_rewrites_a_tick(day: pd.DataFrame, tmp_path: Path) -> None:
    from trading.worker.paper import PaperVenue, Replay

    s = settings()
    r1 = Replay.from_frames({"BTCUSDT": day.iloc[:10]}, interval="1m", backtest=s.backtest)
    r2 = Replay.from_frames({"BTCUSDT": day.iloc[:12].drop(index=[3])}, interval="1m", backtest=s.backtest)
    ep = engine_params(
        quote=s.quote, risk=s.risk, backtest=s.backtest, bar_ns=MIN_NS, need_signal=False, kill_from=10
    )
    venue = PaperVenue(r1, ep, db=tmp_path / "v.db")
    worker = Worker(replay=r1, venue=venue, journal=Journal(tmp_path / "j.db"), settings=s, open_ended=True)
    with pytest.raises(ValueError, match="the first 10 ticks changed"):
        worker.extend(r2)
    venue.close()


def test_paper_trading_on_a_live_feed_trades_like_the_replay_of_the_same_bars(
    day: pd.DataFrame, tmp_path: Path
) -> None:
    """The live loop (feed, extend, run_live) against the replay loop on the same 180 bars after
    the same warm-up: the same fills and equity, compared exactly."""
    s = settings()
    first = day["timestamp"].iloc[1000]
    traded = day.iloc[1000:1180].reset_index(drop=True)
    want, _ = paper({"BTCUSDT": traded}, tmp_path / "replay.db", s, history={"BTCUSDT": day.iloc[800:1000]})

    clock = ManualClock(_seconds(first) + 60 + 2.5)
    ex = exchange(day, clock)
    feed = BarFeed(ex, markets={"BTCUSDT": "BTC/USDT"}, interval="1m", backtest=s.backtest, sleep=clock.sleep)
    feed.clock = clock

    async def live() -> Worker:
        from trading.worker.paper import PaperVenue

        replay, history = await feed.start(first_ns=first.value, warmup=200)
        ep = engine_params(
            quote=s.quote,
            risk=s.risk,
            backtest=s.backtest,
            bar_ns=MIN_NS,
            need_signal=False,
            kill_from=10**12,
        )
        venue = PaperVenue(replay, ep, db=tmp_path / "live.db.venue.db")
        worker = Worker(
            replay=replay,
            venue=venue,
            journal=Journal(tmp_path / "live.db"),
            settings=s,
            history=history,
            open_ended=True,
        )
        await worker.run_live(feed, stop=asyncio.Event(), max_ticks=180)
        venue.close()
        worker.journal.close()
        return worker

    worker = asyncio.run(live())
    assert worker.next_tick == 180
    got = journal_fills(tmp_path / "live.db")
    assert len(got) == want.fills["live"] > 0
    pd.testing.assert_frame_equal(got[FILL_COLUMNS], journal_fills(tmp_path / "replay.db")[FILL_COLUMNS])
    assert (
        float(worker.books[0].books.equity(0, tick=s.backtest.tick_size, lot=s.backtest.lot_size))
        == (want.final_equity["live"])
    )


def test_a_live_paper_run_stopped_and_restarted_later_trades_like_an_uninterrupted_one(
    day: pd.DataFrame, tmp_path: Path
) -> None:
    """run_live on the fake exchange: 50 ticks, a stop, 30 minutes down, a restart that rebuilds
    the ticks from the journal's first bar and catches up: the fills of one run of 120 ticks."""
    from trading.worker.live import LiveRun, run_live

    s = settings()
    first = day["timestamp"].iloc[1000]

    def once(journal: Path, ticks: int, clock: ManualClock) -> None:
        ex = exchange(day, clock)
        feed = BarFeed(
            ex, markets={"BTCUSDT": "BTC/USDT"}, interval="1m", backtest=s.backtest, sleep=clock.sleep
        )
        feed.clock = clock
        run = LiveRun(
            markets={"BTCUSDT": "BTC/USDT"}, interval="1m", settings=s, journal=journal, max_ticks=ticks
        )
        asyncio.run(run_live(run, exchange=ex, feed=feed))

    once(tmp_path / "whole.db", 120, ManualClock(_seconds(first) + 60 + 2.5))
    clock = ManualClock(_seconds(first) + 60 + 2.5)
    once(tmp_path / "broken.db", 50, clock)
    clock.t += 30 * 60  # down for half an hour: 30 ticks are due at the restart
    once(tmp_path / "broken.db", 70, clock)
    whole, broken = journal_fills(tmp_path / "whole.db"), journal_fills(tmp_path / "broken.db")
    assert len(whole) > 0
    pd.testing.assert_frame_equal(broken[FILL_COLUMNS], whole[FILL_COLUMNS])
    j = Journal(tmp_path / "broken.db")
    assert j.run_spec()["first"] == first.isoformat() and j.run_spec()["last"] is None
    j.close()


def test_a_local_clock_running_ahead_never_hands_out_the_bar_still_open(day: pd.DataFrame) -> None:
    """This machine's clock 3 s ahead of the exchange's (more than the 2 s settle): the exchange
    serves the bar still open with the closed ones; the feed measures the offset (fetch_time)
    and hands out only closed bars, each as the exchange closed it."""
    start = day["timestamp"].iloc[1000]
    clock = ManualClock(_seconds(start) + 2.5)  # the exchange's time
    ex = exchange(day, clock)

    def ahead() -> float:
        return clock() + 3.0

    feed = BarFeed(
        ex,
        markets={"BTCUSDT": "BTC/USDT"},
        interval="1m",
        backtest=BacktestConfig(),
        clock=ahead,
        sleep=clock.sleep,
    )

    async def go() -> Any:
        await feed.start(first_ns=None, warmup=10)
        for _ in range(5):
            replay = await feed.next()
        return replay

    replay = asyncio.run(go())
    assert feed.offset_s == pytest.approx(-3.0, abs=1e-6)  # the fake answers at once: no request time
    want = np.rint(day["close"].iloc[999:1005].to_numpy() / 0.01)
    assert np.array_equal(replay.close[:, 0], want)  # none of them the half-formed open bar
    assert replay.has[:, 0].all()
