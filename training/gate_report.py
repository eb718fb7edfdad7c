"""The gate report: a page a reviewer reads in a minute, then the detail.

Order: the verdict with its failing checks in words, a headline table per held-out window (the
model's quoter against the model-free A-S quoter at default and tuned settings and buy-and-hold,
with the paired bootstrap intervals), every check, where the PnL comes from, the plots, the
head-to-head with the champion, and the full metric list as an appendix.

Pure rendering; :mod:`training.registry` writes it beside the plots the training run logged and
stores the folder as an artifact of the version's run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from training.evaluate import pnl_decomposition_table
from training.gate import GateVerdict

WINDOWS = ("forward", "backtest")
GATE_LINE_PREFIXES = ("Gate passed", "Gate FAILED")  # how the verdict line starts (kept on top)


@dataclass(frozen=True, slots=True)
class Row:
    """One headline measure: its words, the metric suffix, how to print it, the CI keys if any."""

    label: str
    key: str
    spec: str = ".3g"
    diff: str | None = None  # ``<diff>``, ``<diff>_lo``, ``<diff>_hi``: model minus default A-S
    ci: str | None = None  # ``<ci>_lo``, ``<ci>_hi``: the interval of the value itself


@dataclass(frozen=True, slots=True)
class Column:
    title: str
    prefix: str


HEADLINE: tuple[Row, ...] = (
    Row("utility, bps of capital/day (the objective)", "utility", ".2f", diff="utility_diff"),
    Row("net PnL, bps of capital/day", "pnl_bps_day", ".2f", diff="pnl_diff"),
    Row("net PnL, % of equity over the window", "pnl_pct", ".3f"),
    Row("Sharpe (365 d)", "sharpe", ".2f", diff="sharpe_diff"),
    Row("max drawdown, % of peak", "max_drawdown_pct", ".3f"),
    Row("fills", "n_trades", ",.0f"),
)
COLUMNS: tuple[Column, ...] = (
    Column("model quoter", ""),
    Column("A-S default", "as_"),
    Column("A-S tuned", "tas_"),
    Column("buy & hold", "bh_"),
)
# the paired moving-block bootstrap differences: model minus each model-free quoter
DIFFERENCES: tuple[Column, ...] = (
    Column("model − A-S default [95% CI]", ""),
    Column("model − A-S tuned [95% CI]", "tas_"),
)
# The model's forecast against the no-information one (model only): ratios < 1 and skill > 0 beat
# a zero return (regressors) or P(up) = 0.5 (classifiers); accuracy against the majority class.
SKILL: tuple[Row, ...] = (
    Row("MAE / no-information forecast", "mae_ratio", ".4f"),
    Row("RMSE / no-information forecast", "rmse_ratio", ".4f"),
    Row("skill (1 − RMSE ratio²)", "skill", ".4f"),
    Row("accuracy [Wilson 95%]", "accuracy", ".3f", ci="accuracy"),
    Row("majority-class accuracy", "majority_accuracy", ".3f"),
)


def _value(metrics: Mapping[str, float], key: str) -> float | None:
    value = metrics.get(key)
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _fmt(value: float | None, spec: str = ".6g") -> str:
    return "—" if value is None else format(value, spec)


def _interval(metrics: Mapping[str, float], key: str, spec: str, *, bounds: str | None = None) -> str:
    """``point [lo, hi]`` from ``key`` and ``<bounds or key>_lo``/``_hi``; the point alone without them."""
    point = _value(metrics, key)
    lo, hi = (_value(metrics, f"{bounds or key}{s}") for s in ("_lo", "_hi"))
    if point is None:
        return "—"
    if lo is None or hi is None:
        return _fmt(point, spec)
    return f"{format(point, spec)} [{format(lo, spec)}, {format(hi, spec)}]"


def headline_table(metrics: Mapping[str, float], window: str) -> list[str]:
    """The headline measures of one window; columns nobody logged (e.g. no tuned A-S) are left out."""

    def logged(key: str) -> bool:
        return _value(metrics, f"{window}_{key}") is not None

    columns = [c for c in COLUMNS if any(logged(f"{c.prefix}{r.key}") for r in HEADLINE)]
    diffs = [d for d in DIFFERENCES if any(r.diff and logged(f"{d.prefix}{r.diff}") for r in HEADLINE)]
    rows = [r for r in HEADLINE if any(logged(f"{c.prefix}{r.key}") for c in columns)]
    if not rows:
        return []
    lines = [
        "| " + " | ".join(["", *(c.title for c in columns), *(d.title for d in diffs)]) + " |",
        "|" + "---|" * (len(columns) + len(diffs) + 1),
    ]
    for r in rows:
        cells = [_fmt(_value(metrics, f"{window}_{c.prefix}{r.key}"), r.spec) for c in columns]
        cells += [_interval(metrics, f"{window}_{d.prefix}{r.diff}", r.spec) if r.diff else "" for d in diffs]
        lines.append("| " + " | ".join([r.label, *cells]) + " |")
    return lines


def skill_lines(metrics: Mapping[str, float], window: str) -> list[str]:
    """The forecast against the trivial one, as one sentence per measure logged."""
    found = []
    for r in SKILL:
        bounds = f"{window}_{r.ci}" if r.ci else None
        shown = _interval(metrics, f"{window}_{r.key}", r.spec, bounds=bounds)
        if shown != "—":
            found.append(f"{r.label} {shown}")
    return [f"Forecast skill ({window}): " + "; ".join(found) + "."] if found else []


def verdict_line(verdict: GateVerdict) -> str:
    """The verdict and its failing checks in one line with their numbers (the version's description)."""
    counted = [c for c in verdict.checks if not c.skipped]
    if verdict.passed:
        return f"{GATE_LINE_PREFIXES[0]}: all {len(counted)} checks hold."
    failed = verdict.failed
    return (
        f"{GATE_LINE_PREFIXES[1]} ({len(failed)} of {len(counted)} checks): "
        + "; ".join(c.sentence() for c in failed)
        + "."
    )


def _appendix(metrics: Mapping[str, float]) -> list[str]:
    keys = sorted({k.split("_", 1)[1] for k in metrics if k.split("_", 1)[0] in WINDOWS and "_" in k})
    lines = ["| metric | backtest | forward |", "|---|---|---|"]
    lines += [
        f"| {k} | {_fmt(_value(metrics, f'backtest_{k}'))} | {_fmt(_value(metrics, f'forward_{k}'))} |"
        for k in keys
    ]
    return lines


def render_markdown(
    verdict: GateVerdict,
    *,
    name: str,
    version: str,
    metrics: Mapping[str, float],
    gated_at: str,
    plots: Sequence[str] = (),
    window: str = "forward",
) -> str:
    """The report of one gate run.

    Args:
        verdict: the gate's decision.
        name, version: the registered model and version gated.
        metrics: the version's logged metrics (``backtest_*``, ``forward_*``).
        gated_at: ISO-8601 UTC time of the verdict.
        plots: file names of images (equity curves, tear sheets) stored beside the report.
        window: the window the gate's thresholds read; its table comes first.

    Returns:
        Markdown text.
    """
    state = "PASSED" if verdict.passed else "FAILED"
    lines = [
        f"# Gate report: {name} version {version}",
        "",
        f"**Verdict: {state}.** {verdict_line(verdict)}",
        "",
        f"Gated at {gated_at} on the {window} window; champion compared against: "
        f"{verdict.champion_version or 'none (no champion yet)'}."
        + (" Auto-approval policy: eligible." if verdict.auto_approve else ""),
    ]
    ordered = sorted(WINDOWS, key=lambda x: x != window)
    for w in ordered:
        table = headline_table(metrics, w)
        if table:
            lines += ["", f"## Headline: {w} window", "", *table]
            skill = skill_lines(metrics, w)
            lines += ["", *skill] if skill else []
    lines += ["", "## Checks", "", "| check | value | threshold | result |", "|---|---|---|---|"]
    for c in verdict.checks:
        result = "skipped" if c.skipped else ("pass" if c.passed else "**FAIL**")
        note = f" ({c.note})" if c.note else ""
        lines.append(
            f"| {c.label or c.name} | {_fmt(c.value)} | {c.comparator} {c.threshold:.6g} | {result}{note} |"
        )
    logged = [w for w in ordered if _value(metrics, f"{w}_pnl_net") is not None]
    if logged:
        lines += ["", "## Where the PnL comes from (quote currency)", ""]
        lines += pnl_decomposition_table(metrics, windows=logged)
        lines += ["", "Spread capture + adverse selection at the first markout + inventory + fees = net."]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    lines += ["", "## Head-to-head with the champion on identical windows", ""]
    keys = sorted(set(verdict.candidate) | set(verdict.champion or {}))
    lines += ["| metric | candidate | champion |", "|---|---|---|"]
    champ = verdict.champion or {}
    lines += [f"| {k} | {_fmt(verdict.candidate.get(k))} | {_fmt(champ.get(k))} |" for k in keys]
    lines += ["", "## Appendix: every logged metric of the candidate", "", *_appendix(metrics)]
    return "\n".join(lines) + "\n"
