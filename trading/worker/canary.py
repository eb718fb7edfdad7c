"""Canary evaluation: the challenger against the champion on what each did in the worker's journal.

Why here, in ``trading/worker``: it reads the worker's journal alone (fills, marks, orders, risk
events) and reuses :func:`trading.worker.attribution.attribute`, with no ML framework; the flow
and the CLI (``flows/canary.py``, ``mmops canary evaluate``) record its result on the registry.

The comparison. Each version's PnL path comes from its own fills marked at every tick
(:mod:`trading.worker.canary_series`); per-tick increments over the canary window (from the
challenger's first order to the last mark) are divided by the capital the version was given
(``initial_cash`` per symbol it quoted: each symbol is its own sub-book), so a challenger given
one symbol and a champion given nine compare per unit of capital. The difference of the mean
per-tick returns (challenger - champion, shown as bps of allocated capital per day) gets a
paired moving-block bootstrap interval: per-tick PnL is autocorrelated (inventory carries a
position from tick to tick), so resampling single ticks would make the interval too narrow,
and per-symbol-day blocks would leave a one-symbol, one-day canary with a single block. The
interval covers the variation over time; in canary mode the two versions trade different
symbols, which it cannot separate from the model (shadow mode trades the same symbols).

The recommendation, first match wins: **rollback** on a risk breach of the challenger (a
drawdown or max-loss halt on a symbol it was quoting); **extend** while the evidence is short
(fewer than ``min_fills`` fills for either version, fewer than ``min_ticks`` ticks, or, where
the versions quote different symbols, fewer than ``min_symbols`` on either side);
**promote** when the interval lies above 0; **rollback** when it lies below 0; else **extend**.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import ValidationError

from features.errors import ConfigError
from trading.config import BacktestConfig, CanaryConfig
from trading.worker import strategy as st
from trading.worker.attribution import VersionPnl, attribute
from trading.worker.canary_series import (
    NS_PER_DAY,
    BootstrapInterval,
    VersionPath,
    VersionResult,
    carried_closes,
    paired_block_bootstrap,
    version_paths,
    version_result,
    window_returns,
)
from trading.worker.journal import Journal

__all__ = [
    "CanaryConfig",
    "CanaryEvaluation",
    "Recommendation",
    "VersionResult",
    "evaluate_canary",
    "recommend",
]

Action = Literal["promote", "extend", "rollback"]
EPS64 = float(np.finfo(np.float64).eps)
# the sentences trading.risk.explain writes for the latched limits a model can breach
# (the kill switch is a person's decision, not the model's)
BREACH_MARKERS = (">= max_loss", "of peak: kill switch")
ROLES = ("champion", "challenger", "model-free", "other")


@dataclass(frozen=True, slots=True)
class BookCheck:
    """A book's PnL (its equity less its initial cash, from the journal's book state) against the
    sum of its versions' parts. They differ only by the order of the float sums: the book adds
    each fill to a cash balance near ``initial_cash``, the parts sum small per-fill terms, so each
    of the ``fills + symbols`` operations rounds by at most eps64 x the largest cash balance."""

    book: str
    pnl: float
    parts: float
    residual: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return abs(self.residual) <= self.tolerance


@dataclass(frozen=True, slots=True)
class Recommendation:
    action: Action
    reason: str


@dataclass(frozen=True, slots=True)
class CanaryEvaluation:
    """What :func:`evaluate_canary` found, and what it recommends for the challenger."""

    journal: str
    champion: str
    challenger: str
    window: dict[str, Any]  # first/last tick and time, ticks, bar_ns
    versions: tuple[VersionResult, ...]
    difference: BootstrapInterval  # challenger - champion, bps of allocated capital per day
    breaches: tuple[str, ...]
    books: tuple[BookCheck, ...]
    recommendation: Recommendation
    config: CanaryConfig

    def version(self, version: str) -> VersionResult:
        return next(v for v in self.versions if v.version == version)

    def to_dict(self) -> dict[str, Any]:
        return {
            "journal": self.journal,
            "champion": self.champion,
            "challenger": self.challenger,
            "window": self.window,
            "versions": [asdict(v) for v in self.versions],
            "difference": asdict(self.difference) | {"unit": "bps of allocated capital per day"},
            "breaches": list(self.breaches),
            "books": [asdict(b) | {"ok": b.ok} for b in self.books],
            "recommendation": asdict(self.recommendation),
            "config": self.config.model_dump(),
        }


def evaluate_canary(
    journal: Journal,
    *,
    champion: str | None = None,
    challenger: str | None = None,
    config: CanaryConfig | None = None,
) -> CanaryEvaluation:
    """Compare the challenger with the champion on the journal's run and recommend what to do.

    Args:
        journal: the run's journal (a reader is enough; the worker may still be running).
        champion, challenger: registry versions (None: the ones the journal's orders were
            quoted under, by their ``champion``/``challenger`` alias).
        config: interval and evidence thresholds (None: the defaults).

    Raises:
        ConfigError: no run in the journal, no challenger or an unknown version, or no fill of
            the challenger yet (the message says which and what to do).
    """
    config = config or CanaryConfig()
    where = journal.path
    spec = journal.run_spec()
    if spec is None:
        raise ConfigError(f"{where}: a journal with no run in it yet")
    try:
        symbols = tuple(str(s) for s in spec["symbols"])
        bt = BacktestConfig.model_validate(spec["backtest"])
        bar_ns = int(pd.Timedelta(str(spec["interval"])).value)
        book_names = tuple(str(b) for b in spec["books"])
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        raise ConfigError(f"{where}: the run recorded in this journal is not readable here ({exc})") from exc
    orders = journal.orders()
    champion, challenger = _versions(where, orders, champion, challenger)
    fills = journal.fills()
    if not any(f["version"] == challenger for f in fills):
        raise ConfigError(
            f"{where}: challenger v{challenger} has no fills yet; let the canary run longer and evaluate again"
        )
    marks = journal.marks()
    n = len(symbols)
    ts = np.array([m[1] for m in marks], dtype=np.int64)
    raw = np.stack([np.frombuffer(m[2], dtype=np.int64, count=n) for m in marks])
    closes = carried_closes(raw)
    row = {s: i for i, s in enumerate(symbols)}
    paths = version_paths(fills, ts=ts, closes=closes, row=row, tick=bt.tick_size, lot=bt.lot_size)
    for v in (champion, challenger):  # a champion without a fill yet still has a (flat) path
        paths.setdefault(v, VersionPath(pnl=np.zeros(len(ts)), exposure=np.zeros(len(ts))))
    mark_tick = np.array([m[0] for m in marks], dtype=np.int64)
    first = min(o.tick for o in orders if o.version == challenger)
    start = int(np.searchsorted(mark_tick, first))  # window: marks start..end
    shares = attribute(journal, symbols, tick=bt.tick_size, lot=bt.lot_size, markout_ticks=bt.markout_bars)
    results = [
        version_result(
            version,
            role=_role(version, champion, challenger),
            shares=[s for s in shares if s.version == version],
            fills=[f for f in fills if f["version"] == version],
            quoted={o.symbol for o in orders if o.version == version},
            path=paths[version],
            start=start,
            since_ns=int(ts[start]) if start < len(ts) else 0,
            last={s: int(closes[-1, row[s]]) for s in symbols},
            bt=bt,
            n_symbols=n,
            bar_ns=bar_ns,
        )
        for version in sorted(paths, key=lambda v: (ROLES.index(_role(v, champion, challenger)), v))
    ]
    by = {r.version: r for r in results}
    returns = {v: window_returns(paths[v].pnl, start, by[v].capital) for v in (champion, challenger)}
    scale = NS_PER_DAY / bar_ns * 1e4  # mean per-tick return -> bps per day
    raw_diff = paired_block_bootstrap(
        returns[challenger],
        returns[champion],
        level=config.level,
        block=config.block_ticks,
        samples=config.bootstrap_samples,
        seed=config.seed,
    )
    diff = BootstrapInterval(
        point=raw_diff.point * scale,
        low=raw_diff.low * scale,
        high=raw_diff.high * scale,
        level=raw_diff.level,
        block=raw_diff.block,
        samples=raw_diff.samples,
    )
    breaches = _breaches(journal, challenger)
    ticks = len(ts) - start
    window: dict[str, Any] = {
        "first_tick": int(mark_tick[start]),
        "last_tick": int(mark_tick[-1]),
        "first": pd.Timestamp(int(ts[start]), tz="UTC").isoformat(),
        "last": pd.Timestamp(int(ts[-1]), tz="UTC").isoformat(),
        "ticks": ticks,
        "bar_ns": bar_ns,
    }
    return CanaryEvaluation(
        journal=str(where),
        champion=champion,
        challenger=challenger,
        window=window,
        versions=tuple(results),
        difference=diff,
        breaches=breaches,
        books=_book_checks(journal, book_names, shares, fills, n, bt),
        recommendation=recommend(
            by[champion], by[challenger], diff, breaches=breaches, ticks=ticks, config=config
        ),
        config=config,
    )


def recommend(
    champion: VersionResult,
    challenger: VersionResult,
    diff: BootstrapInterval,
    *,
    breaches: Sequence[str],
    ticks: int,
    config: CanaryConfig,
) -> Recommendation:
    """Promote, extend or roll back (see the module docstring), with the numbers in the reason."""
    c, k = f"challenger v{challenger.version}", f"champion v{champion.version}"
    ci = (
        f"{c} - {k} = {diff.point:+.3f} bps/day of allocated capital, "
        f"{diff.level:.0%} CI [{diff.low:+.3f}, {diff.high:+.3f}] "
        f"(moving blocks of {diff.block} ticks, {diff.samples} resamples)"
    )
    evidence = f"{ticks} ticks, fills {challenger.window_fills} ({c}) and {champion.window_fills} ({k})"
    if breaches:
        more = f" (and {len(breaches) - 1} more)" if len(breaches) > 1 else ""
        return Recommendation("rollback", f"rollback: {c} breached a risk limit: {breaches[0]}{more}; {ci}")
    short = [
        f"{name} {got} < min_fills {config.min_fills}"
        for name, got in ((c, challenger.window_fills), (k, champion.window_fills))
        if got < config.min_fills
    ]
    if ticks < config.min_ticks:
        short.append(f"{ticks} ticks < min_ticks {config.min_ticks}")
    few = min(len(challenger.symbols), len(champion.symbols))
    if set(challenger.symbols) != set(champion.symbols) and few < config.min_symbols:
        short.append(
            f"the versions quoted different symbols ({c}: {', '.join(challenger.symbols)}; "
            f"{k}: {', '.join(champion.symbols)}), {few} < min_symbols {config.min_symbols} on one side: "
            "the interval cannot tell the model from the symbol"
        )
    if short:
        return Recommendation("extend", f"extend: not enough evidence yet ({'; '.join(short)}); {ci}")
    if diff.low > 0:
        return Recommendation("promote", f"promote: {ci}, above 0 over {evidence}")
    if diff.high < 0:
        return Recommendation("rollback", f"rollback: {ci}, below 0 over {evidence}")
    return Recommendation("extend", f"extend: {ci} spans 0 over {evidence}; let the canary run longer")


def _versions(
    where: Any, orders: Sequence[Any], champion: str | None, challenger: str | None
) -> tuple[str, str]:
    """The two versions to compare, from the arguments or the aliases the orders were quoted under."""
    seen: dict[str, set[str]] = {}
    for o in orders:
        seen.setdefault(o.alias, set()).add(o.version)
    known = sorted({o.version for o in orders})
    listed = ", ".join(f"v{v}" if v.isdigit() else v for v in known) or "none"
    picked = []
    for role, given in (("champion", champion), ("challenger", challenger)):
        if given is None:
            found = sorted(seen.get(role, set()))
            if len(found) != 1:
                what = "no" if not found else f"{len(found)} ({', '.join(found)})"
                raise ConfigError(
                    f"{where}: {what} {role} version quoted in this run (versions: {listed}); "
                    f"a canary run serves both (mmops serve --canary F), or give --{role}"
                )
            given = found[0]
        elif given not in known:
            raise ConfigError(f"{where}: version {given} never quoted in this run (versions: {listed})")
        picked.append(given)
    if picked[0] == picked[1]:
        raise ConfigError(f"{where}: champion and challenger are the same version {picked[0]}")
    return picked[0], picked[1]


def _role(version: str, champion: str, challenger: str) -> str:
    if version == champion:
        return "champion"
    if version == challenger:
        return "challenger"
    return "model-free" if not version.isdigit() else "other"


def _breaches(journal: Journal, challenger: str) -> tuple[str, ...]:
    """Drawdown and max-loss halts on a symbol whose last signal before the halt was the challenger's."""
    signals: dict[str, list[tuple[int, str]]] = {}
    for book in ("live", "shadow"):
        for ts_ns, symbol, _value, version in journal.signals(book):
            signals.setdefault(f"{book}:{symbol}", []).append((int(ts_ns), version))
    out = []
    for e in journal.events(("risk",)):
        text = e["message"]
        if "-> HALTED" not in text or not any(m in text for m in BREACH_MARKERS):
            continue
        book = text.split(":", 1)[0]
        mine = [v for t, v in signals.get(f"{book}:{e['symbol']}", []) if t <= e["ts_ns"]]
        if mine and mine[-1] == challenger:
            out.append(f"{e['symbol']} at tick {e['tick']}: {text}")
    return tuple(out)


def _book_checks(
    journal: Journal,
    names: Sequence[str],
    shares: Sequence[VersionPnl],
    fills: Sequence[Mapping[str, Any]],
    n: int,
    bt: BacktestConfig,
) -> tuple[BookCheck, ...]:
    out = []
    for name in names:
        saved = journal.book(name)
        if saved is None:
            continue
        books = st.Books.from_bytes(saved[2], saved[3], n)
        pnl = sum(books.equity(s, tick=bt.tick_size, lot=bt.lot_size) for s in range(n)) - bt.initial_cash * n
        parts = sum(s.pnl for s in shares if s.book == name)
        depth = sum(1 for f in fills if f["book"] == name) + n
        scale = max(bt.initial_cash, float(np.abs(books.fs[:, st.F_CASH]).max()))
        out.append(
            BookCheck(book=name, pnl=pnl, parts=parts, residual=pnl - parts, tolerance=depth * EPS64 * scale)
        )
    return tuple(out)
