"""How a generic OHLCV file maps onto canonical bars: the layout a user asks for, the presets,
and the resolution of both against the columns a file actually has.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal, get_args

from features.errors import ConfigError, SourceError
from features.schema import TIMESTAMP, VALUE_COLUMNS

TimeUnit = Literal["auto", "s", "ms", "us", "ns", "datetime"]
Ambiguous = Literal["infer", "earliest", "latest", "raise"]
PresetName = Literal["freqtrade", "kraken", "cryptodatadownload", "ccxt", "binance-kline-csv"]
Source = str | int  # a header name, or a 0-based position

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
class Preset:
    """A well-known public layout: where its columns are and what its file names say.

    Attributes:
        name: the ``--preset`` value.
        description: one line for ``--help``.
        columns: canonical column -> source (name, or 0-based position when the file has no header).
        optional: canonical columns of ``columns`` that a file of this layout may lack.
        time_unit: unit of the timestamp column.
        header: whether files have a header row (None: detect).
        name_pattern: parses ``symbol``, ``interval`` and ``venue`` out of the file name.
        venue: the venue when the name does not say it.
        interval_aliases: interval spellings of the file names -> canonical intervals.
        interval_minutes_in_name: the name's interval is a number of minutes (``XBTUSD_1440.csv``).
        name_example: a file name ``name_pattern`` reads.
    """

    name: str
    description: str
    columns: Mapping[str, Source] = field(default_factory=dict)
    optional: frozenset[str] = frozenset()
    time_unit: TimeUnit = "auto"
    header: bool | None = None
    name_pattern: re.Pattern[str] | None = None
    venue: str | None = None
    interval_aliases: Mapping[str, str] = field(default_factory=dict)
    interval_minutes_in_name: bool = False
    name_example: str | None = None


_POSITIONAL_OHLCV: Final = {TIMESTAMP: 0, "open": 1, "high": 2, "low": 3, "close": 4, "volume": 5}
PRESETS: Final[Mapping[str, Preset]] = MappingProxyType(
    {
        "freqtrade": Preset(
            "freqtrade",
            "freqtrade feather/parquet: date (UTC), open, high, low, close, volume",
            columns={TIMESTAMP: "date"},
            name_pattern=re.compile(
                r"^(?P<venue>[a-z0-9]+)_(?P<symbol>[A-Z0-9]+_[A-Z0-9]+)-(?P<interval>\d+[mhdw])"
            ),
            name_example="binance_BTC_USDT-1h_2017-08-17_2024-04-21.feather",
        ),
        "kraken": Preset(
            "kraken",
            "Kraken OHLCVT export, no header: unix seconds, open, high, low, close, volume[, trades], "
            "with or without a trailing comma",
            columns={**_POSITIONAL_OHLCV, "trades": 6},
            optional=frozenset({"trades"}),
            time_unit="s",
            header=False,
            name_pattern=re.compile(r"^(?P<symbol>[A-Z0-9]+)_(?P<interval>\d+)\.csv"),
            venue="kraken",
            interval_minutes_in_name=True,
            name_example="XBTUSD_1440.csv",
        ),
        "cryptodatadownload": Preset(
            "cryptodatadownload",
            "CryptoDataDownload CSV: a URL line, then unix,date,symbol,open,high,low,close,"
            "Volume <base>,Volume <quote>,tradecount, newest first; the unix column is the time",
            columns={TIMESTAMP: "unix"},
            header=True,
            name_pattern=re.compile(
                r"^(?P<venue>[A-Za-z]+)_(?P<symbol>[A-Z0-9]+)_(?:\d{4}_)?(?P<interval>d|1d|1h|1hr|h|minute|1min|m)\."
            ),
            interval_aliases={
                "d": "1d",
                "1d": "1d",
                "1h": "1h",
                "1hr": "1h",
                "h": "1h",
                "minute": "1m",
                "1min": "1m",
                "m": "1m",
            },
            name_example="Binance_BTCUSDT_1h.csv",
        ),
        "ccxt": Preset(
            "ccxt",
            "a ccxt fetch_ohlcv dump: JSON [[ms, o, h, l, c, v], ...] or the same rows as CSV",
            columns=_POSITIONAL_OHLCV,
        ),
        "binance-kline-csv": Preset(
            "binance-kline-csv",
            "Binance kline CSV, with or without a header: open_time (ms or us), open, high, low, close, "
            "volume, close_time, quote_volume, count, taker_buy_volume, ...",
            columns={**_POSITIONAL_OHLCV, "quote_volume": 7, "trades": 8, "taker_buy_volume": 9},
            name_pattern=re.compile(
                r"^(?P<symbol>[A-Z0-9]+)-(?P<interval>\d+[smhdw])-\d{4}-\d{2}(?:-\d{2})?\."
            ),
            venue="binance",
            name_example="BTCUSDT-1m-2026-03.csv",
        ),
    }
)


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
    label: str
    chosen_by: str


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
    taken = {c.index for c in chosen.values()}
    wanted = [key for key in CANONICAL if key not in chosen]
    detected = _by_name(names, taken, wanted, symbol) if header else _by_order(names, taken, wanted)
    for key, index in detected.items():
        chosen[key] = ColumnChoice(key, index, _label(names, index), "auto")
    missing = [key for key in REQUIRED if key not in chosen]
    if missing:
        shown = [n for n in names] if header else f"{len(names)} columns without a header"
        raise SourceError(
            f"{where}: no {', '.join(missing)} column found (columns: {shown}); name them with "
            f"--columns, e.g. --columns {missing[0]}={'NAME' if header else 'POSITION'}, or pick a --preset"
        )
    return tuple(chosen[key] for key in CANONICAL if key in chosen)


def _locate(
    key: str, source: Source, names: Sequence[str], *, header: bool, chosen_by: str, where: str
) -> ColumnChoice:
    if isinstance(source, int):
        if source >= len(names):
            raise SourceError(
                f"{where}: column {key} is position {source} (0-based), but the file has {len(names)} columns"
            )
        return ColumnChoice(key, source, _label(names, source), chosen_by)
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


def _label(names: Sequence[str], index: int) -> str:
    return names[index] if names[index] else f"column {index}"


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
