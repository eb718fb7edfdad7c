"""Canary evaluation: a real paper run of the worker with champion and challenger in canary mode
(per-version PnL adds up to the run's), each recommendation branch on journals built fill by
fill, the interval, and bad input refused in one sentence."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from canary_journal import Plan, build_journal
from helpers import summation_order_atol
from worker_helpers import FakeSource, paper, settings

from features.errors import ConfigError
from trading.config import CanaryConfig, RiskConfig
from trading.risk import R_DRAWDOWN, R_KILL_SWITCH, RiskObservation, explain
from trading.worker.canary import evaluate_canary
from trading.worker.canary_series import paired_block_bootstrap
from trading.worker.journal import Journal
from trading.worker.types import SignalBatch, SourceInfo

QUICK = CanaryConfig(min_ticks=500, min_fills=100, min_symbols=1)  # the journals: one symbol a version


@dataclasses.dataclass
class CanarySource(FakeSource):
    """Champion v7 on most symbols, challenger v8 (the opposite signal) on ``canary`` ones, as
    ``mmops serve --canary`` answers: versions and aliases per symbol."""

    canary: frozenset[str] = frozenset({"ETHUSDT"})

    async def info(self) -> SourceInfo:
        base = await super().info()
        return dataclasses.replace(base, challenger="8", mode="canary")

    async def signals(
        self,
        symbols: Sequence[str],
        windows: np.ndarray,
        *,
        seq: np.ndarray | None = None,
        sent: asyncio.Event | None = None,
    ) -> SignalBatch:
        batch = await super().signals(symbols, windows, seq=seq, sent=sent)
        mine = [s in self.canary for s in symbols]
        return dataclasses.replace(
            batch,
            values=np.where(mine, -batch.values, batch.values),
            versions=["8" if m else "7" for m in mine],
            aliases=["challenger" if m else "champion" for m in mine],
        )


@pytest.fixture(scope="module")
def canary_run(btc_march: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A day-long canary paper run: BTCUSDT on champion v7, ETHUSDT (another week's BTC minutes
    on the same clock) on challenger v8."""
    history = btc_march.iloc[:1600].reset_index(drop=True)
    btc = btc_march.iloc[1600:3040].reset_index(drop=True)
    eth = (
        btc_march.iloc[9000:10440].reset_index(drop=True).assign(symbol="ETHUSDT", timestamp=btc["timestamp"])
    )
    eth_history = (
        btc_march.iloc[7400:9000]
        .reset_index(drop=True)
        .assign(symbol="ETHUSDT", timestamp=history["timestamp"])
    )
    path = tmp_path_factory.mktemp("canary") / "j.db"
    report, _ = paper(
        {"BTCUSDT": btc, "ETHUSDT": eth},
        path,
        settings(),
        source=CanarySource(names=["ret_5"], rows=2),
        history={"BTCUSDT": history, "ETHUSDT": eth_history},
    )
    return {"path": path, "report": report}


def test_per_version_pnl_of_a_canary_paper_run_adds_up_to_the_runs_pnl(canary_run: dict) -> None:
    report, path = canary_run["report"], canary_run["path"]
    assert report.finished and report.model == "champion v7, canary challenger v8"
    j = Journal.reader(path)
    ev = evaluate_canary(j, config=QUICK)
    fills = j.fills()
    j.close()
    assert (ev.champion, ev.challenger) == ("7", "8")
    champ, chal = ev.version("7"), ev.version("8")
    assert champ.symbols == ("BTCUSDT",) and chal.symbols == ("ETHUSDT",)
    assert champ.fills > 500 and chal.fills > 500 and champ.fills + chal.fills <= len(fills)
    # the run's PnL (book equity - initial cash, from the worker's books) = the versions' parts
    # (model-free fills, if any, are a part too); only the order of the float sums differs: each
    # of the fills + symbols additions to a cash balance near initial_cash rounds by <= 1 eps
    cash = 100_000.0 + sum(abs(f["price_ticks"] * 0.01 * f["lots"] * 0.001) for f in fills)
    atol = summation_order_atol(depth=len(fills) + 2, scale=cash, dtype=np.float64)
    parts = sum(v.pnl for v in ev.versions)
    assert parts == pytest.approx(report.pnl["live"], abs=atol, rel=0)
    (book,) = ev.books
    assert book.ok and book.pnl == report.pnl["live"] and book.parts == pytest.approx(parts, abs=1e-9)
    for v in ev.versions:  # realised + marked at average cost, and the path's end, are the same PnL
        assert v.realised + v.marked == pytest.approx(v.pnl, abs=atol, rel=0)
        assert v.window_pnl == pytest.approx(v.pnl, abs=atol, rel=0)  # the window is the whole run
        assert v.exposure_max >= v.exposure_mean >= 0 and v.sharpe is not None
        assert set(v.markouts_bps) == {"1", "5", "15", "60"} and v.spread_capture_bps is not None
    assert ev.window["ticks"] == report.ticks_done == 1440
    assert ev.recommendation.action in ("promote", "extend", "rollback")
    assert f"{ev.difference.low:+.3f}" in ev.recommendation.reason


def test_the_same_journal_gives_the_same_interval_and_a_stated_level(canary_run: dict) -> None:
    j = Journal.reader(canary_run["path"])
    a, b = evaluate_canary(j, config=QUICK), evaluate_canary(j, config=QUICK)
    wider = evaluate_canary(j, config=QUICK.model_copy(update={"level": 0.99}))
    j.close()
    assert a.difference == b.difference and a.to_dict() == b.to_dict()
    assert (
        wider.difference.low
        < a.difference.low
        < a.difference.point
        < a.difference.high
        < wider.difference.high
    )
    assert "95% CI" in a.recommendation.reason and "moving blocks of 60 ticks" in a.recommendation.reason


def test_a_clearly_better_challenger_is_promoted_with_its_numbers(tmp_path: Path) -> None:
    ev = evaluate_canary(
        Journal.reader(build_journal(tmp_path / "j.db", Plan(challenger_edge=3.0))), config=QUICK
    )
    assert ev.recommendation.action == "promote", ev.recommendation.reason
    assert ev.difference.low > 0
    reason = ev.recommendation.reason
    assert (
        reason.startswith("promote: challenger v8 - champion v7 = +") and "above 0 over 2000 ticks" in reason
    )
    assert "fills 4000 (challenger v8) and 4000 (champion v7)" in reason
    assert ev.books[0].ok


def test_one_symbol_against_another_extends_whatever_the_interval_says(tmp_path: Path) -> None:
    """Canary by symbol with one symbol a side: the interval covers time, not the symbol mix, so a
    better-looking challenger on its own symbol is not promoted (min_symbols, default 3)."""
    journal = Journal.reader(build_journal(tmp_path / "j.db", Plan(challenger_edge=3.0)))
    ev = evaluate_canary(journal, config=QUICK.model_copy(update={"min_symbols": 3}))
    assert ev.difference.low > 0 and ev.recommendation.action == "extend"
    assert (
        "the versions quoted different symbols (challenger v8: B; champion v7: A), 1 < min_symbols 3 on one side"
        in ev.recommendation.reason
    )


def test_a_clearly_worse_challenger_is_rolled_back(tmp_path: Path) -> None:
    ev = evaluate_canary(
        Journal.reader(build_journal(tmp_path / "j.db", Plan(challenger_edge=-1.0))), config=QUICK
    )
    assert ev.recommendation.action == "rollback" and ev.difference.high < 0
    assert "below 0 over 2000 ticks" in ev.recommendation.reason


def test_equal_versions_extend_because_the_interval_spans_zero(tmp_path: Path) -> None:
    ev = evaluate_canary(Journal.reader(build_journal(tmp_path / "j.db", Plan())), config=QUICK)
    assert ev.recommendation.action == "extend" and ev.difference.low < 0 < ev.difference.high
    assert "spans 0" in ev.recommendation.reason


@pytest.mark.parametrize(
    ("plan", "config", "says"),
    [
        (
            Plan(ticks=600, challenger_edge=60.0, challenger_every=20),
            QUICK,
            "challenger v8 60 < min_fills 100",
        ),
        (Plan(ticks=300, challenger_edge=3.0), QUICK, "300 ticks < min_ticks 500"),
    ],
    ids=["few-fills", "short-window"],
)
def test_too_little_evidence_extends_even_when_the_challenger_looks_better(
    tmp_path: Path, plan: Plan, config: CanaryConfig, says: str
) -> None:
    ev = evaluate_canary(Journal.reader(build_journal(tmp_path / "j.db", plan)), config=config)
    assert ev.recommendation.action == "extend" and ev.difference.point > 0
    assert (
        ev.recommendation.reason.startswith("extend: not enough evidence yet (")
        and says in ev.recommendation.reason
    )


def _halt(reasons: int) -> str:
    seen = RiskObservation(
        inventory_lots=3,
        notional=300.0,
        pnl=-5_500.0,
        drawdown=0.055,
        var_ratio=1.0,
        data_age_ns=0,
        reject_rate=0.0,
    )
    return f"live: ACTIVE -> HALTED: {'; '.join(explain(reasons, seen, RiskConfig()))}"


def test_a_drawdown_halt_of_the_challenger_rolls_it_back_whatever_its_pnl(tmp_path: Path) -> None:
    plan = Plan(challenger_edge=3.0, halt_at=700, halt_message=_halt(R_DRAWDOWN))
    ev = evaluate_canary(Journal.reader(build_journal(tmp_path / "j.db", plan)), config=QUICK)
    assert ev.difference.low > 0  # better on PnL, but it breached a limit
    assert ev.recommendation.action == "rollback"
    assert ev.recommendation.reason.startswith(
        "rollback: challenger v8 breached a risk limit: B at tick 700: live: ACTIVE -> HALTED: drawdown 5.50%"
    )


def test_a_kill_switch_pressed_by_a_person_is_not_the_challengers_breach(tmp_path: Path) -> None:
    plan = Plan(challenger_edge=3.0, halt_at=700, halt_message=_halt(R_KILL_SWITCH))
    ev = evaluate_canary(Journal.reader(build_journal(tmp_path / "j.db", plan)), config=QUICK)
    assert ev.breaches == () and ev.recommendation.action == "promote"


def test_the_block_bootstrap_is_wider_than_single_ticks_on_autocorrelated_increments() -> None:
    rng = np.random.default_rng(1)
    shocks = rng.normal(size=5000)
    a = np.convolve(shocks, np.ones(30) / 30, mode="same")  # 30-tick autocorrelation
    b = np.zeros_like(a)
    single = paired_block_bootstrap(a, b, level=0.95, block=1, samples=2000, seed=0)
    blocks = paired_block_bootstrap(a, b, level=0.95, block=60, samples=2000, seed=0)
    assert single.point == blocks.point == pytest.approx(a.mean())
    assert (blocks.high - blocks.low) > 3 * (single.high - single.low)
    with pytest.raises(ValueError, match="different lengths: 3 and 2"):
        paired_block_bootstrap(a[:3], b[:2], level=0.95, block=1, samples=200, seed=0)


def test_bad_input_is_refused_in_one_sentence(tmp_path: Path, btc_march: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="no journal here; give the run's --journal"):
        Journal.reader(tmp_path / "missing.db")
    built = Journal.reader(build_journal(tmp_path / "j.db", Plan(ticks=50)))
    with pytest.raises(ConfigError, match=r"version 9 never quoted in this run \(versions: v7, v8\)"):
        evaluate_canary(built, challenger="9")
    with pytest.raises(ConfigError, match="champion and challenger are the same version 7"):
        evaluate_canary(built, champion="7", challenger="7")
    Journal(tmp_path / "empty.db").close()
    with pytest.raises(ConfigError, match="a journal with no run in it yet"):
        evaluate_canary(Journal.reader(tmp_path / "empty.db"))
    day = btc_march.iloc[1600:1700].reset_index(drop=True)
    source = FakeSource(names=["ret_5"], rows=2)  # champion only: not a canary run
    paper(
        {"BTCUSDT": day},
        tmp_path / "champion.db",
        settings(),
        source=source,
        history={"BTCUSDT": btc_march.iloc[:1600]},
    )
    with pytest.raises(
        ConfigError, match=r"no challenger version quoted in this run \(versions: v7\); a canary run"
    ):
        evaluate_canary(Journal.reader(tmp_path / "champion.db"))
    quiet = Journal.reader(build_journal(tmp_path / "quiet.db", Plan(ticks=50, challenger_fills=False)))
    with pytest.raises(ConfigError, match="challenger v8 has no fills yet; let the canary run longer"):
        evaluate_canary(quiet)


def test_params_yaml_states_every_canary_setting() -> None:
    import yaml

    from flows.params import load_params

    path = Path(__file__).resolve().parents[3] / "params.yaml"
    assert set(yaml.safe_load(path.read_text())["canary"]) == set(CanaryConfig.model_fields)
    assert load_params(path).canary == CanaryConfig()  # the stated values are the defaults
