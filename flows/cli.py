"""The ``mmops`` command line: parse options, resolve locations, call the library, report.

Every command prints a human summary, or exactly one JSON document on stdout with ``--json``.
Failures exit non-zero with a one-line reason on stderr. Heavy libraries (Great Expectations,
TensorFlow, MLflow, Prefect) are imported inside the commands that need them, so the data
commands start fast. The app and its shared options live in :mod:`flows.cli_common`; the data
commands are here, the other stages in ``flows/cli_<stage>.py`` (registered at the bottom).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console

from features.errors import ConfigError
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


@app.command()
@reported
def ingest(
    source: Annotated[str | None, typer.Option("--source", help="binance-dump | file | ccxt")] = None,
    path: Annotated[
        str | None, typer.Option("--path", help="file or directory; for ccxt the exchange id")
    ] = None,
    all_datasets: Annotated[
        bool, typer.Option("--all", help="every dataset in params.yaml, under --root")
    ] = False,
    root: Annotated[
        Path | None, typer.Option("--root", help="with --all: where datasets live (MMOPS_SOURCE_DATA)")
    ] = None,
    symbol: SymbolOpt = None,
    interval: IntervalOpt = None,
    venue: VenueOpt = None,
    preset: Annotated[
        str | None, typer.Option("--preset", help="freqtrade | kraken (for --source file)")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="ccxt: first bar (default: after the last stored)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Read a source into canonical bars, validate them, and merge them into the store."""
    from features.pipeline import ingest_source

    where, params = context()
    jobs: list[tuple[str, Path, str | None, str | None, str | None, str | None]]
    if all_datasets:
        jobs = [(d.source, (root or where.source_data) / d.path, d.symbol, d.interval, d.venue, d.preset)
                for d in params.data.datasets]  # fmt: skip
    elif source and path:
        jobs = [(source, Path(path), symbol, interval, venue, preset)]
    else:
        raise ConfigError("give --source and --path, or --all")
    series: list[dict[str, Any]] = []
    for src, src_path, sym, ivl, ven, pre in jobs:
        series += ingest_source(
            src, src_path, store_root=where.bars, quarantine_root=where.quarantine, gx_root=where.gx_root,
            validation=params.validation, now=pd.Timestamp.now(tz="UTC"), symbol=sym, interval=ivl, venue=ven,
            preset=pre, since=since, progress=no_progress if as_json else track,
        )["series"]  # fmt: skip
    result = {"series": series}
    lines = [
        f"{s['series']}: {s['rows_in']} rows in, {s['rows_added']} added, {s['rows_replaced']} replaced, "
        f"{s['rows_total']} stored; {s['gap_count']} gaps" + ("" if s["months_written"] else " (unchanged)")
        for s in result["series"]
    ]
    emit(result, as_json=as_json, human="\n".join(lines))


@app.command()
@reported
def validate(
    symbol: SymbolOpt = None, interval: IntervalOpt = None, venue: VenueOpt = None, as_json: JsonOpt = False
) -> None:
    """Re-run the data-quality suite on stored series and rebuild Data Docs."""
    from features.pipeline import validate_store

    where, params = context()
    reports = validate_store(where.bars, config=params.validation, gx_root=where.gx_root, symbol=symbol,
                             interval=interval, venue=venue, now=pd.Timestamp.now(tz="UTC"))  # fmt: skip
    payload = {
        "success": all(r.success for r in reports),
        "data_docs": str(where.gx_root / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"),
        "series": [{"series": r.series, "rows": r.rows, "success": r.success, "findings": [str(f) for f in r.findings],
                    "gap_count": r.gaps.count, "longest_gap_bars": r.gaps.longest_bars} for r in reports],
    }  # fmt: skip
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
    result = build_features(where.bars, features_root=where.features, config=params.features, venue=venue,
                            symbol=symbol, interval=interval, start=start, end=end, out=out)  # fmt: skip
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
from flows import cli_governance, cli_protocol, cli_trading, cli_training  # noqa: E402,F401

__all__ = ["app"]
