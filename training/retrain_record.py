"""What a retrain records on the version it registered: why it ran, what tuning chose, the gate's
numbers and which alias moved, as MLflow version tags plus a description a reviewer reads.

Pure: :class:`training.registry.Registry` writes what these functions return. The tags are the
machine-readable record (``mmops registry status``, the canary evaluation, the audit), the
description the same steps in words (the MLflow UI shows it on the version page).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from training.registry_state import CHALLENGER, CHAMPION, MAX_TAG

Mode = Literal["standard", "canary"]

RETRAIN_MODE, RETRAIN_REASON, RETRAIN_RUN = (
    "mmops.retrain.mode",
    "mmops.retrain.reason",
    "mmops.retrain.flow_run",
)
RETRAIN_ALIAS, RETRAIN_OUTCOME = "mmops.retrain.alias", "mmops.retrain.outcome"
DRIFT_SERIES, DRIFT_PAYLOAD = "mmops.drift.series", "mmops.drift.payload"
TUNE_CHOSEN, TUNE_CANDIDATES = "mmops.tune.chosen", "mmops.tune.candidates"
GATE_CHECKS = "mmops.gate.checks"


@dataclass(frozen=True, slots=True)
class RetrainRecord:
    """One retrain of one registered model, from trigger to alias (what is written on the version).

    Attributes:
        mode: ``canary`` when drift started it (the version may only reach ``@challenger``),
            ``standard`` for the nightly or a manual run.
        reason: why it ran, in words (the drift event's reason for a canary retrain).
        drift: the drift event's payload (``{}`` when drift did not start it).
        flow_run: the Prefect flow run id, or ``""`` outside a flow run.
        chosen: the chosen candidate's summary (family, trials, best params, hold-out metrics).
        candidates: every tuned candidate's summary, the chosen one included.
        gate_passed: the gate's verdict.
        gate_checks: every check with its numbers (``GateCheck.describe()``).
        gate_failed: the failed checks in words (``GateCheck.sentence()``); empty on a pass.
        aliases: the aliases pointing at the version once the gate is done.
    """

    mode: Mode
    reason: str
    drift: Mapping[str, Any]
    flow_run: str
    chosen: Mapping[str, Any]
    candidates: Sequence[Mapping[str, Any]]
    gate_passed: bool
    gate_checks: Sequence[str]
    gate_failed: Sequence[str]
    aliases: Sequence[str]

    @property
    def alias(self) -> str:
        """The alias the retrain gave the version: champion (policy), challenger, or none."""
        for name in (CHAMPION, CHALLENGER):
            if name in self.aliases:
                return name
        return "none"

    def outcome(self) -> str:
        """One sentence: what happened to the version and why."""
        if not self.gate_passed:
            return "gate failed, aliases untouched: " + "; ".join(self.gate_failed)
        if self.alias == CHAMPION:
            return "gate passed; champion by the recorded auto-approve policy"
        return "gate passed; @challenger (champion only after a recorded approval)"

    def tags(self) -> dict[str, str]:
        """Version tags, each within MLflow's value limit."""
        tags = {
            RETRAIN_MODE: self.mode,
            RETRAIN_REASON: self.reason,
            RETRAIN_RUN: self.flow_run or "none",
            TUNE_CHOSEN: _json(_brief(self.chosen)),
            TUNE_CANDIDATES: _json([_line(c) for c in self.candidates]),
            GATE_CHECKS: "\n".join(self.gate_checks),
            RETRAIN_ALIAS: self.alias,
            RETRAIN_OUTCOME: self.outcome(),
        }
        if self.drift:
            tags[DRIFT_SERIES] = str(self.drift.get("series", ""))
            tags[DRIFT_PAYLOAD] = _json(self.drift)
        return {k: _cap(v) for k, v in tags.items()}

    def description(self) -> str:
        """The steps in words, for the version's description (Markdown)."""
        chosen = self.chosen
        metrics = chosen.get("metrics", {})
        lines = [
            f"**{self.mode} retrain**: {self.reason}",
            "",
            f"- trigger: {'drift on ' + str(self.drift.get('series')) if self.drift else 'no drift event'}"
            + (f" (flow run {self.flow_run})" if self.flow_run else ""),
            f"- tune: {len(self.candidates)} famil{'y' if len(self.candidates) == 1 else 'ies'}, "
            f"chose {chosen.get('family')} after {chosen.get('trials')} trial(s); utility (bps of capital/day) "
            f"backtest {_num(metrics.get('backtest_utility'))}, forward {_num(metrics.get('forward_utility'))}",
            f"- gate: {'passed' if self.gate_passed else 'failed'}",
            *[f"  - {c}" for c in self.gate_checks],
            f"- alias: {self.alias}",
            f"- outcome: {self.outcome()}",
        ]
        return _cap("\n".join(lines))


# the chosen candidate's headline numbers per hold-out window (the full list is on its MLflow run)
BRIEF_METRICS = (
    "utility",
    "pnl_bps_day",
    "pnl_pct",
    "as_utility",
    "tas_utility",
    "pnl_diff",
    "tas_pnl_diff",
    "sharpe",
    "max_drawdown_pct",
    "n_trades",
    "skill",
)


def _brief(summary: Mapping[str, Any]) -> dict[str, Any]:
    """A candidate summary without the per-study bookkeeping a tag does not need, and only the
    headline metrics, so the tag stays whole JSON within MLflow's value limit (a cut tag is not
    JSON: the summary's full metric list outgrew it)."""
    keep = ("family", "task", "trials", "best_value", "best_params")
    brief = {k: summary[k] for k in keep if k in summary}
    metrics = summary.get("metrics", {})
    brief["metrics"] = {
        f"{w}_{m}": metrics[f"{w}_{m}"]
        for w in ("backtest", "forward")
        for m in BRIEF_METRICS
        if f"{w}_{m}" in metrics
    }
    return brief


def _line(summary: Mapping[str, Any]) -> dict[str, Any]:
    """One candidate in a few numbers: every family fits in one tag."""
    metrics = summary.get("metrics", {})
    return {
        "family": summary.get("family"),
        "trials": summary.get("trials"),
        "best_value": summary.get("best_value"),
        "backtest_utility": metrics.get("backtest_utility"),
        "forward_utility": metrics.get("forward_utility"),
        "backtest_sharpe": metrics.get("backtest_sharpe"),
        "forward_sharpe": metrics.get("forward_sharpe"),
    }


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.4g}"


def _cap(text: str) -> str:
    return text if len(text) <= MAX_TAG else text[: MAX_TAG - 3] + "..."
