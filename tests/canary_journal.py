"""A canary run's journal built fill by fill, where the outcome of each canary recommendation
branch is known in advance (no worker, no market data)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from trading.config import BacktestConfig
from trading.worker import strategy as st
from trading.worker.journal import Journal, JournalOrder
from trading.worker.types import Fill

BAR_NS = 60_000_000_000
T0 = 1_772_419_200_000_000_000  # 2026-03-02 00:00 UTC


@dataclasses.dataclass(frozen=True)
class Plan:
    """A constructed canary run: each tick, each version buys one lot ``edge`` ticks under the
    mark and sells one ``edge`` over it (normal noise of ``noise`` ticks), so it earns
    ``2 x edge`` ticks a tick on average, flat at every mark. ``fill_every`` thins a version's
    fills; ``halt_at`` writes a drawdown halt of the challenger's symbol at that tick."""

    ticks: int = 2000
    champion_edge: float = 1.0
    challenger_edge: float = 1.0
    noise: float = 3.0
    challenger_every: int = 1
    halt_at: int | None = None
    halt_message: str = ""
    challenger_fills: bool = True  # False: its orders never fill
    versions: tuple[str, str] = ("7", "8")  # champion, challenger
    seed: int = 0


def build_journal(path: Path, plan: Plan) -> Path:
    """Write a journal of a canary run on symbols A (the champion) and B (the challenger)."""
    bt = BacktestConfig(maker_fee_bps=0.0)
    symbols = ["A", "B"]
    rng = np.random.default_rng(plan.seed)
    j = Journal(path)
    spec = {"symbols": symbols, "interval": "1m", "books": ["live"], "backtest": bt.model_dump(mode="json")}
    j.check_run(spec)
    books = st.Books.fresh(2, bt.initial_cash)
    closes = 10_000_000 + np.cumsum(rng.integers(-50, 51, size=(plan.ticks, 2)), axis=0)
    seq = 0
    with j.transaction():
        for t in range(plan.ticks):
            ts = T0 + t * BAR_NS
            j.add_mark(t, ts, closes[t].astype(np.int64).tobytes())
            j.add_signals(
                [(t, ts, "live", "A", 0.0, plan.versions[0]), (t, ts, "live", "B", 0.0, plan.versions[1])]
            )
            for s, version, alias, edge, every in (
                (0, plan.versions[0], "champion", plan.champion_edge, 1),
                (1, plan.versions[1], "challenger", plan.challenger_edge, plan.challenger_every),
            ):
                if t % every:
                    continue
                e = edge + plan.noise * rng.normal()
                for side, price in (
                    (1, int(np.rint(closes[t, s] - e))),
                    (-1, int(np.rint(closes[t, s] + e))),
                ):
                    seq += 1
                    cid = f"mm-L{t}{'b' if side > 0 else 'a'}-{symbols[s]}"
                    j.add_order(
                        JournalOrder(
                            cid,
                            "live",
                            symbols[s],
                            side,
                            "limit",
                            price,
                            1,
                            t,
                            version,
                            alias,
                            float(closes[t, s]),
                            "open",
                            0,
                            False,
                        )
                    )
                    if s == 1 and not plan.challenger_fills:
                        continue
                    fill = Fill("paper", f"p{seq}", seq, cid, symbols[s], side, price, 1, 0.0, True, ts)
                    j.add_fill(fill, book="live")
                    books.apply_fill(s, side, price, 1, 0.0, tick=bt.tick_size, lot=bt.lot_size)
            books.ist[:, st.I_CLOSE] = closes[t]
            if plan.halt_at == t:
                j.add_event(t, ts, "B", "risk", plan.halt_message)
        fs, ist = books.to_bytes()
        j.save_book("live", tick=plan.ticks, last_seq=seq, fs=fs, ist=ist, extra={})
    j.close()
    return path
