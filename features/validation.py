"""Data-quality validation of canonical bars with a Great Expectations suite.

The suite runs on the batch as it arrived (unsorted rows are a finding, not something to fix
quietly). Checks that GX has no expectation for (alignment to the interval, bar-to-bar return
outliers, bar range) run as GX expectations on derived columns, so every finding appears in
one GX result and in Data Docs. Gaps are counted separately and fail only above a limit.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.config import ValidationConfig
from features.schema import COLUMNS, PRICE_COLUMNS, TIMESTAMP, interval_ns
from features.store import GapReport, gap_report

log = logging.getLogger(__name__)

SUITE_NAME = "canonical_bars"
_EXAMPLES = 5


@dataclass(frozen=True, slots=True)
class Finding:
    """One failed expectation with a few example rows (identified by open time)."""

    expectation: str
    column: str
    unexpected_count: int
    examples: tuple[str, ...]

    def __str__(self) -> str:
        where = f" on {self.column}" if self.column else ""
        shown = "; ".join(self.examples)
        return f"{self.expectation}{where}: {self.unexpected_count} rows, e.g. {shown}"


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """Outcome of validating one series' batch."""

    series: str
    rows: int
    findings: tuple[Finding, ...]
    gaps: GapReport
    gx_result: dict[str, Any] = field(repr=False)

    @property
    def success(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        if self.success:
            return f"{self.series}: {self.rows} rows valid, {self.gaps.count} gaps (longest {self.gaps.longest_bars} bars)"
        return f"{self.series}: {len(self.findings)} failed checks: " + " | ".join(
            str(f) for f in self.findings
        )


def validate_bars(
    bars: pd.DataFrame, *, config: ValidationConfig, now: pd.Timestamp, gx_root: Path | None = None
) -> list[ValidationReport]:
    """Validate each series in ``bars``; optionally record results and Data Docs under ``gx_root``.

    Args:
        bars: canonical bars, possibly several series, in arrival order.
        config: bounds.
        now: the clock (UTC); open times after ``now + tolerance`` fail.
        gx_root: a Great Expectations file project (results + Data Docs HTML); in memory if None.
    """
    context = _context(gx_root)
    reports = []
    for (venue, symbol, interval), batch in bars.groupby(["venue", "symbol", "interval"], sort=True):
        series = f"{venue}:{symbol}:{interval}"
        batch = batch.reset_index(drop=True)
        result = _run_suite(context, series, _with_derived(batch, str(interval)), config=config, now=now)
        findings = _findings(result)
        gaps = gap_report(batch[TIMESTAMP].sort_values().drop_duplicates(), str(interval))
        if gaps.missing_fraction > config.max_missing_fraction:
            findings.append(
                Finding(
                    "gap_limit",
                    TIMESTAMP,
                    gaps.missing_bars,
                    (
                        f"{gaps.count} gaps, {gaps.missing_fraction:.2%} of bars missing > limit "
                        f"{config.max_missing_fraction:.2%}; longest {gaps.longest_bars} bars from {gaps.longest_start}",
                    ),
                )
            )
        reports.append(ValidationReport(series, len(batch), tuple(findings), gaps, result))
        log.info("%s", reports[-1].summary())
    if gx_root is not None:
        context.build_data_docs()
    return reports


def _with_derived(batch: pd.DataFrame, interval: str) -> pd.DataFrame:
    frame = batch.copy()
    step = interval_ns(interval)
    frame["ts_offset_ns"] = frame[TIMESTAMP].astype("int64") % step
    close = frame["close"].where(frame["close"] > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["log_return"] = np.log(close).diff()
        frame["log_range"] = np.log(
            frame["high"].where(frame["high"] > 0) / frame["low"].where(frame["low"] > 0)
        )
    return frame


def _suite(config: ValidationConfig, now: pd.Timestamp) -> Any:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=SUITE_NAME)
    latest = now + pd.Timedelta(seconds=config.future_tolerance_s)
    expectations = [
        gxe.ExpectTableColumnsToMatchOrderedList(
            column_list=[*COLUMNS, "ts_offset_ns", "log_return", "log_range"]
        ),
        gxe.ExpectColumnValuesToBeOfType(column=TIMESTAMP, type_="Timestamp"),
        *[gxe.ExpectColumnValuesToBeOfType(column=c, type_="float64") for c in (*PRICE_COLUMNS, "volume")],
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in (TIMESTAMP, *PRICE_COLUMNS, "volume")],
        gxe.ExpectColumnValuesToBeUnique(column=TIMESTAMP),
        gxe.ExpectColumnValuesToBeIncreasing(column=TIMESTAMP, strictly=True),
        gxe.ExpectColumnValuesToBeBetween(column="ts_offset_ns", min_value=0, max_value=0),
        gxe.ExpectColumnValuesToBeBetween(column=TIMESTAMP, max_value=latest.to_pydatetime()),
        *[gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, strict_min=True) for c in PRICE_COLUMNS],
        *[
            gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0)
            for c in ("volume", "quote_volume", "trades")
        ],
        *[
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=a, column_B=b, or_equal=True, ignore_row_if="either_value_is_missing"
            )
            for a, b in [
                ("high", "low"),
                ("high", "open"),
                ("high", "close"),
                ("open", "low"),
                ("close", "low"),
                ("volume", "taker_buy_volume"),
            ]
        ],
        gxe.ExpectColumnValuesToBeBetween(
            column="log_return", min_value=-config.max_abs_log_return, max_value=config.max_abs_log_return
        ),
        gxe.ExpectColumnValuesToBeBetween(column="log_range", min_value=0, max_value=config.max_log_range),
    ]
    for expectation in expectations:
        suite.add_expectation(expectation)
    return suite


def _context(gx_root: Path | None) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    if gx_root is None:
        context: Any = gx.get_context(mode="ephemeral")
    else:
        gx_root.mkdir(parents=True, exist_ok=True)
        context = gx.get_context(mode="file", project_root_dir=str(gx_root))
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def _run_suite(
    context: Any, series: str, frame: pd.DataFrame, *, config: ValidationConfig, now: pd.Timestamp
) -> dict[str, Any]:
    import great_expectations as gx

    suite = context.suites.add_or_update(_suite(config, now))
    source = context.data_sources.add_or_update_pandas("mmops")
    asset_name = series.replace(":", "_")
    asset = next((a for a in source.assets if a.name == asset_name), None) or source.add_dataframe_asset(
        asset_name
    )
    batch = next(
        (b for b in asset.batch_definitions if b.name == "batch"), None
    ) or asset.add_batch_definition_whole_dataframe("batch")
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(data=batch, suite=suite, name=f"{asset_name}-bars")
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=f"{asset_name}-ingest",
            validation_definitions=[definition],
            actions=[],
            result_format={
                "result_format": "SUMMARY",
                "unexpected_index_column_names": [TIMESTAMP],
                "partial_unexpected_count": _EXAMPLES,
            },
        )
    )
    run = checkpoint.run(batch_parameters={"dataframe": frame})
    (result,) = run.run_results.values()
    described: dict[str, Any] = result.describe_dict()
    return described


def _findings(result: dict[str, Any]) -> list[Finding]:
    findings = []
    for item in result["expectations"]:
        if item["success"]:
            continue
        kwargs = item.get("kwargs", {})
        column = kwargs.get("column") or ",".join(
            str(kwargs[k]) for k in ("column_A", "column_B") if k in kwargs
        )
        details = item.get("result", {})
        count = details.get("unexpected_count")
        examples = tuple(_example(row) for row in details.get("partial_unexpected_index_list") or [])[
            :_EXAMPLES
        ]
        if not examples and "observed_value" in details:
            examples = (f"observed {details['observed_value']}",)
        findings.append(
            Finding(item["expectation_type"], column, int(count) if count is not None else 0, examples)
        )
    return findings


def _example(row: Any) -> str:
    if not isinstance(row, dict):
        return str(row)
    parts = []
    for key, value in row.items():
        if isinstance(value, float) and math.isnan(value):
            value = "NaN"
        parts.append(f"{key}={value}")
    return ", ".join(parts)
