"""``mmops trade``: the quoting worker on a paper replay, and its journal's controls.

``mmops trade --venue paper --replay store --symbols BTCUSDT`` runs (or resumes, with the same
``--journal``) a paper replay; ``trade status | kill | resume`` read and write that journal, so
they work whether the worker is running (it reads the controls every tick) or not (the next
start honours them). With ``--api-port`` the worker also serves its control API and dashboard;
``trade status | stop | start | kill | resume --api-url`` then go through it
(:mod:`flows.cli_control`). Each command resolves settings, calls one library function and reports.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from features.errors import ConfigError
from flows.cli_common import JsonOpt, app, context, emit, progress_shown, reported

if TYPE_CHECKING:
    from flows.trade_steps import ApiOptions
    from trading.worker.run import TradeReport

trade_app = typer.Typer(
    invoke_without_command=True,
    help="Run the quoting worker (a paper replay, paper on live bars, or live on an exchange); "
    "status, stop, start, kill and resume it.",
)
app.add_typer(trade_app, name="trade")

JournalOpt = Annotated[
    Path | None, typer.Option("--journal", help="the run's journal (default: $MMOPS_HOME/trading/journal.db)")
]
ApiUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        envvar="MMOPS_API_URL",
        help="a running worker's control API (its --api-port); none: the journal",
    ),
]


def _journal(path: Path | None) -> Path:
    where, _params = context()
    return path or where.home / "trading" / "journal.db"


@trade_app.callback()
@reported
def trade(
    ctx: typer.Context,
    venue: Annotated[
        str,
        typer.Option(
            "--venue", help="paper (the backtest's fill rule, nothing sent) or ccxt (orders to --exchange)"
        ),
    ] = "paper",
    replay: Annotated[
        str | None,
        typer.Option(
            "--replay",
            help="store (the validated bar store), a dump/file PATH, or live (--exchange's bars as they close)",
        ),
    ] = None,
    exchange: Annotated[
        str | None,
        typer.Option(
            "--exchange", help="live runs: a ccxt exchange id; keys from MMOPS_<ID>_API_KEY/_SECRET"
        ),
    ] = None,
    sandbox: Annotated[bool, typer.Option("--sandbox", help="live runs: the exchange's testnet")] = False,
    symbols: Annotated[str | None, typer.Option("--symbols", help="BTCUSDT[,ETHUSDT,...]")] = None,
    interval: Annotated[str | None, typer.Option("--interval", help="bar interval, default 1m")] = None,
    start: Annotated[
        str | None, typer.Option("--start", help="first bar traded (UTC); default: the newest day")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="last bar traded (UTC); default: the last stored")
    ] = None,
    speed: Annotated[str, typer.Option("--speed", help="max (as fast as possible) or N x real time")] = "max",
    journal: JournalOpt = None,
    service_url: Annotated[
        str | None, typer.Option("--service-url", help="a running `mmops serve`; none: model-free quotes")
    ] = None,
    max_ticks: Annotated[
        int | None, typer.Option("--max-ticks", min=1, help="stop after this many ticks")
    ] = None,
    api_port: Annotated[
        int | None,
        typer.Option(
            "--api-port", min=0, max=65535, help="serve the control API and dashboard here (0: any free port)"
        ),
    ] = None,
    api_host: Annotated[str, typer.Option("--api-host", help="the control API's address")] = "127.0.0.1",
    as_json: JsonOpt = False,
) -> None:
    """Quote on a paper replay through the risk engine and the backtest's fill rule
    (params: quote, risk, backtest, trade, features). Resumes from --journal when it exists.
    With --api-port: the control API and dashboard (tokens from MMOPS_API_OPERATOR_TOKEN and
    MMOPS_API_VIEWER_TOKEN)."""
    if ctx.invoked_subcommand is not None:
        return
    from flows.trade_steps import parse_symbols, replay_and_close, replay_data, worker_settings
    from trading.worker.replay import tick_capture
    from trading.worker.run import PaperRun

    if venue not in ("paper", "ccxt"):
        raise ConfigError(f"--venue {venue!r}: paper or ccxt")
    if symbols is None:
        raise ConfigError("--symbols is required, e.g. --symbols BTCUSDT or BTCUSDT,ETHUSDT")
    where, params = context()
    api = _api(api_port, api_host)
    if venue == "ccxt" or replay == "live":
        _trade_live(
            params,
            venue=venue,
            given={"--replay": replay if replay != "live" else None, "--start": start, "--end": end},
            speed=speed,
            exchange_id=exchange,
            sandbox=sandbox,
            symbols=[m.strip() for m in symbols.split(",") if m.strip()],
            interval=interval,
            journal=journal or where.home / "trading" / "journal.db",
            service_url=service_url,
            max_ticks=max_ticks,
            api=api,
            as_json=as_json,
        )
        return
    if exchange is not None or sandbox:
        raise ConfigError("--exchange and --sandbox are for live runs (--replay live, or --venue ccxt)")
    replay = replay or "store"
    capture = tick_capture(replay, symbols)
    if capture is not None and api is not None:
        raise ConfigError("--api-port: the control API runs beside bar replays; a tick replay has none yet")
    if capture is not None:
        given = [
            name
            for name, value in (
                ("--service-url", service_url),
                ("--start", start),
                ("--end", end),
                ("--interval", interval),
            )
            if value
        ]
        if given:
            raise ConfigError(
                f"--replay {replay} is a tick capture: {', '.join(given)} do not apply (it replays the whole "
                "capture, model-free, for now)"
            )
        _trade_ticks(
            capture, params, journal or where.home / "trading" / "journal.db", max_ticks, speed, as_json
        )
        return
    data = replay_data(
        where, params, replay=replay, symbols=parse_symbols(symbols), interval=interval, start=start, end=end
    )
    run = PaperRun(
        frames=data.frames,
        interval=data.interval,
        settings=worker_settings(params, data.interval, speed=_speed(speed)),
        journal=journal or where.home / "trading" / "journal.db",
        history=data.history,
        max_ticks=max_ticks,
    )
    source = _source(service_url, params.trade.signal_budget_ms)
    with progress_shown(as_json=as_json):
        result = asyncio.run(replay_and_close(run, source, api=api))
    emit(
        result.to_dict() | {"replay": data.describe()},
        as_json=as_json,
        human=summary(result, data.describe()),
    )


def _trade_live(
    params: Any,
    *,
    venue: str,
    given: dict[str, str | None],
    speed: str,
    exchange_id: str | None,
    sandbox: bool,
    symbols: list[str],
    interval: str | None,
    journal: Path,
    service_url: str | None,
    max_ticks: int | None,
    api: ApiOptions | None,
    as_json: bool,
) -> None:
    """``--replay live`` (paper on the exchange's bars) or ``--venue ccxt`` (orders to it)."""
    if given["--replay"] is not None:
        raise ConfigError(
            f"--venue ccxt trades the exchange's live bars: --replay {given['--replay']} does not apply"
        )
    named = [name for name in ("--start", "--end") if given[name]]
    if named:
        raise ConfigError(
            f"a live run starts now (a resumed one where it stopped): {', '.join(named)} do not apply"
        )
    if speed != "max":
        raise ConfigError(f"--speed {speed!r}: a live run goes at the exchange's pace")
    if exchange_id is None:
        raise ConfigError("a live run needs --exchange, e.g. --exchange binance")
    from features.schema import normalize_interval
    from flows.trade_steps import trade_live

    ivl = normalize_interval(interval or "1m")
    source = _source(service_url, params.trade.signal_budget_ms)
    with progress_shown(as_json=as_json):
        result = asyncio.run(
            trade_live(
                params,
                venue=venue,
                exchange_id=exchange_id,
                sandbox=sandbox,
                symbols=symbols,
                interval=ivl,
                journal=journal,
                source=source,
                max_ticks=max_ticks,
                api=api,
            )
        )
    where = (
        f"{'live' if venue == 'ccxt' else 'paper on live bars'}: {exchange_id}{' sandbox' if sandbox else ''} "
        f"{','.join(symbols)} {ivl} (stopped; the same command resumes it)"
    )
    emit(result.to_dict() | {"feed": where}, as_json=as_json, human=summary(result, where))


def _trade_ticks(
    capture: Any, params: Any, journal: Path, max_ticks: int | None, speed: str, as_json: bool
) -> None:
    """``--replay`` a tick capture: the worker's tick mode, model-free, as fast as possible."""
    from flows.trade_steps import worker_settings
    from trading.worker.tick_loop import run_tick_paper

    if speed != "max":
        raise ConfigError(f"--speed {speed!r}: a tick replay runs as fast as possible (--speed max)")
    settings = worker_settings(params, "1m")  # the tick engine's "bar" (horizons, half-lives)
    with progress_shown(as_json=as_json):
        doc = asyncio.run(run_tick_paper(capture, settings, journal=journal, max_ticks=max_ticks))
    human = (
        f"paper tick replay {doc['symbol']} ({len(doc['capture'])} file(s)): {doc['fills']} fills, "
        f"equity {doc['final_equity']:,.2f}, PnL {doc['pnl']:+,.2f}"
        + ("" if doc["finished"] else " (stopped early: run the same command to resume)")
        + f"\n  journal: {doc['journal']}"
    )
    emit(doc, as_json=as_json, human=human)


def _api(port: int | None, host: str) -> Any:
    """The control API's options (None without --api-port); refuses to start without an operator token."""
    if port is None:
        return None
    from flows.cli_common import err
    from flows.trade_steps import ApiOptions
    from serving.control.api import Tokens

    def announce(url: str) -> None:
        err.print(f"control API on {url}; dashboard: {url}/dashboard", highlight=False, soft_wrap=True)

    return ApiOptions(host=host, port=port, tokens=Tokens.from_env(os.environ), on_start=announce)


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError as exc:
        raise ConfigError(f"--speed {text!r}: 'max' or a number such as 10 (x real time)") from exc
    if not value > 0:
        raise ConfigError(f"--speed {text!r}: must be > 0")
    return value


def _source(url: str | None, budget_ms: int) -> Any:
    if url is None:
        return None
    from serving.config import TOKEN_ENV
    from serving.worker_source import HttpSignalSource

    return HttpSignalSource(url, token=os.environ.get(TOKEN_ENV), timeout_s=budget_ms / 1000)


def summary(r: TradeReport, replay: str) -> str:
    """A few lines a person reads: fills, equity, PnL by version, risk events, alerts."""
    live_pnl = r.pnl.get("live", 0.0)
    lines = [
        replay if replay.startswith(("live", "paper on")) else f"paper replay {replay}",
        f"  quotes from: {r.model}; {r.ticks_done}/{r.ticks_total} ticks"
        + ("" if r.finished else " (stopped early: run the same command to resume)"),
        f"  live book: {r.fills.get('live', 0)} fills, equity {r.final_equity.get('live', 0.0):,.2f}, PnL {live_pnl:+,.2f}",
    ]
    if "shadow" in r.fills:
        lines.append(
            f"  shadow book: {r.fills['shadow']} fills, PnL {r.pnl['shadow']:+,.2f} (never sent: the challenger on paper)"
        )
    for v in r.by_version:
        capture = "n/a" if v.spread_capture_bps is None else f"{v.spread_capture_bps:.2f} bps"
        lines.append(
            f"  {v.book} {v.label}: {v.fills} fills, fees {v.fees:,.2f}, PnL {v.pnl:+,.2f}, spread capture {capture}"
        )
    lines.append(f"  risk events: {len(r.risk_events)}" + (":" if r.risk_events else ""))
    lines += [f"    {e['symbol']} {e['message']}" for e in r.risk_events[-5:]]
    alerts = [e for e in r.alerts if e["kind"] == "alert"]
    if alerts:
        lines.append(f"  alerts: {len(alerts)} (last: {alerts[-1]['symbol']} {alerts[-1]['message']})")
    if r.tick_ms:
        lines.append(f"  tick-to-quote: p50 {r.tick_ms['p50']:.2f} ms, p99 {r.tick_ms['p99']:.2f} ms")
    lines.append(f"  journal: {r.journal}")
    return "\n".join(lines)


@trade_app.command("status")
@reported
def status(journal: JournalOpt = None, api_url: ApiUrlOpt = None, as_json: JsonOpt = False) -> None:
    """What a run's journal says: phase, kill switch, fills and PnL by version, recent events
    (with --api-url: what the running worker's API says, per symbol)."""
    from trading.worker.status import journal_status

    if api_url is not None:
        from flows.cli_control import api_status

        api_status(api_url, as_json=as_json)
        return
    doc = journal_status(_journal(journal))
    human = [
        f"journal {doc['journal']}: phase {doc['phase']}, kill switch {'ON' if doc['kill'] else 'off'}",
        f"  {doc['ticks_done']} ticks, {doc['fills']} fills, {doc['open_orders']} open orders",
    ]
    human += [
        f"  {v['book']} {v['version']}: {v['fills']} fills, PnL {v['pnl']:+,.2f}" for v in doc["by_version"]
    ]
    human += [f"  {e['symbol']} {e['kind']}: {e['message']}" for e in doc["events"][-8:]]
    emit(doc, as_json=as_json, human="\n".join(human))


def _press(path: Path, key: str, *, by: str, reason: str) -> None:
    from trading.worker.journal import Journal

    if not path.exists():
        raise ConfigError(f"{path}: no journal here; give the run's --journal")
    j = Journal(path)
    try:
        if j.run_spec() is None:
            raise ConfigError(f"{path}: no run has started in this journal; nothing to {key}")
        j.press(key, by=by, reason=reason)
    finally:
        j.close()


@trade_app.command("kill")
@reported
def kill(
    journal: JournalOpt = None,
    by: Annotated[str, typer.Option("--by", help="who presses it")] = "operator",
    reason: Annotated[str, typer.Option("--reason", help="why")] = "manual kill switch",
    api_url: ApiUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Press the kill switch: cancel everything, flatten when risk.flatten_on_kill; HALTED until resumed."""
    if api_url is not None:
        from flows.cli_control import api_press

        api_press(api_url, "kill", reason=f"{reason} ({by})", as_json=as_json)
        return
    path = _journal(journal)
    _press(path, "kill", by=by, reason=reason)
    emit(
        {"journal": str(path), "kill": True},
        as_json=as_json,
        human=f"kill switch ON in {path} ({by}: {reason})",
    )


@trade_app.command("resume")
@reported
def resume(
    by: Annotated[str, typer.Option("--by", help="the person clearing the kill switch")],
    reason: Annotated[str, typer.Option("--reason", help="why it is safe to quote again")],
    journal: JournalOpt = None,
    api_url: ApiUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Clear the kill switch (a person, with a reason); the peak for the drawdown limit restarts."""
    if not by.strip() or not reason.strip():
        raise ConfigError("--by and --reason must not be empty")
    if api_url is not None:
        from flows.cli_control import api_press

        api_press(api_url, "resume", reason=f"{reason} ({by})", as_json=as_json)
        return
    path = _journal(journal)
    _press(path, "resume", by=by, reason=reason)
    emit(
        {"journal": str(path), "resume": True},
        as_json=as_json,
        human=f"resume requested in {path} ({by}: {reason})",
    )
