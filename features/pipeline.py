"""The data-plane steps as the CLI, DVC stages and Prefect tasks all call them.

Each takes explicit locations and config (resolved at the edge) and returns plain data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from features.build import compute_features, make_labels
from features.config import FeaturesConfig, ValidationConfig
from features.errors import DataError, SourceError, ValidationFailed
from features.feature_files import labels_path, write_features, write_labels
from features.ingest import Source, ingest_bars, quarantine, raw_files_of, read_file_source, read_source
from features.schema import interval_ns, normalize_interval, normalize_symbol
from features.sources import binance
from features.sources.files import FileRead
from features.sources.layout import FileLayout
from features.store import BarStore
from features.validation import ValidationReport, validate_bars

log = logging.getLogger(__name__)
T = TypeVar("T")
Progress = Callable[[Iterable[T], str], Iterable[T]]


def _no_progress(items: Iterable[T], _description: str) -> Iterable[T]:
    return items


def ingest_source(
    source: str,
    path: Path,
    *,
    store_root: Path,
    quarantine_root: Path,
    gx_root: Path | None,
    validation: ValidationConfig,
    now: pd.Timestamp,
    symbol: str | None = None,
    interval: str | None = None,
    venue: str | None = None,
    preset: str | None = None,
    layout: FileLayout | None = None,
    since: str | None = None,
    progress: Progress[Path] = _no_progress,
) -> dict[str, Any]:
    """Read, validate and merge one source; a parse failure is quarantined like a failed batch.

    A ``file`` source is read with ``layout`` (default: ``preset``, else detected columns); each
    of its series in the result carries ``read``: the columns chosen, the time unit and zone,
    rows read, exact duplicates dropped, and whether newest-first input was sorted.

    Raises:
        SourceError: the source cannot be read (the raw files are quarantined; the message says where).
        ValidationFailed: the batch failed validation (quarantined, nothing merged).
    """
    store = BarStore(store_root)
    read: FileRead | None = None
    if source == "ccxt":
        bars = _fetch_ccxt(str(path), store, symbol=symbol, interval=interval, since=since, now=now)
        raw: tuple[Path, ...] = ()
    else:
        typed: Source = source  # type: ignore[assignment]
        raw = raw_files_of(typed, path)
        try:
            if typed == "binance-dump":
                frames = [
                    binance.read_dump(p, symbol=symbol, interval=interval)
                    for p in progress(binance.dump_files(path), "reading")
                ]
                bars = pd.concat(frames, ignore_index=True)
            elif typed == "file":
                read = read_file_source(
                    path,
                    layout=layout or FileLayout(preset=preset),
                    symbol=symbol,
                    venue=venue,
                    interval=interval,
                )
                bars = read.bars
            else:
                bars = read_source(typed, path, symbol=symbol, interval=interval)
        except SourceError as exc:
            if not raw:  # nothing to keep: the path does not exist
                raise
            kept = quarantine(
                None,
                reason=str(exc),
                quarantine_root=quarantine_root,
                label=str(path),
                raw_files=raw,
                now=now,
            )
            raise SourceError(f"{exc} (nothing merged; the raw file is kept in {kept})") from exc
    result = ingest_bars(
        bars,
        store=store,
        config=validation,
        now=now,
        quarantine_root=quarantine_root,
        gx_root=gx_root,
        label=str(path),
        raw_files=raw,
    )
    out = result.to_dict()
    if read is not None:
        for series in out["series"]:
            series["read"] = read.to_dict()
    return out


def _fetch_ccxt(
    exchange_id: str,
    store: BarStore,
    *,
    symbol: str | None,
    interval: str | None,
    since: str | None,
    now: pd.Timestamp,
) -> pd.DataFrame:
    from features.sources import ccxt_source

    if not symbol or not interval:
        raise SourceError("--source ccxt needs --symbol (the ccxt market, e.g. BTC/USDT) and --interval")
    interval = normalize_interval(interval)
    if since is None:
        try:
            last = store.read(exchange_id, normalize_symbol(symbol), interval)["timestamp"].iloc[-1]
            start = last + pd.Timedelta(interval_ns(interval), unit="ns")
        except DataError:
            raise SourceError(f"no {exchange_id} {symbol} {interval} bars stored yet: give --since") from None
    else:
        start = pd.Timestamp(since, tz="UTC")
    step = interval_ns(interval)
    until = pd.Timestamp(now.value // step * step, tz="UTC")  # the open bar is never stored
    exchange = ccxt_source.make_exchange(exchange_id)
    return ccxt_source.fetch_incremental(exchange, market=symbol, interval=interval, since=start, until=until)


def validate_store(
    store_root: Path,
    *,
    config: ValidationConfig,
    gx_root: Path | None,
    now: pd.Timestamp,
    symbol: str | None = None,
    interval: str | None = None,
    venue: str | None = None,
) -> list[ValidationReport]:
    """Re-validate stored series (all, or those matching the filters)."""
    store = BarStore(store_root)
    keys = [
        k
        for k in store.series()
        if (symbol is None or k.symbol == normalize_symbol(symbol))
        and (interval is None or k.interval == normalize_interval(interval))
        and (venue is None or k.venue == venue.lower())
    ]
    if not keys:
        raise DataError(
            f"no stored series match (symbol={symbol}, interval={interval}, venue={venue}); run `mmops ingest`"
        )
    bars = pd.concat([store.read(k.venue, k.symbol, k.interval) for k in keys], ignore_index=True)
    return validate_bars(bars, config=config, now=now, gx_root=gx_root)


def read_validated(path: Path, *, config: ValidationConfig, now: pd.Timestamp) -> pd.DataFrame:
    """Read one series from a raw dump (zip or folder) or file and validate it in memory; nothing
    is written to the store or quarantined (for scoring data that must not enter the store).

    Raises:
        ValidationFailed: the data-quality suite failed (the message names expectations and rows).
        DataError: the file holds several series.
    """
    bars = read_source("binance-dump" if path.suffix == ".zip" or path.is_dir() else "file", path)
    failed = [r for r in validate_bars(bars, config=config, now=now) if not r.success]
    if failed:
        raise ValidationFailed("; ".join(r.summary() for r in failed), quarantine_path=None)
    if bars[["venue", "symbol", "interval"]].drop_duplicates().shape[0] != 1:
        raise DataError(f"{path}: holds several series; use one at a time")
    return bars


def resolve_venue(store: BarStore, symbol: str, interval: str, venue: str | None) -> str:
    """The venue of ``symbol``/``interval`` when only one venue has it."""
    if venue:
        return venue.lower()
    venues = sorted(
        {k.venue for k in store.series() if k.symbol == normalize_symbol(symbol) and k.interval == interval}
    )
    if len(venues) != 1:
        found = ", ".join(venues) or "none"
        raise DataError(f"{symbol} {interval}: give --venue (stored venues: {found})")
    return venues[0]


def build_features(
    store_root: Path,
    *,
    features_root: Path,
    config: FeaturesConfig,
    symbol: str,
    interval: str,
    venue: str | None = None,
    start: str | None = None,
    end: str | None = None,
    out: Path | None = None,
) -> dict[str, Any]:
    """Compute and write the feature frame (and the label frame beside it) for one series
    (:mod:`features.feature_files`: float32 features with their config, float64 labels)."""
    store = BarStore(store_root)
    interval = normalize_interval(interval)
    symbol = normalize_symbol(symbol)
    venue = resolve_venue(store, symbol, interval, venue)
    end_ts = _utc(end) if end else None
    bars = store.read(venue, symbol, interval, end=end_ts)
    frame = compute_features(bars, config, start=_utc(start) if start else None, end=end_ts)
    labels = make_labels(bars, horizon=config.label_horizon).loc[frame.index]
    target = out or features_root / f"{venue}-{symbol}-{interval}.parquet"
    series = f"{venue}:{symbol}:{interval}"
    write_features(frame, target, config=config, series=series)
    labels_file = labels_path(target)
    write_labels(labels, labels_file)
    return {
        "series": series,
        "rows": len(frame),
        "columns": frame.shape[1],
        "start": frame.index[0].isoformat() if len(frame) else None,
        "end": frame.index[-1].isoformat() if len(frame) else None,
        "features": str(target),
        "labels": str(labels_file),
    }


def _utc(value: str) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
