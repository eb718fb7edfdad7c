"""``mmops drift | drift review | drift ui``: drift of the champion's inputs, outputs and results.

Thin: each command resolves locations and params, calls :func:`flows.monitor_steps.compute_drift`
or :func:`training.monitor.report.list_reports`, and reports. Bad input (unknown series, no
champion, an empty or too small window) is one line on stderr and exit 1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from features.errors import ConfigError
from flows.cli_common import JsonOpt, app, context, emit, reported

drift_app = typer.Typer(
    invoke_without_command=True,
    help="Compute a drift verdict for a series against its champion's training window; review them.",
)
app.add_typer(drift_app, name="drift")

SeriesOpt = Annotated[str | None, typer.Option("--series", help="SYMBOL-INTERVAL, e.g. BTCUSDT-1m")]


def _human(doc: dict[str, Any]) -> str:
    verdict = "DRIFT" if doc["drift"] else "no drift"
    sustained = "sustained" if doc["sustained"] else "not sustained"
    latest = doc["windows"][-1]
    lines = [
        f"{doc['series']} v{doc['model_version']}: {verdict} ({sustained}; "
        f"{len(doc['windows'])} window(s), newest {latest['start']} .. {latest['end']}, {latest['rows']} rows)",
        f"  drifted features: {latest['drift_share']:.0%} of {len(latest['features'])}"
        + (f"; reasons: {', '.join(latest['reasons'])}" if latest["reasons"] else ""),
    ]
    for c in doc["top_features"][:5]:
        lines.append(f"    {c['column']:<16} {c['score']:.3f}{'  drifted' if c['drifted'] else ''}")
    if doc["prediction"]:
        p = doc["prediction"]
        lines.append(f"  prediction: {p['score']:.3f}{' drifted' if p['drifted'] else ''} ({doc['source']})")
    if doc["performance"]:
        q = doc["performance"]
        lines.append(
            f"  realised {q['metric']}: {q['realised']:.3g} (at training: {q['logged']}){' DEGRADED' if q['degraded'] else ''}"
        )
    lines.append(f"report: {doc['report']}")
    return "\n".join(lines)


@drift_app.callback()
@reported
def drift(
    ctx: typer.Context,
    series: SeriesOpt = None,
    window: Annotated[
        str | None, typer.Option("--window", help="per window: bars (1440) or a duration (1d, 12h)")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="judge up to this bar (UTC); default: the newest")
    ] = None,
    journal: Annotated[
        Path | None, typer.Option("--journal", help="a worker's journal: its signals and KPIs per version")
    ] = None,
    prediction_log: Annotated[
        Path | None,
        typer.Option("--prediction-log", help="the service's log (default: logs/predictions.jsonl)"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """One drift verdict: verdict, sustained or not, top drifted features, report path."""
    if ctx.invoked_subcommand is not None:
        return
    import pandas as pd

    from flows.monitor_steps import compute_drift

    where, params = context()
    try:
        stamp = pd.Timestamp(end, tz="UTC") if end else None
    except ValueError as exc:
        raise ConfigError(f"--end {end!r}: not a date/time") from exc
    verdict = compute_drift(
        where, params, series=series, window=window, end=stamp, journal=journal, prediction_log=prediction_log
    )
    doc = verdict.to_dict()
    emit(doc, as_json=as_json, human=_human(doc))


@drift_app.command("review")
@reported
def review(series: SeriesOpt = None, as_json: JsonOpt = False) -> None:
    """The saved drift reports, newest first: time, version, verdict, what drifted, link."""
    from training.monitor.report import list_reports

    where, _params = context()
    rows = list_reports(where.reports / "drift", series=series)
    human = "\n".join(
        f"{r['at']}  {r['series']}  v{r['version']}  {'DRIFT' if r['drift'] else 'ok   '}  "
        f"{', '.join(r['drifted'][:4]) or '-'}  {r['report']}"
        for r in rows
    )
    emit(
        {"reports": rows}, as_json=as_json, human=human or f"no drift reports under {where.reports / 'drift'}"
    )


@drift_app.command("ui")
@reported
def ui(port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000) -> None:
    """Start `evidently ui` on the local workspace under reports/ (telemetry off)."""
    where, _params = context()
    workspace = where.reports / "evidently"
    workspace.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DO_NOT_TRACK": "1"}
    command = [sys.executable, "-m", "evidently", "ui", "--workspace", str(workspace), "--port", str(port)]
    raise typer.Exit(subprocess.call(command, env=env))
