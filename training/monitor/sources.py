"""Where the reference and the current window come from, read as plain values.

* the reference: the champion's training window, from its version's lineage tags
  (``mmops.train.start``/``end``, written by :func:`training.pipeline.tune_and_log`) or, for a
  version trained before those tags, the tuning range of its run's ``tables/split_plan.json``
  (which holds the refit's rows);
* the current outputs: the worker journal's ``signals`` (bar open time, symbol, value, version:
  what the quotes used), else the service's prediction log (``logs/predictions.jsonl``, the lines
  :mod:`serving.prediction_log` writes: ``at``, ``symbol``, ``version``, ``role``, ``output``);
  without either, the champion's own outputs on the newest stored bars;
* the trading KPIs per version from the journal (:func:`trading.worker.attribution.attribute`,
  the numbers the control API shows), with the fill rate of limit orders.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from features.errors import DataError


@dataclass(frozen=True, slots=True)
class TrainingWindow:
    start: pd.Timestamp
    end: pd.Timestamp
    source: str  # "tags" | "split_plan"

    def to_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "source": self.source}


def training_window(
    tags: Mapping[str, str], split_plan: Mapping[str, Any] | None, *, where: str
) -> TrainingWindow:
    """The version's training window from its lineage.

    Raises:
        DataError: neither the tags nor a split plan say (the message names the version).
    """
    if "mmops.train.start" in tags and "mmops.train.end" in tags:
        return TrainingWindow(_utc(tags["mmops.train.start"]), _utc(tags["mmops.train.end"]), "tags")
    tuning = (split_plan or {}).get("tuning")
    if isinstance(tuning, Mapping) and "start" in tuning and "end" in tuning:
        return TrainingWindow(_utc(str(tuning["start"])), _utc(str(tuning["end"])), "split_plan")
    raise DataError(
        f"{where}: its lineage records no training window (no mmops.train.* tags, no tables/split_plan.json "
        "in its run); retrain it with this version of mmops"
    )


def _utc(value: str) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def journal_signals(path: Path, symbol: str) -> pd.Series:
    """The live book's signals for ``symbol`` indexed by bar open time (UTC); empty when none."""
    from trading.worker.journal import Journal

    if not path.exists():
        raise DataError(f"{path}: no journal here; give the run's --journal")
    journal = Journal.reader(path)
    try:
        rows = [(ts, value) for ts, sym, value, _version in journal.signals("live") if sym == symbol]
    finally:
        journal.close()
    index = pd.DatetimeIndex(pd.to_datetime([r[0] for r in rows], utc=True), name="timestamp")
    return pd.Series([r[1] for r in rows], index=index, dtype="float64", name="prediction").sort_index()


def prediction_log(path: Path, symbol: str, *, version: str | None) -> pd.Series:
    """Served outputs for ``symbol`` (role ``served``, of ``version`` when given) by request time."""
    times, values = [], []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                doc = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash: the log is append-only, skip it
            if doc.get("symbol") != symbol or doc.get("role") != "served":
                continue
            if version is not None and str(doc.get("version")) != str(version):
                continue
            times.append(doc["at"])
            values.append(float(doc["output"]))
    index = pd.DatetimeIndex(pd.to_datetime(times, utc=True), name="timestamp")
    return pd.Series(values, index=index, dtype="float64", name="prediction").sort_index()


def journal_kpis(path: Path) -> list[dict[str, Any]]:
    """Per book and version: fills, PnL, fees, spread capture, markouts (attribution) and fill rate."""
    from trading.config import BacktestConfig
    from trading.worker.attribution import attribute, fill_rate
    from trading.worker.journal import Journal

    journal = Journal.reader(path)
    try:
        spec = journal.run_spec()
        if spec is None:
            return []
        bt = BacktestConfig.model_validate(spec["backtest"])
        shares = attribute(
            journal, spec["symbols"], tick=bt.tick_size, lot=bt.lot_size, markout_ticks=bt.markout_bars
        )
        orders = journal.orders()
    finally:
        journal.close()
    return [
        {
            **share.to_dict(),
            "fill_rate": fill_rate(o for o in orders if (o.book, o.version) == (share.book, share.version)),
        }
        for share in shares
    ]
