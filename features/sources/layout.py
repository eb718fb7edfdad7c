"""How a generic OHLCV file maps onto canonical bars: the layout a user asks for, and its
resolution (with the preset's help, :mod:`features.sources.presets`) against the columns a
file actually has.

A :class:`FileLayout` is what the command line (``--preset``, ``--columns``, ``--time-unit``,
``--time-format``, ``--tz``, ``--ambiguous``) and a ``params.yaml`` dataset entry both build.
:func:`resolve_columns` turns it into a concrete choice per canonical column, in this order:
an explicit ``columns`` entry, then the preset's column, then the usual names (any case,
spaces or underscores), and for a file without a header the usual column orders.
"""

from __future__ import annotations

import difflib
import re
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal, get_args

from features.errors import ConfigError, SourceError
from features.schema import TIMESTAMP, VALUE_COLUMNS
from features.sources.presets import PRESETS, Preset, PresetName, Source, TimeUnit

Ambiguous = Literal["infer", "earliest", "latest", "raise"]

CANONICAL: Final = (TIMESTAMP, *VALUE_COLUMNS)
REQUIRED: Final = (TIMESTAMP, "open", "high", "low", "close", "volume")

# The usual names of each column, normalized (lower case, runs of spaces/hyphens -> "_").
# The first name present wins, so the order is a priority: an epoch column is preferred to a
# date string because it carries no time zone question.
USUAL_NAMES: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        TIMESTAMP: ("timestamp", "open_time", "unix", "unix_timestamp", "time", "datetime", "date", "ts"),
        "open": ("open", "o", "open_price"),
        "high": ("high", "h", "high_price"),
        "low": ("low", "l", "low_price"),
        "close": ("close", "c", "close_price"),
        "volume": ("volume", "vol", "v", "base_volume", "volume_base"),
        "quote_volume": ("quote_volume", "quote_asset_volume", "volume_quote", "quote_vol"),
        "trades": ("trades", "tradecount", "trade_count", "count", "number_of_trades", "num_trades"),
        "taker_buy_volume": ("taker_buy_volume", "taker_buy_base_volume", "taker_buy_base_asset_volume"),
    }
)
# Column orders of files without a header, by column count (after dropping an empty last field).
_HEADERLESS: Final[Mapping[int, tuple[str, ...]]] = MappingProxyType(
    {
        6: (TIMESTAMP, "open", "high", "low", "close", "volume"),  # ccxt fetch_ohlcv
        7: (TIMESTAMP, "open", "high", "low", "close", "volume", "trades"),  # Kraken OHLCVT
        12: (
            TIMESTAMP,
            "open",
            "high",
            "low",
            "close",
            "volume",
            "",
            "quote_volume",
            "trades",
            "taker_buy_volume",
        ),  # Binance kline: open_time .. taker_buy_volume; close_time skipped
    }
)
_VOLUME_IN = re.compile(r"^volume_([a-z0-9]+)$")  # CryptoDataDownload: "Volume BTC", "Volume USDT"


@dataclass(frozen=True, slots=True)
class FileLayout:
    """What the user said about a file; what is not said comes from the preset, then detection.

    Attributes:
        preset: a name of :data:`PRESETS`, or None for detection from the usual names.
        columns: canonical column -> source column (header name, or 0-based position); overrides
            the preset and detection for the columns it names.
        time_unit: unit of a numeric timestamp column; ``auto`` detects s/ms/us/ns by magnitude,
            ``datetime`` reads date-time strings or values.
        time_format: strptime format of date-time strings (e.g. ``%Y-%m-%d %I-%p``); inferred
            from the first row when None.
        tz: IANA time zone of naive date-times (no offset in the value); unix times and values
            with an offset are absolute and never shifted.
        ambiguous: what to do with local times that occur twice when clocks go back: ``infer``
            takes file order (the first of a pair is summer time), ``earliest``/``latest`` pick one
            reading for all, ``raise`` rejects them. Local times that do not exist (clocks
            going forward) are always rejected.

    Raises:
        ConfigError: an unknown preset, column, unit, time zone or policy (names the nearest).
    """

    preset: str | None = None
    columns: Mapping[str, Source] = field(default_factory=dict)
    time_unit: TimeUnit = "auto"
    time_format: str | None = None
    tz: str = "UTC"
    ambiguous: Ambiguous = "infer"

    def __post_init__(self) -> None:
        if self.preset is not None and self.preset not in PRESETS:
            raise ConfigError(_unknown("preset", self.preset, PRESETS))
        for key, source in self.columns.items():
            if key not in CANONICAL:
                raise ConfigError(_unknown("column", key, CANONICAL))
            if isinstance(source, bool) or not isinstance(source, str | int) or source == "":
                raise ConfigError(f"column {key}: {source!r} is not a column name or 0-based position")
            if isinstance(source, int) and source < 0:
                raise ConfigError(f"column {key}: position {source} is negative; positions count from 0")
        if self.time_unit not in get_args(TimeUnit):
            raise ConfigError(_unknown("time unit", self.time_unit, get_args(TimeUnit)))
        if self.ambiguous not in get_args(Ambiguous):
            raise ConfigError(_unknown("--ambiguous policy", self.ambiguous, get_args(Ambiguous)))
        zone(self.tz)
        object.__setattr__(self, "columns", MappingProxyType(dict(self.columns)))

    @property
    def spec(self) -> Preset | None:
        return PRESETS[self.preset] if self.preset else None


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA time zone ``name``.

    Raises:
        ConfigError: not a known zone (the message names a close one when there is).
    """
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        close = difflib.get_close_matches(name, sorted(zoneinfo.available_timezones()), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else "; use an IANA name such as UTC or Europe/Berlin"
        raise ConfigError(f"unknown time zone {name!r}{hint}") from None


def parse_columns(pairs: Sequence[str]) -> dict[str, Source]:
    """``["timestamp=unix,volume=Volume BTC"]`` -> ``{"timestamp": "unix", "volume": "Volume BTC"}``.

    Each item holds comma-separated ``canonical=source`` pairs; a source of digits only is a
    0-based position, anything else a header name (surrounding quotes are dropped).

    Raises:
        ConfigError: a pair without ``=``, or a column named twice.
    """
    out: dict[str, Source] = {}
    for item in pairs:
        for pair in (p for p in item.split(",") if p.strip()):
            key, sep, value = pair.partition("=")
            key, value = key.strip(), value.strip().strip("'\"")
            if not sep or not key or not value:
                raise ConfigError(
                    f"--columns: {pair.strip()!r} is not canonical=source, e.g. timestamp=unix or close=4"
                )
            if key in out:
                raise ConfigError(f"--columns: {key} is mapped twice")
            out[key] = int(value) if value.isdigit() else value
    return out


def normalize_name(name: str) -> str:
    """``' Volume BTC'`` -> ``'volume_btc'``: how header names are compared."""
    return re.sub(r"[\s\-]+", "_", name.strip().strip("\ufeff\"'").lower())


@dataclass(frozen=True, slots=True)
class ColumnChoice:
    """Which source column became which canonical column, and why (``columns``, ``preset``, ``auto``)."""

    canonical: str
    index: int
    name: str
    chosen_by: str

    @property
    def source(self) -> str | int:
        """The header name, or the 0-based position in a file without a header."""
        return self.name or self.index


def resolve_columns(
    layout: FileLayout, names: Sequence[str], *, header: bool, symbol: str | None, where: str
) -> tuple[ColumnChoice, ...]:
    """Choose the source column of every canonical column a file provides.

    Args:
        layout: what the user asked for.
        names: the file's column labels (header names; empty strings for a file without one).
        header: whether ``names`` came from a header row.
        symbol: the series' symbol, to tell ``Volume BTC`` (base) from ``Volume USDT`` (quote).
        where: the file, for messages.

    Raises:
        SourceError: a named column is not in the file, or a required column cannot be found.
    """
    preset = layout.spec
    chosen: dict[str, ColumnChoice] = {}
    for key, source in layout.columns.items():
        chosen[key] = _locate(key, source, names, header=header, chosen_by="columns", where=where)
    if preset is not None:
        for key, source in preset.columns.items():
            if (
                key in chosen
                or (isinstance(source, int) and header)
                or (isinstance(source, str) and not header)
            ):
                continue
            if isinstance(source, int) and source >= len(names) and key in preset.optional:
                continue
            chosen[key] = _locate(key, source, names, header=header, chosen_by="preset", where=where)
    _distinct(chosen.values(), where)
    taken = {c.index for c in chosen.values()}
    wanted = [key for key in CANONICAL if key not in chosen]
    detected = _by_name(names, taken, wanted, symbol) if header else _by_order(names, taken, wanted)
    for key, index in detected.items():
        chosen[key] = ColumnChoice(key, index, names[index], "auto")
    missing = [key for key in REQUIRED if key not in chosen]
    if missing:
        shown = list(names) if header else f"{len(names)} columns without a header"
        raise SourceError(
            f"{where}: no {', '.join(missing)} column found (columns: {shown}); name them with "
            f"--columns, e.g. --columns {missing[0]}={'NAME' if header else 'POSITION'}, or pick a --preset"
        )
    return tuple(chosen[key] for key in CANONICAL if key in chosen)


def _distinct(choices: Iterable[ColumnChoice], where: str) -> None:
    """Two canonical columns read from one source column would store wrong prices: refuse."""
    seen: dict[int, str] = {}
    for choice in choices:
        if choice.index in seen:
            raise SourceError(
                f"{where}: {seen[choice.index]} and {choice.canonical} both map to column {choice.source!r}; "
                "give each its own column with --columns"
            )
        seen[choice.index] = choice.canonical


def _locate(
    key: str, source: Source, names: Sequence[str], *, header: bool, chosen_by: str, where: str
) -> ColumnChoice:
    if isinstance(source, int):
        if source >= len(names):
            raise SourceError(
                f"{where}: column {key} is position {source} (0-based), but the file has {len(names)} columns"
            )
        return ColumnChoice(key, source, names[source], chosen_by)
    if source in names:
        return ColumnChoice(key, names.index(source), source, chosen_by)
    normalized = [normalize_name(n) for n in names]
    if normalize_name(source) in normalized:
        index = normalized.index(normalize_name(source))
        return ColumnChoice(key, index, names[index], chosen_by)
    origin = "--columns" if chosen_by == "columns" else "the preset"
    if not header:
        raise SourceError(
            f"{where}: the file has no header, so {key}={source!r} ({origin}) cannot be found; use a 0-based position"
        )
    raise SourceError(
        f"{where}: {_unknown('column', source, names)} (for {key}, from {origin}); "
        f"pick one with --columns {key}=NAME"
    )


def _by_name(
    names: Sequence[str], taken: set[int], wanted: Sequence[str], symbol: str | None
) -> dict[str, int]:
    normalized = [normalize_name(n) for n in names]
    used, found = set(taken), {}
    for key in wanted:
        index = next(
            (
                normalized.index(u)
                for u in USUAL_NAMES[key]
                if u in normalized and normalized.index(u) not in used
            ),
            None,
        )
        if index is not None:
            found[key] = index
            used.add(index)
    volumes = [
        (i, m.group(1)) for i, n in enumerate(normalized) if (m := _VOLUME_IN.match(n)) and i not in used
    ]
    if volumes and "volume" in wanted and "volume" not in found:
        base = next(
            (i for i, asset in volumes if symbol and symbol.upper().startswith(asset.upper())), volumes[0][0]
        )
        found["volume"] = base
        quote = [i for i, _ in volumes if i != base]
        if quote and "quote_volume" in wanted and "quote_volume" not in found:
            found["quote_volume"] = quote[0]
    return found


def _by_order(names: Sequence[str], taken: set[int], wanted: Sequence[str]) -> dict[str, int]:
    order = _HEADERLESS.get(len(names), ())
    return {key: i for i, key in enumerate(order) if key in wanted and i not in taken}


def _unknown(what: str, value: object, known: Sequence[str] | Mapping[str, object]) -> str:
    options = [str(k) for k in known]
    close = difflib.get_close_matches(str(value), options, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {value!r}{hint} (known: {', '.join(options)})"


__all__ = [
    "CANONICAL",
    "PRESETS",
    "REQUIRED",
    "USUAL_NAMES",
    "Ambiguous",
    "ColumnChoice",
    "FileLayout",
    "Preset",
    "PresetName",
    "TimeUnit",
    "normalize_name",
    "parse_columns",
    "resolve_columns",
    "zone",
]
