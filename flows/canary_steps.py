"""Steps of the canary evaluation shared by ``mmops canary evaluate`` and the ``canary-evaluate``
flow: evaluate a worker's journal with params.yaml's ``canary`` section, record the result on the
challenger's registry version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flows.params import Params
from flows.settings import Locations
from flows.training_steps import model_name, open_registry
from trading.worker.canary import CanaryEvaluation, evaluate_canary
from trading.worker.journal import Journal


def evaluate_journal(
    params: Params, journal: Path, *, champion: str | None, challenger: str | None
) -> CanaryEvaluation:
    """:func:`trading.worker.canary.evaluate_canary` on ``journal`` (read-only: the worker may run).

    Raises:
        ConfigError: no journal, no run in it, no challenger or an unknown version, no canary fill.
    """
    j = Journal.reader(journal)
    try:
        return evaluate_canary(j, champion=champion, challenger=challenger, config=params.canary)
    finally:
        j.close()


def record_evaluation(
    where: Locations, params: Params, evaluation: CanaryEvaluation, *, model: str | None
) -> dict[str, Any]:
    """Tags and JSON on the challenger's version of ``model`` (default: serve.model or the series').

    Raises:
        GovernanceError: the registry has no such model or version.
    """
    name = model_name(params, model)
    uri = open_registry(where).record_canary(name, evaluation.challenger, evaluation.to_dict())
    return {"model": name, "version": evaluation.challenger, "report": uri}


def summary(evaluation: CanaryEvaluation) -> str:
    """A few readable lines: one per version, the sum check, the recommendation."""
    w = evaluation.window
    lines = [f"canary window: {w['first']} .. {w['last']} ({w['ticks']} ticks)"]
    for v in evaluation.versions:
        sharpe = "-" if v.sharpe is None else f"{v.sharpe:.2f}"
        mark = "-" if v.markouts_bps.get("5") is None else f"{v.markouts_bps['5']:+.2f}"
        name = f"v{v.version}" if v.version.isdigit() else v.version
        where = ",".join(v.symbols) if len(v.symbols) <= 3 else f"{len(v.symbols)} symbols"
        lines.append(
            f"  {name:<10} {v.role:<10} {where}  {v.fills} fills  PnL {v.pnl:+,.2f} "
            f"(realised {v.realised:+,.2f}, marked {v.marked:+,.2f}, fees {v.fees:,.2f})  "
            f"{v.mean_bps_per_day:+.2f} bps/day  Sharpe {sharpe}  markout@5 {mark} bps"
        )
    for b in evaluation.books:
        lines.append(
            f"  book {b.book}: PnL {b.pnl:+,.6f} = sum of versions {b.parts:+,.6f} "
            f"(residual {b.residual:.1e}, tolerance {b.tolerance:.1e}{'' if b.ok else ': MISMATCH'})"
        )
    lines.append(evaluation.recommendation.reason)
    return "\n".join(lines)
