"""A source column of open times -> UTC nanoseconds, with every choice made explicit.

Numbers are unix times; their unit is detected per row by magnitude (``auto``: below 1e11
seconds, below 1e14 milliseconds, below 1e17 microseconds, else nanoseconds; anything below
1e8 is no unix time of this century at any unit) and one file must use one unit. Strings are
date-times in one format: the given one, or the one the first row is written in (ISO 8601 in
any precision counts as one format); a row in another format is rejected with its place.
Values with an offset are absolute. Naive values are local times in ``tz``: a local time that
does not exist (clocks going forward) is rejected, and one that occurs twice (clocks going
back) follows the ``ambiguous`` policy of :class:`~features.sources.layout.FileLayout`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype
from pandas.tseries.api import guess_datetime_format

from features.errors import SourceError
from features.sources.layout import Ambiguous, TimeUnit, zone
from features.sources.tables import as_numbers, as_text

_UNITS: Final = ("s", "ms", "us", "ns")
_NS_PER: Final = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
# Upper bounds of each unit's magnitude (unix times from 1973 on; see the module docstring).
_BOUNDS: Final = (1e8, 1e11, 1e14, 1e17)
_MAX_NS: Final = float(pd.Timestamp.max.value)
_MISSING: Final = frozenset({"", "nan", "none", "null", "na", "nat", "n/a"})
_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE)
_ISO = re.compile(r"^%Y-%m-%d(?:[T ]%H(?::%M(?::%S(?:\.%f)?)?)?)?(?:%z)?$")
_EPOCH = re.compile(r"^\s*[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?\s*$")


@dataclass(frozen=True, slots=True)
class Times:
    """The parsed open times and how they were read.

    Attributes:
        ns: UTC nanoseconds since the epoch, one per row.
        unit: ``s``/``ms``/``us``/``ns`` for unix times, ``datetime`` for date-times.
        time_format: the format date-time strings were read with (``ISO8601`` for any ISO form).
        tz: the zone naive date-times were read in, ``UTC`` for unix times, ``as in file`` for
            values with an offset.
        ambiguous_resolved: local times of a repeated hour that the ``ambiguous`` policy resolved.
    """

    ns: np.ndarray
    unit: str
    time_format: str | None
    tz: str
    ambiguous_resolved: int = 0


Where = Callable[[int], str]  # 0-based row -> "line 12" / "row 12"


def parse_times(
    column: pd.Series,
    *,
    unit: TimeUnit,
    time_format: str | None,
    tz: str,
    ambiguous: Ambiguous,
    where: Where,
    label: str,
) -> Times:
    """Open times of ``column`` as UTC nanoseconds.

    Args:
        column: the source column, as read (strings, numbers or datetimes).
        unit: ``auto``, a unix-time unit, or ``datetime``.
        time_format: strptime format of date-time strings, or None to infer it from the first row.
        tz: IANA zone of naive date-times.
        ambiguous: policy for local times that occur twice (see ``FileLayout``).
        where: names a row for messages (``line 12``).
        label: names the column for messages, with the file.

    Raises:
        SourceError: an empty, unparseable, out-of-range, mixed-unit or mixed-format value, or a
            local time that does not exist or cannot be resolved; the message names the row.
    """
    if is_bool_dtype(column.dtype):
        raise SourceError(f"{label} holds true/false values, not times; pick the time column with --columns")
    if is_datetime64_any_dtype(column.dtype):
        if unit not in ("auto", "datetime"):
            raise SourceError(f"{label} holds date-times, not unix {unit}; drop --time-unit")
        values = pd.DatetimeIndex(column)
        _no_missing(np.asarray(values.isna()), where, label)
        return _zoned(values, tz=tz, ambiguous=ambiguous, where=where, label=label, fmt=None)
    numbers = as_numbers(column) if time_format is None else None
    if numbers is not None:
        return _epochs(numbers, column, unit=unit, where=where, label=label, tz=tz)
    text = as_text(column, label)
    _no_missing(column.isna().to_numpy() | text.str.lower().isin(_MISSING).to_numpy(), where, label)
    epochs = as_numbers(text) if time_format is None and bool(text.str.match(_EPOCH).all()) else None
    if epochs is not None:
        return _epochs(epochs, text, unit=unit, where=where, label=label, tz=tz)
    if unit not in ("auto", "datetime"):
        row = int(np.flatnonzero(~text.str.match(_EPOCH).to_numpy())[0])
        raise SourceError(
            f"{label}, {where(row)}: {text.iloc[row]!r} is not a number of {unit} (--time-unit)"
        )
    return _strings(text, time_format=time_format, tz=tz, ambiguous=ambiguous, where=where, label=label)


def _no_missing(missing: np.ndarray, where: Where, label: str) -> None:
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise SourceError(f"{label}, {where(row)}: the time is empty; every bar needs its open time")


def _epochs(
    values: np.ndarray, column: pd.Series, *, unit: TimeUnit, where: Where, label: str, tz: str
) -> Times:
    if unit == "datetime":
        raise SourceError(
            f"{label} holds numbers, which are no date-times without a format: use --time-unit auto "
            "(or s, ms, us, ns) for unix times, or give --time-format (e.g. '%Y%m%d')"
        )
    floats = values.astype("float64")
    _no_missing(np.isnan(floats), where, label)
    if not np.isfinite(floats).all():
        row = int(np.flatnonzero(~np.isfinite(floats))[0])
        raise SourceError(f"{label}, {where(row)}: {column.iloc[row]!r} is not a finite unix time")
    if (floats < 0).any():
        row = int(np.flatnonzero(floats < 0)[0])
        raise SourceError(f"{label}, {where(row)}: {column.iloc[row]!r} is negative, no unix time of a bar")
    if tz != "UTC":
        raise SourceError(
            f"{label} holds unix times, which are UTC by definition; --tz {tz} applies only to naive "
            "date-times: drop --tz"
        )
    chosen = _detect_unit(floats, where, label) if unit == "auto" else unit
    scaled = floats * _NS_PER[chosen]
    outside = np.abs(scaled) > _MAX_NS
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise SourceError(
            f"{label}, {where(row)}: {column.iloc[row]!r} {chosen} is outside the years 1677-2262 that "
            "nanosecond times can hold; check --time-unit"
        )
    whole = values.dtype.kind in "iu" or bool(
        (floats == np.floor(floats)).all() and np.abs(floats).max() < 2**53
    )
    # integers stay exact (nanosecond ones beyond 2**53 too); fractional unix times are rounded
    ns = values.astype(np.int64) * _NS_PER[chosen] if whole else np.round(scaled).astype(np.int64)
    return Times(ns, chosen, None, "UTC")


def _detect_unit(values: np.ndarray, where: Where, label: str) -> str:
    magnitude = np.abs(values)
    index = np.searchsorted(np.asarray(_BOUNDS), magnitude, side="right")  # 0: too small, 1: s, ...
    if (index == 0).any():
        row = int(np.flatnonzero(index == 0)[0])
        raise SourceError(
            f"{label}, {where(row)}: {values[row]:.15g} is too small for a unix time in s, ms, us or ns "
            "(before 1973); pick the time column with --columns timestamp=NAME, or give --time-unit"
        )
    if (index != index[0]).any():
        row = int(np.flatnonzero(index != index[0])[0])
        first, other = _UNITS[int(index[0]) - 1], _UNITS[int(index[row]) - 1]
        raise SourceError(
            f"{label}: mixed unix-time units, {where(0)} is in {first} but {where(row)} is in {other}; "
            "a file must use one unit"
        )
    return _UNITS[int(index[0]) - 1]


def _strings(
    text: pd.Series, *, time_format: str | None, tz: str, ambiguous: Ambiguous, where: Where, label: str
) -> Times:
    fmt = time_format or _guess(text.iloc[0])
    if fmt is None:
        raise SourceError(
            f"{label}, {where(0)}: cannot tell the date-time format of {text.iloc[0]!r}; give --time-format "
            "(e.g. '%Y-%m-%d %H:%M:%S') or pick another column with --columns timestamp=NAME"
        )
    if time_format is None and _ISO.match(fmt):
        fmt = "ISO8601"  # one format in any precision, with or without 'T'
    offsets = text.str.contains(_OFFSET).to_numpy()
    if (offsets != offsets[0]).any():
        row = int(np.flatnonzero(offsets != offsets[0])[0])
        has = "has" if offsets[row] else "has no"
        raise SourceError(
            f"{label}, {where(row)}: {text.iloc[row]!r} {has} UTC offset, unlike {where(0)}; "
            "a column must be all naive or all with offsets"
        )
    try:
        parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc=bool(offsets[0]))
    except (ValueError, TypeError, OverflowError) as exc:
        raise SourceError(f"{label}: cannot read as date-times with format {fmt!r} ({exc})") from exc
    failed = parsed.isna().to_numpy()
    if failed.any():
        row = int(np.flatnonzero(failed)[0])
        raise SourceError(
            f"{label}, {where(row)}: {text.iloc[row]!r} does not match the format {fmt!r} of {where(0)}; "
            "the column mixes date formats: give --time-format, or pick another column with "
            "--columns timestamp=NAME (e.g. a unix-time column)"
        )
    values = pd.DatetimeIndex(parsed)
    return _zoned(values, tz=tz, ambiguous=ambiguous, where=where, label=label, fmt=fmt)


def _guess(value: str) -> str | None:
    try:
        return guess_datetime_format(value)
    except (ValueError, TypeError, OverflowError):
        return None


def _as_ns(values: pd.DatetimeIndex, where: Where, label: str) -> pd.DatetimeIndex:
    try:
        return values.as_unit("ns")
    except (pd.errors.OutOfBoundsDatetime, OverflowError) as exc:
        raise SourceError(
            f"{label} holds times outside 1677-2262, which nanoseconds cannot hold ({exc})"
        ) from exc


def _zoned(
    values: pd.DatetimeIndex, *, tz: str, ambiguous: Ambiguous, where: Where, label: str, fmt: str | None
) -> Times:
    if values.tz is not None:
        if tz != "UTC":
            raise SourceError(
                f"{label} has UTC offsets in its values; --tz {tz} applies only to naive times: drop it"
            )
        return Times(
            _as_ns(values.tz_convert("UTC"), where, label).asi8.copy(), "datetime", fmt, "as in file"
        )
    naive = _as_ns(values, where, label)
    if tz == "UTC":
        return Times(naive.asi8.copy(), "datetime", fmt, "UTC")
    zone(tz)
    early = naive.tz_localize(tz, ambiguous=np.ones(len(naive), dtype=bool), nonexistent="NaT")
    late = naive.tz_localize(tz, ambiguous=np.zeros(len(naive), dtype=bool), nonexistent="NaT")
    gap = np.asarray(early.isna())
    if gap.any():
        row = int(np.flatnonzero(gap)[0])
        raise SourceError(
            f"{label}, {where(row)}: local time {naive[row]} does not exist in {tz} (the clocks skip it "
            f"for summer time); the times are not {tz} local times, or the row is wrong: check --tz"
        )
    twice = early.asi8 != late.asi8
    resolved = _resolve(
        early.asi8, late.asi8, twice, naive, ambiguous=ambiguous, tz=tz, where=where, label=label
    )
    return Times(resolved, "datetime", fmt, tz, int(twice.sum()))


def _resolve(
    early: np.ndarray,
    late: np.ndarray,
    twice: np.ndarray,
    naive: pd.DatetimeIndex,
    *,
    ambiguous: Ambiguous,
    tz: str,
    where: Where,
    label: str,
) -> np.ndarray:
    if not twice.any() or ambiguous == "earliest":
        return early.copy()
    if ambiguous == "latest":
        return late.copy()
    rows = np.flatnonzero(twice)
    if ambiguous == "raise":
        raise SourceError(
            f"{label}, {where(int(rows[0]))}: local time {naive[rows[0]]} occurs twice in {tz} (the clocks go "
            "back); choose --ambiguous infer (file order), earliest (summer time) or latest (winter time)"
        )
    values, counts = np.unique(naive.asi8[rows], return_counts=True)
    if (counts != 2).any():
        value = values[counts != 2][0]
        row = int(rows[naive.asi8[rows] == value][0])
        count = int(counts[counts != 2][0])
        raise SourceError(
            f"{label}, {where(row)}: local time {naive[row]} occurs {count} time(s) in the hour {tz} repeats; "
            "--ambiguous infer needs each such time exactly twice (summer time, then winter time, in file "
            "order): choose --ambiguous earliest or latest, or give UTC times"
        )
    plain = np.flatnonzero(~twice)
    newest_first = len(plain) >= 2 and early[plain[-1]] < early[plain[0]]
    first_seen = np.zeros(len(rows), dtype=bool)
    _, first_index = np.unique(naive.asi8[rows], return_index=True)
    first_seen[first_index] = True  # np.unique returns the first occurrence in file order
    summer = ~first_seen if newest_first else first_seen
    out = early.copy()
    out[rows[~summer]] = late[rows[~summer]]
    return out


__all__ = ["Times", "parse_times"]
