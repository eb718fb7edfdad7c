"""The ``mmops`` command line: parse options, resolve locations, call the library, report.

Every command prints a human summary, or exactly one JSON document on stdout with ``--json``.
Failures exit non-zero with a one-line reason on stderr. Heavy libraries (Great Expectations,
TensorFlow, MLflow, Prefect) are imported inside the commands that need them, so the data
commands start fast. The app and its shared options live in :mod:`flows.cli_common`; the data
commands are here, the other stages in ``flows/cli_<stage>.py`` (registered at the bottom).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, cast

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape

from features.errors import ConfigError
from features.sources.presets import PRESETS
from flows.cli_common import (
    IntervalOpt,
    JsonOpt,
    SymbolOpt,
    VenueOpt,
    app,
    context,
    data_app,
    emit,
    locations,
    no_progress,
    reported,
    track,
)

FILE_PANEL = "File source (--source file)"
_FILE_EXAMPLES = (
    "mmops ingest --source file --path btc-local.parquet --symbol BTCUSDT --venue binance --interval 5m "
    "--tz Europe/Berlin",
    "mmops ingest --source file --preset kraken --path ../shared/data/kraken-daily/XBTUSD_1440.csv",
    "mmops ingest --source file --path export.csv --columns 'timestamp=unix,volume=Volume BTC' --symbol BTCUSDT "
    "--venue binance --interval 1h --json",
)
_FILE_RULES = (
    "Columns are detected by their usual names (timestamp/open_time/unix/time/datetime/date, open, high, low, "
    "close, volume, ... in any case) unless a preset or --columns says otherwise; the output says which columns "
    "were chosen. Newest-first files are sorted, exact duplicate rows dropped and counted; rows with the same "
    "time and different values are rejected, naming both lines (1-based, header included)."
)
INGEST_EPILOG = "\n\n".join(
    [
        "Examples:",
        *(f"  {example}" for example in _FILE_EXAMPLES),
        "Presets:",
        *(escape(f"  {p.name}: {p.description}") for p in PRESETS.values()),
        _FILE_RULES,
    ]
)


@app.command(epilog=INGEST_EPILOG)
@reported
def ingest(
    source: Annotated[
        str | None, typer.Option("--source", help="binance-dump | file | ccxt, e.g. --source file")
    ] = None,
    path: Annotated[
        str | None,
        typer.Option("--path", help="file or directory; for ccxt the exchange id, e.g. --path bars.csv.gz"),
    ] = None,
    all_datasets: Annotated[
        bool,
        typer.Option("--all", help="every dataset in params.yaml, under --root, e.g. --all --root data/raw"),
    ] = False,
    root: Annotated[
        Path | None,
        typer.Option(
            "--root", help="with --all: where datasets live (MMOPS_SOURCE_DATA), e.g. --root ../shared/data"
        ),
    ] = None,
    symbol: SymbolOpt = None,
    interval: IntervalOpt = None,
    venue: VenueOpt = None,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            rich_help_panel=FILE_PANEL,
            help=f"a known layout: {' | '.join(PRESETS)} (see below; default: detect the columns by "
            "name), e.g. --preset cryptodatadownload",
        ),
    ] = None,
    columns: Annotated[
        list[str] | None,
        typer.Option(
            "--columns",
            rich_help_panel=FILE_PANEL,
            help="canonical=source pairs, comma-separated; a source is a header name or a 0-based "
            "position; overrides the preset and detection, e.g. --columns 'timestamp=unix,volume=Volume BTC'",
        ),
    ] = None,
    time_unit: Annotated[
        str,
        typer.Option(
            "--time-unit",
            rich_help_panel=FILE_PANEL,
            help="auto | s | ms | us | ns | datetime; auto reads numbers as unix times with the unit "
            "detected by magnitude, and strings as date-times, e.g. --time-unit ms",
        ),
    ] = "auto",
    time_format: Annotated[
        str | None,
        typer.Option(
            "--time-format",
            rich_help_panel=FILE_PANEL,
            help="strptime format of date-time strings (default: the format of the first row; a row in "
            "another format is rejected), e.g. --time-format '%Y-%m-%d %I-%p'",
        ),
    ] = None,
    tz: Annotated[
        str,
        typer.Option(
            "--tz",
            rich_help_panel=FILE_PANEL,
            help="IANA time zone of naive date-times (no offset in the value); default UTC; unix times "
            "and values with an offset are never shifted, e.g. --tz Europe/Berlin",
        ),
    ] = "UTC",
    ambiguous: Annotated[
        str,
        typer.Option(
            "--ambiguous",
            rich_help_panel=FILE_PANEL,
            help="local times that occur twice when clocks go back: infer (file order: the first is "
            "summer time) | earliest | latest | raise; local times that do not exist are always "
            "rejected, e.g. --ambiguous raise",
        ),
    ] = "infer",
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="ccxt: first bar (default: after the last stored), e.g. --since 2026-04-01"
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="print one JSON document on stdout; for a file, series[].read says how it was read, "
            "e.g. --json | jq '.series[0].read.columns'",
        ),
    ] = False,
) -> None:
    """Read a source into canonical bars, validate them, and merge them into the store.

    --source file reads any OHLCV file: CSV, Parquet, Feather or JSON, also in gzip or zip.
    """
    from features.pipeline import ingest_source
    from features.sources.files import describe
    from features.sources.layout import Ambiguous, FileLayout, TimeUnit, parse_columns

    where, params = context()
    layout = FileLayout(  # the values are checked here: a bad one names the nearest valid one
        preset=preset,
        columns=parse_columns(columns or []),
        time_unit=cast("TimeUnit", time_unit),
        time_format=time_format,
        tz=tz,
        ambiguous=cast("Ambiguous", ambiguous),
    )
    jobs: list[tuple[str, Path, str | None, str | None, str | None, FileLayout]]
    if all_datasets:
        jobs = [
            (d.source, (root or where.source_data) / d.path, d.symbol, d.interval, d.venue, d.layout())
            for d in params.data.datasets
        ]
    elif source and path:
        if source != "file" and layout != FileLayout():
            raise ConfigError(
                "--preset, --columns, --time-unit, --time-format, --tz and --ambiguous apply to --source file"
            )
        jobs = [(source, Path(path), symbol, interval, venue, layout)]
    else:
        raise ConfigError("give --source and --path, or --all")
    series: list[dict[str, Any]] = []
    for src, src_path, sym, ivl, ven, lay in jobs:
        series += ingest_source(
            src,
            src_path,
            store_root=where.bars,
            quarantine_root=where.quarantine,
            gx_root=where.gx_root,
            validation=params.validation,
            now=pd.Timestamp.now(tz="UTC"),
            symbol=sym,
            interval=ivl,
            venue=ven,
            layout=lay,
            since=since,
            progress=no_progress if as_json else track,
        )["series"]
    lines = []
    for s in series:
        if "read" in s:
            lines.append(describe(s["read"]))
        lines.append(
            f"{s['series']}: {s['rows_in']} rows in, {s['rows_added']} added, {s['rows_replaced']} replaced, "
            f"{s['rows_total']} stored; {s['gap_count']} gaps"
            + ("" if s["months_written"] else " (unchanged)")
        )
    emit({"series": series}, as_json=as_json, human="\n".join(lines))


@app.command()
@reported
def validate(
    symbol: SymbolOpt = None, interval: IntervalOpt = None, venue: VenueOpt = None, as_json: JsonOpt = False
) -> None:
    """Re-run the data-quality suite on stored series and rebuild Data Docs."""
    from features.pipeline import validate_store

    where, params = context()
    reports = validate_store(
        where.bars,
        config=params.validation,
        gx_root=where.gx_root,
        symbol=symbol,
        interval=interval,
        venue=venue,
        now=pd.Timestamp.now(tz="UTC"),
    )
    payload = {
        "success": all(r.success for r in reports),
        "data_docs": str(where.data_docs),
        "series": [
            {
                "series": r.series,
                "rows": r.rows,
                "success": r.success,
                "findings": [str(f) for f in r.findings],
                "gap_count": r.gaps.count,
                "longest_gap_bars": r.gaps.longest_bars,
            }
            for r in reports
        ],
    }
    emit(
        payload,
        as_json=as_json,
        human="\n".join(r.summary() for r in reports) + f"\nData Docs: {payload['data_docs']}",
    )
    if not payload["success"]:
        raise typer.Exit(1)


@app.command()
@reported
def features(
    symbol: Annotated[str, typer.Option("--symbol")],
    interval: Annotated[str, typer.Option("--interval")],
    venue: VenueOpt = None,
    start: Annotated[
        str | None, typer.Option("--start", help="first row written (history before warms up)")
    ] = None,
    end: Annotated[str | None, typer.Option("--end", help="use only data at or before this time")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="feature Parquet (default under data/features)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Compute rolling-window features (and, beside them, labels) for one series."""
    from features.pipeline import build_features

    where, params = context()
    result = build_features(
        where.bars,
        features_root=where.features,
        config=params.features,
        venue=venue,
        symbol=symbol,
        interval=interval,
        start=start,
        end=end,
        out=out,
    )
    emit(
        result,
        as_json=as_json,
        human=f"{result['rows']} rows x {result['columns']} features -> {result['features']}",
    )


@data_app.command("info")
@reported
def data_info(as_json: JsonOpt = False) -> None:
    """Per series: rows, first and last bar, gap count and longest gap."""
    from features.store import BarStore

    where = locations()
    infos = [i.to_dict() for i in BarStore(where.bars).info()]
    human = "\n".join(
        f"{i['venue']}:{i['symbol']}:{i['interval']}  {i['rows']} rows  {i['start']} .. {i['end']}  "
        f"{i['gap_count']} gaps (longest {i['longest_gap_bars']} bars)"
        for i in infos
    )
    emit({"series": infos}, as_json=as_json, human=human or f"the store at {where.bars} is empty")


@data_app.command("seed")
@reported
def data_seed(
    root: Annotated[
        Path | None, typer.Option("--root", help="source data (default MMOPS_SOURCE_DATA)")
    ] = None,
) -> None:
    """Copy the params.yaml datasets from the source-data root into data/raw (what data.dvc tracks)."""
    import shutil

    where, params = context()
    source_root = root or where.source_data
    for dataset in params.data.datasets:
        src, dst = source_root / dataset.path, where.data / "raw" / dataset.path
        if not src.exists():
            raise ConfigError(f"{src}: missing; set MMOPS_SOURCE_DATA to the shared data folder")
        files = sorted(p for p in src.iterdir() if p.is_file()) if src.is_dir() else [src]
        for file in files:  # plain copies: the shared folder is read-only, the workspace must not be
            target = dst / file.name if src.is_dir() else dst
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target)
        Console().print(f"{src} -> {dst}")


# The other stages register their commands on import.
from flows import (  # noqa: E402,F401
    cli_control,
    cli_governance,
    cli_monitor,
    cli_protocol,
    cli_trading,
    cli_training,
    cli_worker,
)

__all__ = ["app"]
