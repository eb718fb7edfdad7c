"""The validated bar store: Parquet partitioned by venue/symbol/interval/month.

Layout under ``<root>`` (``$MMOPS_HOME/data/bars`` by default)::

    venue=binance/symbol=BTCUSDT/interval=1m/month=2026-03/part-<digest>.parquet
    _manifest.json          # the committed state: partition -> file

Why a manifest: an ingest may rewrite many month files, and a crash half way must leave the
previous state. New files are content-addressed (``part-<sha256>``), written first, and become
visible only when ``_manifest.json`` is atomically replaced. Files the manifest no longer names
are deleted after the commit. Writing identical content produces the identical file name, so
re-ingesting the same data changes no byte of the store.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.errors import DataError
from features.schema import ARROW_SCHEMA, COLUMNS, TIMESTAMP, interval_ns

log = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
_LOCK = ".lock"


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """Identifies one bar series in the store."""

    venue: str
    symbol: str
    interval: str

    def path(self) -> str:
        return f"venue={self.venue}/symbol={self.symbol}/interval={self.interval}"

    def __str__(self) -> str:
        return f"{self.venue}:{self.symbol}:{self.interval}"


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What an ingest changed. Counts are rows."""

    series: SeriesKey
    rows_in: int
    rows_added: int
    rows_replaced: int
    rows_total: int
    months_written: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.months_written)


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """Summary of one stored series; gaps are runs of missing bars."""

    series: SeriesKey
    rows: int
    start: pd.Timestamp
    end: pd.Timestamp
    gap_count: int
    longest_gap_bars: int
    missing_bars: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "venue": self.series.venue,
            "symbol": self.series.symbol,
            "interval": self.series.interval,
            "rows": self.rows,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "gap_count": self.gap_count,
            "longest_gap_bars": self.longest_gap_bars,
            "missing_bars": self.missing_bars,
        }


@dataclass(frozen=True, slots=True)
class GapReport:
    """Missing bars in a timestamp series. ``longest_bars`` counts missing bars in the longest gap."""

    count: int
    longest_bars: int
    missing_bars: int
    expected_bars: int
    longest_start: pd.Timestamp | None

    @property
    def missing_fraction(self) -> float:
        return self.missing_bars / self.expected_bars if self.expected_bars else 0.0


def gap_report(timestamps: pd.Series | pd.DatetimeIndex, interval: str) -> GapReport:
    """Count the gaps in sorted, unique bar open times spaced ``interval`` apart."""
    ns = np.asarray(pd.DatetimeIndex(timestamps).asi8, dtype=np.int64)
    if len(ns) < 2:
        return GapReport(0, 0, 0, len(ns), None)
    step = interval_ns(interval)
    missing = np.diff(ns) // step - 1
    gaps = missing > 0
    longest_at = int(np.argmax(missing)) if gaps.any() else -1
    return GapReport(
        count=int(gaps.sum()),
        longest_bars=int(missing.max()) if gaps.any() else 0,
        missing_bars=int(missing[gaps].sum()),
        expected_bars=int((ns[-1] - ns[0]) // step + 1),
        longest_start=pd.Timestamp(ns[longest_at] + step, tz="UTC") if longest_at >= 0 else None,
    )


class BarStore:
    """Reads and transactionally writes canonical bars under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- reading -------------------------------------------------------------------------------
    def manifest(self) -> dict[str, dict[str, str]]:
        """Committed state: ``{series path: {month: file name}}``."""
        path = self.root / MANIFEST
        if not path.exists():
            return {}
        data: dict[str, dict[str, str]] = json.loads(path.read_text())
        return data

    def series(self) -> list[SeriesKey]:
        keys = []
        for series_path in sorted(self.manifest()):
            parts = dict(p.split("=", 1) for p in series_path.split("/"))
            keys.append(SeriesKey(parts["venue"], parts["symbol"], parts["interval"]))
        return keys

    def read(
        self,
        venue: str,
        symbol: str,
        interval: str,
        *,
        start: pd.Timestamp | str | None = None,
        end: pd.Timestamp | str | None = None,
    ) -> pd.DataFrame:
        """Bars of one series, sorted by time, ``start <= timestamp <= end`` (both inclusive).

        Raises:
            DataError: the series is not in the store.
        """
        key = SeriesKey(venue.lower(), symbol.upper(), interval)
        months = self.manifest().get(key.path())
        if not months:
            known = ", ".join(str(k) for k in self.series()) or "none"
            raise DataError(
                f"no bars for {key} in {self.root}; stored series: {known}. Run `mmops ingest` first."
            )
        lo = _utc(start) if start is not None else None
        hi = _utc(end) if end is not None else None
        frames = []
        for month, name in sorted(months.items()):
            month_start = pd.Timestamp(f"{month}-01", tz="UTC")
            if (hi is not None and month_start > hi) or (
                lo is not None and month_start + pd.offsets.MonthBegin(1) <= lo
            ):
                continue
            frames.append(self._read_file(key, month, name))
        bars = (
            pd.concat(frames, ignore_index=True)
            if frames
            else self._read_file(key, *next(iter(months.items())))[:0]
        )
        mask = np.ones(len(bars), dtype=bool)
        if lo is not None:
            mask &= (bars[TIMESTAMP] >= lo).to_numpy()
        if hi is not None:
            mask &= (bars[TIMESTAMP] <= hi).to_numpy()
        return bars.loc[mask].reset_index(drop=True)

    def info(self) -> list[SeriesInfo]:
        infos = []
        for key in self.series():
            bars = self.read(key.venue, key.symbol, key.interval)
            gaps = gap_report(bars[TIMESTAMP], key.interval)
            infos.append(
                SeriesInfo(
                    series=key,
                    rows=len(bars),
                    start=bars[TIMESTAMP].iloc[0],
                    end=bars[TIMESTAMP].iloc[-1],
                    gap_count=gaps.count,
                    longest_gap_bars=gaps.longest_bars,
                    missing_bars=gaps.missing_bars,
                )
            )
        return infos

    def _read_file(self, key: SeriesKey, month: str, name: str) -> pd.DataFrame:
        path = self.root / key.path() / f"month={month}" / name
        return pq.read_table(path, schema=ARROW_SCHEMA).to_pandas()

    # -- writing -------------------------------------------------------------------------------
    def merge(self, bars: pd.DataFrame) -> list[WriteResult]:
        """Merge validated canonical bars; on equal timestamps the incoming row wins.

        All series and months touched are committed together or not at all.
        """
        if bars.empty:
            return []
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked():
            manifest = self.manifest()
            results = []
            for (venue, symbol, interval), group in bars.groupby(["venue", "symbol", "interval"], sort=True):
                key = SeriesKey(str(venue), str(symbol), str(interval))
                results.append(self._stage_series(key, group, manifest))
            if any(r.changed for r in results):
                self._commit(manifest)
            return results

    def _stage_series(
        self, key: SeriesKey, incoming: pd.DataFrame, manifest: dict[str, dict[str, str]]
    ) -> WriteResult:
        months = dict(manifest.get(key.path(), {}))
        month_of = incoming[TIMESTAMP].dt.strftime("%Y-%m")
        added = replaced = 0
        written = []
        for month, part in incoming.groupby(month_of, sort=True):
            old = self._read_file(key, str(month), months[str(month)]) if str(month) in months else None
            merged, n_added, n_replaced = _merge_rows(old, part)
            added, replaced = added + n_added, replaced + n_replaced
            blob = _to_parquet_bytes(merged)
            name = f"part-{hashlib.sha256(blob).hexdigest()[:16]}.parquet"
            if months.get(str(month)) == name:
                continue
            target = self.root / key.path() / f"month={month}" / name
            _atomic_write(target, blob)
            months[str(month)] = name
            written.append(str(month))
        manifest[key.path()] = dict(sorted(months.items()))
        total = sum(
            pq.ParquetFile(self.root / key.path() / f"month={m}" / n).metadata.num_rows
            for m, n in months.items()
        )
        return WriteResult(key, len(incoming), added, replaced, total, tuple(written))

    def _commit(self, manifest: dict[str, dict[str, str]]) -> None:
        blob = json.dumps(dict(sorted(manifest.items())), indent=1, sort_keys=True).encode() + b"\n"
        _atomic_write(self.root / MANIFEST, blob)
        self._collect_garbage(manifest)

    def _collect_garbage(self, manifest: dict[str, dict[str, str]]) -> None:
        live = {self.root / s / f"month={m}" / n for s, months in manifest.items() for m, n in months.items()}
        for path in self.root.glob("venue=*/symbol=*/interval=*/month=*/*.parquet"):
            if path not in live:
                path.unlink()
                log.debug("removed superseded %s", path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / _LOCK, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _merge_rows(old: pd.DataFrame | None, new: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    new = new.sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)
    if old is None or old.empty:
        return new[list(COLUMNS)], len(new), 0
    overlap_old = old[old[TIMESTAMP].isin(new[TIMESTAMP])].set_index(TIMESTAMP)
    overlap_new = new[new[TIMESTAMP].isin(old[TIMESTAMP])].set_index(TIMESTAMP).loc[overlap_old.index]
    differs = ~(overlap_old.eq(overlap_new) | (overlap_old.isna() & overlap_new.isna())).all(axis=1)
    merged = pd.concat([old[~old[TIMESTAMP].isin(new[TIMESTAMP])], new], ignore_index=True)
    merged = merged.sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)
    return merged[list(COLUMNS)], len(new) - len(overlap_old), int(differs.sum())


def _to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(frame, schema=ARROW_SCHEMA, preserve_index=False)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _atomic_write(target: Path, blob: bytes) -> None:
    """Write ``blob`` to ``target`` so readers see the old file or the new one, never a part."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _utc(value: pd.Timestamp | str) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
