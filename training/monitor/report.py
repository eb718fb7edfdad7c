"""Evidently reports of a drift verdict: HTML and snapshot JSON, and the list of saved reports.

A report folder is ``<root>/<series>/<timestamp>/`` with ``report.html`` (self-contained, opens
offline), ``snapshot.json`` (``Snapshot.dumps()``; ``evidently.core.report.Snapshot.loads`` reads
it back) and ``summary.json`` (our verdict: what ``mmops drift review`` lists). The report draws
the newest window on the reference, both standardised by the reference (the scale the scores
are computed in), for the features that drifted first, then the highest scores.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from training.monitor.config import MonitorConfig
from training.monitor.drift import WindowDrift

logger = logging.getLogger(__name__)
SUMMARY, HTML, SNAPSHOT = "summary.json", "report.html", "snapshot.json"


@contextmanager
def _quiet() -> Iterator[None]:
    """Evidently's plots warn per column ("Converting to PeriodArray ... timezone"): not ours to print."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def write_evidently(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    window: WindowDrift,
    folder: Path,
    *,
    config: MonitorConfig,
    title: str,
) -> tuple[Path, Path]:
    """Run an Evidently report on the drawn columns of ``window`` and save HTML and snapshot JSON.

    Args:
        reference, current: standardised frames (and a ``prediction`` column when scored).
        window: the scored window (chooses and orders the columns).
        folder: created if missing.
        title: the report's name (series and model version).

    Returns:
        The HTML and snapshot paths.
    """
    with _quiet():
        from evidently import DataDefinition, Dataset, Report
        from evidently.metrics import DriftedColumnsCount, ValueDrift

        columns = [c.column for c in window.top(config.report_max_features)]
        if window.prediction is not None and "prediction" in current.columns:
            columns.append("prediction")
        definition = DataDefinition(numerical_columns=columns)
        items: list[Any] = [
            DriftedColumnsCount(
                columns=[c for c in columns if c != "prediction"],
                method=config.num_method,
                threshold=config.num_threshold,
                drift_share=config.drift_share,
            )
        ]
        for column in columns:
            method, threshold = (
                (config.prediction_method, config.prediction_threshold)
                if column == "prediction"
                else (config.num_method, config.num_threshold)
            )
            items.append(ValueDrift(column=column, method=method, threshold=threshold))
        # Evidently's run takes the current data first, the reference second
        snapshot = Report(items, include_tests=True).run(
            Dataset.from_pandas(current[columns].reset_index(drop=True), data_definition=definition),
            Dataset.from_pandas(reference[columns].reset_index(drop=True), data_definition=definition),
            name=title,
        )
        folder.mkdir(parents=True, exist_ok=True)
        html, snap = folder / HTML, folder / SNAPSHOT
        snapshot.save_html(str(html))
        snap.write_text(snapshot.dumps(), encoding="utf-8")
    _check_agreement(snapshot.dict(), window)
    return html, snap


def _check_agreement(doc: dict[str, Any], window: WindowDrift) -> None:
    """Our per-column decisions must be Evidently's tests' (the fast path reimplements one)."""
    ours = {c.column: c.drifted for c in window.features}
    if window.prediction is not None:
        ours["prediction"] = window.prediction.drifted
    for test in doc.get("tests", []):
        column = test.get("metric_config", {}).get("params", {}).get("column")
        if column in ours and (test.get("status") == "FAIL") != ours[column]:
            logger.warning(
                "drift: Evidently's test on %s says %s, the fast score disagrees", column, test["status"]
            )


def write_summary(folder: Path, summary: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SUMMARY
    path.write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    return path


def list_reports(root: Path, *, series: str | None = None) -> list[dict[str, Any]]:
    """Saved verdicts, newest first: time, series, version, verdict, what drifted, the HTML path."""
    out = []
    for path in sorted(root.glob(f"{series or '*'}/*/{SUMMARY}")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            logger.warning("drift review: %s is not readable; skipped", path)
            continue
        out.append(
            {
                "at": doc.get("at"),
                "series": doc.get("series"),
                "version": doc.get("model_version"),
                "drift": doc.get("drift"),
                "sustained": doc.get("sustained"),
                "drifted": doc.get("drifted_features", []),
                "reasons": doc.get("reasons", []),
                "report": str(path.parent / HTML) if (path.parent / HTML).exists() else None,
                "folder": str(path.parent),
            }
        )
    return sorted(out, key=lambda r: str(r["at"]), reverse=True)
