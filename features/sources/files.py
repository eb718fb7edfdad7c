"""Generic OHLCV files (CSV, Parquet, Feather, JSON; gzip or zip around them) -> canonical bars.

One reader for every layout: a :class:`~features.sources.layout.FileLayout` says what the user
knows (a preset, a column mapping, the time unit, format and zone), the file supplies the rest
(:mod:`features.sources.tables` reads it, :mod:`features.sources.timestamps` reads its times).
Order and duplicates are decided here, explicitly:

- newest-first input is reversed (``sorted`` in the result); any other disorder is rejected,
  since it usually means a mis-read time (a day/month swap, a wrong unit);
- rows identical in every column read are dropped and counted;
- two rows with the same open time and different values are rejected, naming both.

Every failure to read or parse the file is a :class:`~features.errors.SourceError` naming the
file, the line (1-based, as an editor shows it, header included) or row, and the column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype

from features.errors import SourceError
from features.schema import TIMESTAMP, VALUE_COLUMNS, conform, normalize_interval, normalize_symbol
from features.sources.layout import PRESETS, ColumnChoice, FileLayout, Preset, resolve_columns
from features.sources.tables import DECIMAL, RawTable, as_numbers, as_text, read_table
from features.sources.timestamps import Times, parse_times

_MISSING = frozenset({"", "nan", "none", "null", "na", "n/a"})


@dataclass(frozen=True, slots=True)
class FileRead:
    """What reading one file produced, and every choice made on the way.

    Attributes:
        bars: canonical bars, oldest first, unique open times.
        path: the file.
        format: what was read (``csv``, ``csv in gzip``, ``parquet``, ...).
        preset: the preset used, if any.
        columns: which source column became which canonical column, and why.
        times: how the open times were read (unit, format, zone).
        rows_read: data rows in the file (blank lines not counted).
        duplicates_dropped: rows identical to an earlier row in every column read.
        sorted: the file was newest-first and was reversed.
        header_line: the 1-based line of the header in a text file, else None.
    """

    bars: pd.DataFrame
    path: Path
    format: str
    preset: str | None
    columns: tuple[ColumnChoice, ...]
    times: Times
    rows_read: int
    duplicates_dropped: int
    sorted: bool
    header_line: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "format": self.format,
            "preset": self.preset,
            "header_line": self.header_line,
            "columns": {c.canonical: c.source for c in self.columns},
            "chosen_by": {c.canonical: c.chosen_by for c in self.columns},
            "time_unit": self.times.unit,
            "time_format": self.times.time_format,
            "tz": self.times.tz,
            "ambiguous_local_times": self.times.ambiguous_resolved,
            "rows_read": self.rows_read,
            "duplicates_dropped": self.duplicates_dropped,
            "sorted": self.sorted,
        }

    def summary(self) -> str:
        """One line: the columns chosen, how times were read, what was dropped or reordered."""
        return describe(self.to_dict())


def describe(read: Mapping[str, Any]) -> str:
    """The one-line account of a :meth:`FileRead.to_dict` (what the CLI prints)."""
    time = read["time_unit"] if read["time_unit"] != "datetime" else read["time_format"] or "datetime"
    columns = ", ".join(
        f"{key}<-{source if isinstance(source, str) else f'column {source}'}"
        + (f" ({time}, {read['tz']})" if key == TIMESTAMP else "")
        for key, source in read["columns"].items()
    )
    notes = [f"{read['rows_read']} rows"]
    if read["duplicates_dropped"]:
        notes.append(f"{read['duplicates_dropped']} exact duplicate rows dropped")
    if read["sorted"]:
        notes.append("newest-first input sorted")
    if read["ambiguous_local_times"]:
        notes.append(f"{read['ambiguous_local_times']} rows in the hour the clocks repeat resolved")
    how = set(read["chosen_by"].values())
    ways = [f"preset {read['preset']}"] if read["preset"] else []
    ways += [label for key, label in (("columns", "--columns"), ("auto", "detected names")) if key in how]
    via = " + ".join(ways)
    return f"read {Path(read['file']).name} ({read['format']}, {via}): {columns}; {', '.join(notes)}"


def read_bars(
    path: Path,
    *,
    layout: FileLayout,
    symbol: str | None = None,
    venue: str | None = None,
    interval: str | None = None,
) -> FileRead:
    """Read one OHLCV file into canonical bars.

    Symbol, venue and interval come from the arguments when given, else from the preset's file
    name pattern.

    Raises:
        SourceError: the file cannot be read or parsed, a column is missing or holds a value
            that is not a finite number, times are bad, rows conflict or are out of order, or
            symbol/venue/interval are neither given nor in the name; the message says where.
    """
    preset = layout.spec
    if not path.is_file():
        raise SourceError(
            f"{path}: no such file" + (" (a directory: give one file)" if path.is_dir() else "")
        )
    symbol, venue, interval = _series(path, preset, symbol=symbol, venue=venue, interval=interval)
    table = read_table(path, header=preset.header if preset else None)
    if table.frame.empty:
        raise SourceError(f"{path}: the file has no rows of bars")
    choices = resolve_columns(layout, table.names, header=table.header, symbol=symbol, where=str(path))
    by_name = {c.canonical: c for c in choices}
    source = by_name[TIMESTAMP]
    times = parse_times(
        table.frame[str(source.index)],
        unit=preset.time_unit if preset and layout.time_unit == "auto" else layout.time_unit,
        time_format=layout.time_format,
        tz=layout.tz,
        ambiguous=layout.ambiguous,
        where=table.where,
        label=f"{path}: column {table.label(source.index)}",
    )
    frame = pd.DataFrame({TIMESTAMP: pd.to_datetime(times.ns, utc=True)})
    for column in VALUE_COLUMNS:
        if column in by_name:
            frame[column] = _numbers(table, by_name[column], path, whole=column == "trades")
    bars = conform(frame, symbol=symbol, venue=venue, interval=interval)
    naive_as_utc = times.unit == "datetime" and times.tz == "UTC"
    hint = (
        "; if these are local times, give --tz (a repeated hour is the clocks going back)"
        if naive_as_utc
        else ""
    )
    bars, dropped, reversed_ = _order(bars, table, path, hint=hint)
    return FileRead(
        bars=bars,
        path=path,
        format=table.format,
        preset=layout.preset,
        columns=choices,
        times=times,
        rows_read=len(table.frame),
        duplicates_dropped=dropped,
        sorted=reversed_,
        header_line=table.skipped_lines + 1 if table.header and table.unit == "line" else None,
    )


def read_file(
    path: Path,
    *,
    preset: str | None = None,
    layout: FileLayout | None = None,
    symbol: str | None = None,
    venue: str | None = None,
    interval: str | None = None,
) -> pd.DataFrame:
    """The bars of :func:`read_bars`, for callers that need nothing else (``layout`` wins over ``preset``)."""
    layout = layout or FileLayout(preset=preset)
    return read_bars(path, layout=layout, symbol=symbol, venue=venue, interval=interval).bars


def _series(
    path: Path, preset: Preset | None, *, symbol: str | None, venue: str | None, interval: str | None
) -> tuple[str, str, str]:
    named = _from_name(path, preset) if preset else {}
    symbol, venue, interval = (
        symbol or named.get("symbol"),
        venue or named.get("venue"),
        interval or named.get("interval"),
    )
    if not (symbol and venue and interval):
        missing = [
            f"--{k}" for k, v in (("symbol", symbol), ("interval", interval), ("venue", venue)) if not v
        ]
        said = (
            f"; preset {preset.name} reads them from names like {preset.name_example}"
            if preset and preset.name_example
            else ""
        )
        raise SourceError(f"{path}: give {', '.join(missing)}; the file name does not say them{said}")
    return normalize_symbol(symbol), venue.lower(), normalize_interval(interval)


def _from_name(path: Path, preset: Preset) -> dict[str, str]:
    match = preset.name_pattern.match(path.name) if preset.name_pattern else None
    if match is None:
        return {"venue": preset.venue} if preset.venue else {}
    found = {k: v for k, v in match.groupdict().items() if v}
    if "interval" in found:
        raw = found["interval"]
        raw = preset.interval_aliases.get(raw, raw)
        found["interval"] = f"{raw}m" if preset.interval_minutes_in_name else raw
    if preset.venue:
        found.setdefault("venue", preset.venue)
    return found


def _numbers(table: RawTable, choice: ColumnChoice, path: Path, *, whole: bool) -> np.ndarray:
    column = table.frame[str(choice.index)]
    label = f"{path}: column {table.label(choice.index)} (for {choice.canonical})"
    if is_bool_dtype(column.dtype) or is_datetime64_any_dtype(column.dtype):
        raise SourceError(
            f"{label} holds {column.dtype} values, not numbers; map another column with --columns"
        )
    fast = as_numbers(column)
    text: pd.Series | None = None
    if fast is not None:
        values = fast.astype("float64")
    else:  # missing values, stray spaces, or text: find the first bad row, then parse exactly
        text = as_text(column, label)
        missing = column.isna().to_numpy() | text.str.lower().isin(_MISSING).to_numpy()
        bad = ~(missing | text.str.fullmatch(DECIMAL).to_numpy(dtype=bool))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise SourceError(f"{label}, {table.where(row)}: {text.iloc[row]!r} is not a number")
        parsed = as_numbers(text.where(~missing, "nan"))
        if parsed is None:  # unreachable: every value is now a decimal or "nan"
            raise SourceError(f"{label}: cannot read the numbers")
        values = parsed.astype("float64")
    odd = np.isinf(values) | (
        whole & ~np.isnan(values) & ((values != np.floor(values)) | (np.abs(values) >= 2**53))
    )
    if odd.any():
        row = int(np.flatnonzero(odd)[0])
        shown = text.iloc[row] if text is not None else str(column.iloc[row])
        kind = "a whole number below 2**53" if whole and np.isfinite(values[row]) else "a finite number"
        raise SourceError(f"{label}, {table.where(row)}: {shown!r} is not {kind}")
    return values


def _order(bars: pd.DataFrame, table: RawTable, path: Path, *, hint: str) -> tuple[pd.DataFrame, int, bool]:
    locations = table.locations
    exact = bars.duplicated(keep="first").to_numpy()
    bars, locations = bars[~exact].reset_index(drop=True), locations[~exact]
    stamps = bars[TIMESTAMP]
    repeated = stamps.duplicated(keep=False).to_numpy()
    if repeated.any():
        first = int(np.flatnonzero(repeated)[0])
        second = int(np.flatnonzero(repeated & (stamps == stamps.iloc[first]).to_numpy())[1])
        differ = [c for c in VALUE_COLUMNS if not _same(bars[c].iloc[first], bars[c].iloc[second])]
        shown = ", ".join(f"{c} {bars[c].iloc[first]} vs {bars[c].iloc[second]}" for c in differ[:3])
        unit = table.unit
        raise SourceError(
            f"{path}: open time {stamps.iloc[first].isoformat()} is on {unit}s {locations[first]} and "
            f"{locations[second]} with different values ({shown}); keep the right one and delete the other "
            f"({unit}s count from 1{', header included' if unit == 'line' else ''}){hint}"
        )
    ns = stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    steps = np.diff(ns)
    if (steps > 0).all():
        return bars, int(exact.sum()), False
    if (steps < 0).all():
        return bars.iloc[::-1].reset_index(drop=True), int(exact.sum()), True
    rising = steps[0] > 0
    row = int(np.flatnonzero((steps < 0) if rising else (steps > 0))[0]) + 1
    order = "oldest-first" if rising else "newest-first"
    raise SourceError(
        f"{path}: the file starts {order} but {table.unit} {locations[row]} ({stamps.iloc[row].isoformat()}) "
        f"breaks that order after {table.unit} {locations[row - 1]} ({stamps.iloc[row - 1].isoformat()}); "
        "sort the file by time, or check the time column and --time-format (a day/month swap reads like this)"
    )


def _same(a: Any, b: Any) -> bool:
    if pd.isna(a) or pd.isna(b):
        return bool(pd.isna(a) and pd.isna(b))
    return bool(a == b)


__all__ = ["PRESETS", "VALUE_COLUMNS", "FileLayout", "FileRead", "describe", "read_bars", "read_file"]
