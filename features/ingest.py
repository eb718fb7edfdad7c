"""Ingestion: read a source into canonical bars, validate, then merge or quarantine.

The validated store changes only when every series in the batch passes; otherwise the batch
(and the raw files it came from) goes to ``quarantine/`` with its validation result, and
:class:`~features.errors.ValidationFailed` says what failed and where.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from features.config import ValidationConfig
from features.errors import DataError, SourceError, ValidationFailed
from features.sources import binance, files
from features.sources.layout import FileLayout
from features.store import BarStore, WriteResult
from features.validation import ValidationReport, validate_bars

log = logging.getLogger(__name__)

Source = Literal["binance-dump", "file", "ccxt"]


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one ingest read, validated and wrote."""

    source: str
    reports: tuple[ValidationReport, ...]
    writes: tuple[WriteResult, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "series": [
                {
                    "series": str(w.series),
                    "rows_in": w.rows_in,
                    "rows_added": w.rows_added,
                    "rows_replaced": w.rows_replaced,
                    "rows_total": w.rows_total,
                    "months_written": list(w.months_written),
                    "gap_count": r.gaps.count,
                    "longest_gap_bars": r.gaps.longest_bars,
                }
                for w, r in zip(self.writes, self.reports, strict=True)
            ],
        }


def read_source(
    source: Source,
    path: Path,
    *,
    symbol: str | None = None,
    interval: str | None = None,
    preset: str | None = None,
    venue: str | None = None,
    layout: FileLayout | None = None,
) -> pd.DataFrame:
    """Read a file source into canonical bars (ccxt is fetched by ``features.sources.ccxt_source``).

    A ``file`` is read with ``layout`` (default: ``preset``, else columns detected by name).
    """
    if source == "binance-dump":
        return binance.read_dumps(binance.dump_files(path), symbol=symbol, interval=interval)
    if source == "file":
        return read_file_source(
            path, layout=layout or FileLayout(preset=preset), symbol=symbol, venue=venue, interval=interval
        ).bars
    raise SourceError(f"unknown source {source!r}; use binance-dump, file or ccxt")


def read_file_source(
    path: Path, *, layout: FileLayout, symbol: str | None, venue: str | None, interval: str | None
) -> files.FileRead:
    """Read one generic file (``--source file``) with everything decided on the way.

    Raises:
        SourceError: the path is a directory, or the file cannot be read (see ``files.read_bars``).
    """
    if path.is_dir():
        raise SourceError(f"{path}: --source file takes one file, not a directory")
    return files.read_bars(path, layout=layout, symbol=symbol, venue=venue, interval=interval)


def ingest_bars(
    bars: pd.DataFrame,
    *,
    store: BarStore,
    config: ValidationConfig,
    now: pd.Timestamp,
    quarantine_root: Path,
    gx_root: Path | None = None,
    label: str,
    raw_files: tuple[Path, ...] = (),
) -> IngestResult:
    """Validate ``bars`` and merge them into ``store`` only if every series passes.

    Raises:
        ValidationFailed: a series failed; nothing was merged; the batch is in quarantine.
    """
    if bars.empty:
        raise SourceError(f"{label}: no bars to ingest")
    reports = validate_bars(bars, config=config, now=now, gx_root=gx_root)
    failed = [r for r in reports if not r.success]
    if failed:
        where = quarantine(
            bars,
            reason="; ".join(r.summary() for r in failed),
            quarantine_root=quarantine_root,
            label=label,
            raw_files=raw_files,
            reports=reports,
            now=now,
        )
        message = "\n".join(r.summary() for r in failed)
        raise ValidationFailed(
            f"{label}: validation failed, nothing merged, batch quarantined in {where}\n{message}",
            quarantine_path=str(where),
        )
    writes = store.merge(bars)
    by_series = {r.series: r for r in reports}
    ordered = tuple(by_series[str(w.series)] for w in writes)
    return IngestResult(label, ordered, tuple(writes))


def quarantine(
    bars: pd.DataFrame | None,
    *,
    reason: str,
    quarantine_root: Path,
    label: str,
    raw_files: tuple[Path, ...] = (),
    reports: list[ValidationReport] | None = None,
    now: pd.Timestamp,
) -> Path:
    """Keep a rejected batch for inspection: raw files, parsed bars and the validation result."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(label).name)[:80]
    target = quarantine_root / f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{safe}"
    target.mkdir(parents=True, exist_ok=True)
    for raw in raw_files:
        if raw.is_file():
            shutil.copy2(raw, target / raw.name)
    if bars is not None and not bars.empty:
        bars.to_parquet(target / "bars.parquet", index=False)
    payload = {
        "label": label,
        "reason": reason,
        "quarantined_at": now.isoformat(),
        "validation": [
            {"series": r.series, "summary": r.summary(), "gx_result": r.gx_result} for r in reports or []
        ],
    }
    (target / "validation.json").write_text(json.dumps(payload, indent=1, default=str))
    log.info("quarantined %s in %s: %s", label, target, reason)  # the raised error says it once
    return target


def raw_files_of(source: Source, path: Path) -> tuple[Path, ...]:
    """The files a source path stands for (to copy into quarantine)."""
    if source == "binance-dump" and path.is_dir():
        return tuple(sorted(p for p in path.iterdir() if p.suffix == ".zip"))
    return (path,) if path.is_file() else ()


__all__ = [
    "DataError",
    "IngestResult",
    "ingest_bars",
    "quarantine",
    "raw_files_of",
    "read_file_source",
    "read_source",
]
