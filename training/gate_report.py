"""The gate report: a markdown page with the verdict, every check and the metrics tables.

Pure rendering; :mod:`training.registry` writes it beside any equity plot the training run logged
and stores the folder as an artifact of the version's run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from training.gate import GateVerdict


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"


def _metrics_table(metrics: Mapping[str, float]) -> list[str]:
    windows = ("backtest", "forward")
    keys = sorted({k.split("_", 1)[1] for k in metrics if k.split("_", 1)[0] in windows and "_" in k})
    lines = ["| metric | backtest | forward |", "|---|---|---|"]
    lines += [
        f"| {k} | {_fmt(metrics.get(f'backtest_{k}'))} | {_fmt(metrics.get(f'forward_{k}'))} |" for k in keys
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
) -> str:
    """The report of one gate run.

    Args:
        verdict: the gate's decision.
        name, version: the registered model and version gated.
        metrics: the version's logged metrics (``backtest_*``, ``forward_*``).
        gated_at: ISO-8601 UTC time of the verdict.
        plots: file names of images (equity curves) stored beside the report.

    Returns:
        Markdown text.
    """
    state = "PASSED" if verdict.passed else "FAILED"
    lines = [
        f"# Gate report: {name} version {version}",
        "",
        f"**Verdict: {state}** at {gated_at}. Champion compared against: "
        f"{verdict.champion_version or 'none (no champion yet)'}."
        + (" Auto-approval policy: eligible." if verdict.auto_approve else ""),
        "",
        "## Checks",
        "",
        "| check | value | threshold | result |",
        "|---|---|---|---|",
    ]
    for c in verdict.checks:
        result = "skipped" if c.skipped else ("pass" if c.passed else "**FAIL**")
        note = f" ({c.note})" if c.note else ""
        lines.append(f"| {c.name} | {_fmt(c.value)} | {c.comparator} {c.threshold:.6g} | {result}{note} |")
    lines += ["", "## Head-to-head on identical windows", ""]
    keys = sorted(set(verdict.candidate) | set(verdict.champion or {}))
    lines += ["| metric | candidate | champion |", "|---|---|---|"]
    champ = verdict.champion or {}
    lines += [f"| {k} | {_fmt(verdict.candidate.get(k))} | {_fmt(champ.get(k))} |" for k in keys]
    lines += ["", "## Logged metrics of the candidate", "", *_metrics_table(metrics)]
    if plots:
        lines += ["", "## Equity", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"
