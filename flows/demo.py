"""``make demo``: the nightly pipeline end to end on the shipped real data, then a one-screen summary.

Progress shows one line (or bar) per step; the full result goes to ``reports/demo/nightly.json``
and the summary says where to look next, with real paths.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from features.errors import MmopsError
from flows.cli_common import prepare_process
from flows.progress_view import show_progress
from flows.settings import Locations

if TYPE_CHECKING:
    from trading.worker.run import TradeReport

# (column title, metric suffix): the objective (utility of daily PnL, bps of capital/day) and PnL of
# the model's quoter and the model-free A-S quoter, buy-and-hold, and the forecast's skill (> 0 beats
# the no-information forecast).
COLUMNS = (
    ("utility bp/d", "utility"),
    ("model PnL %", "pnl_pct"),
    ("A-S utility bp/d", "as_utility"),
    ("A-S PnL %", "as_pnl_pct"),
    ("B&H PnL %", "bh_pnl_pct"),
    ("skill", "skill"),
    ("fills", "n_trades"),
)


def main() -> int:
    started = time.monotonic()
    where = prepare_process(verbose=False)
    # no markup: paths and messages are printed as they are; a log file has no width
    out = Console(highlight=False, markup=False, width=None if sys.stdout.isatty() else 100)
    if not where.source_data.is_dir():
        out.print(f"error: no source data at {where.source_data}; set MMOPS_SOURCE_DATA", style="red")
        return 1
    out.print(f"mmops demo: the nightly pipeline on {where.source_data} (MMOPS_HOME={where.home})")
    if not os.environ.get("PREFECT_API_URL"):
        out.print(f"Starting a temporary Prefect server (database {where.prefect_home / 'prefect.db'})")
    from flows.retrain import nightly_flow  # after prepare_process: Prefect reads its settings on import

    try:
        with show_progress(out):
            result = nightly_flow()
    except MmopsError as exc:
        out.print(f"error: {exc}", style="red", soft_wrap=True)
        return 1
    from flows.params import load_params
    from flows.trade_steps import newest_day_replay

    try:
        with show_progress(out):
            trade, replay = newest_day_replay(where, load_params(where.params_file))
    except MmopsError as exc:
        out.print(f"error: paper replay: {exc}", style="red", soft_wrap=True)
        return 1
    result["paper_replay"] = trade.to_dict() | {"replay": replay}
    saved = where.reports / "demo" / "nightly.json"
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(result, indent=1, default=str))
    summarize(out, where, result["trained"], saved=saved)
    summarize_replay(out, trade, replay)
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    out.print(f"\nThe demo took {minutes} min {seconds:02d} s.")
    return 0


def summarize(out: Console, where: Locations, trained: dict[str, Any], *, saved: Path) -> None:
    """The families side by side, the registered version, the gate verdict and what to run next."""
    chosen = trained["chosen"]
    table = Table(
        title=f"Candidates ({chosen['task']}), quoters net of fees; chosen on the backtest window",
        box=box.SIMPLE_HEAD,
        title_justify="left",
        padding=(0, 1),
        pad_edge=False,
    )
    table.add_column("family")
    table.add_column("window")
    for title, _ in COLUMNS:
        table.add_column(title, justify="right")
    for candidate in trained["candidates"]:
        mark = " *" if candidate["family"] == chosen["family"] else ""
        for window in ("backtest", "forward"):
            metrics = candidate["metrics"]
            cells = [_number(metrics.get(f"{window}_{key}")) for _, key in COLUMNS]
            name = f"{candidate['family']}{mark}" if window == "backtest" else ""
            table.add_row(name, window, *cells)
    out.print()
    out.print(table)
    gate = trained["gate"]
    bin_dir = Path(sys.executable).parent
    out.print(
        f"Registered: version {trained['version']} ({chosen['family']} {chosen['task']}, "
        f"{chosen['trials']} trials in its study)"
    )
    if gate["passed"]:
        out.print(Text.assemble("Gate: ", ("passed", "green"), f"; version {gate['version']} is @challenger"))
    else:
        out.print(Text.assemble("Gate: ", ("refused", "red"), f" version {gate['version']}:"))
        for reason in gate["failed"]:
            out.print(f"  - {reason}")
    out.print("\nNext:")
    for command, why in _next_steps(where, gate, bin_dir):
        out.print(f"  {command}\n      {why}", soft_wrap=True)
    out.print(f"Full result: {saved}", soft_wrap=True)  # a path stays whole, however long


def summarize_replay(out: Console, trade: TradeReport, replay: str) -> None:
    """The worker's paper replay of the newest day: on what it quoted, fills, PnL, risk."""
    on = trade.model if trade.model != "model-free" else "model-free quotes (no champion approved yet)"
    out.print(f"\nPaper replay through the worker, {replay}", soft_wrap=True)
    out.print(f"  quotes from: {on}")
    pnl = trade.pnl.get("live", 0.0)
    start = trade.final_equity.get("live", 0.0) - pnl
    out.print(
        f"  {trade.fills.get('live', 0)} fills, PnL {pnl:+,.2f} ({100 * pnl / start:+.3f}%), "
        f"{_count(len(trade.risk_events), 'risk event')}, "
        f"{_count(sum(a['kind'] == 'alert' for a in trade.alerts), 'alert')}"
    )
    for v in trade.by_version:
        capture = "n/a" if v.spread_capture_bps is None else f"{v.spread_capture_bps:.2f} bps"
        markout = v.markouts_bps.get("5")
        later = "n/a" if markout is None else f"{markout:+.2f} bps"
        out.print(f"  {v.label}: fees {v.fees:,.2f}, spread capture {capture}, 5-bar markout {later}")
    mmops = Path(sys.executable).parent / "mmops"
    out.print(f"  {mmops} trade status --journal {trade.journal}", soft_wrap=True)


def _next_steps(where: Locations, gate: dict[str, Any], bin_dir: Path) -> list[tuple[str, str]]:
    mmops = bin_dir / "mmops"
    docs = where.data_docs
    steps = [
        (f"{bin_dir / 'mlflow'} ui --backend-store-uri {where.tracking_uri}", "studies, trials, artifacts"),
        (str(docs), "Great Expectations Data Docs (open in a browser)"),
        (gate["report"], "the gate report"),
        (f"{mmops} registry status", "versions, aliases, verdicts"),
    ]
    version = gate["version"]
    if gate["passed"]:
        steps.append((f'{mmops} approve --version {version} --by "$USER" --reason "..."', "make it champion"))
    else:
        steps.append(
            (
                f"MMOPS_PARAMS=my-params.yaml {mmops} gate --version {version}",
                "to try approve and serve anyway: gate again with lower `gate` thresholds",
            )
        )
    steps.append((f"{mmops} serve --port 3000", "serve @champion over HTTP (once one is approved)"))
    return steps


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _number(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.2f}"


if __name__ == "__main__":
    raise SystemExit(main())
