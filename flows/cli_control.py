"""``mmops trade status | stop | start | kill | resume --api-url URL``: a running worker, through its
control API (``mmops trade --api-port``), with the token from the environment.

Reads take ``MMOPS_API_OPERATOR_TOKEN`` (or ``MMOPS_API_VIEWER_TOKEN``); writes need the operator
token. A refused call (no API there, 401/403, a bad symbol or limit) is one line and exit 1.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from features.errors import ConfigError
from flows.cli_common import JsonOpt, emit, reported
from flows.cli_worker import ApiUrlOpt, trade_app

ReasonOpt = Annotated[str, typer.Option("--reason", help="why (journaled with the control)")]


def _client(url: str, *, write: bool) -> Any:
    from serving.control.api import OPERATOR_ENV, VIEWER_ENV
    from serving.control.client import ControlClient

    token = os.environ.get(OPERATOR_ENV, "").strip() or (
        "" if write else os.environ.get(VIEWER_ENV, "").strip()
    )
    if not token:
        needs = OPERATOR_ENV if write else f"{OPERATOR_ENV} or {VIEWER_ENV}"
        raise ConfigError(f"{needs} is not set: the control API at {url} needs its token")
    return ControlClient(url, token)


def _need(url: str | None, what: str) -> str:
    if url is None:
        raise ConfigError(
            f"trade {what} talks to a running worker: give --api-url http://127.0.0.1:PORT "
            "(the worker's --api-port) or set MMOPS_API_URL"
        )
    return url


def _quote(s: dict[str, Any]) -> str:
    if s["bid"] is None and s["ask"] is None:
        return "no quotes"
    spread = "" if s["spread_bps"] is None else f" ({s['spread_bps']:.1f} bps)"
    return f"{s['bid_lots']} @ {s['bid'] or '-'} / {s['ask_lots']} @ {s['ask'] or '-'}{spread}"


def api_status(url: str, *, as_json: bool) -> None:
    """What the running worker's API says: phase, kill switch, and each symbol's state."""
    client = _client(url, write=False)
    try:
        active = client.get("/maker/active")
        rows = [client.get(f"/maker/status/{sym}") for sym in active["symbols"]]
        alerts = client.get("/maker/risk/alerts?limit=5")
    finally:
        client.close()
    human = [
        f"worker at {url}: phase {active['phase']}, tick {active['tick']}/{active['ticks_total']}, "
        f"kill switch {'ON (' + str(active['kill_reason']) + ')' if active['kill'] else 'off'}"
    ]
    for s in rows:
        own = f", overrides: {', '.join(s['overridden'])}" if s["overridden"] else ""
        human.append(
            f"  {s['symbol']}: {'quoting' if s['quoting'] else 'STOPPED'}, {s['risk_status']}, "
            f"inventory {s['inventory_lots']:+d} lots, PnL {s['pnl']:+,.2f}, {_quote(s)}{own}"
        )
    human += [f"  {e['symbol'] or '-'} {e['kind']}: {e['message']}" for e in alerts["events"]]
    emit(
        {"api": url, "active": active, "symbols": rows, "alerts": alerts},
        as_json=as_json,
        human="\n".join(human),
    )


def api_press(url: str, key: str, *, reason: str, as_json: bool) -> None:
    """Press ``kill`` or ``resume`` through the API."""
    client = _client(url, write=True)
    try:
        doc = client.post(f"/maker/{key}", {"reason": reason})
    finally:
        client.close()
    emit(doc, as_json=as_json, human=f"{key} pressed through {url} ({doc['by']}): {doc['detail']}")


@trade_app.command("stop")
@reported
def stop(
    symbol: Annotated[str, typer.Argument(help="the symbol to stop quoting, e.g. ETHUSDT")],
    api_url: ApiUrlOpt = None,
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Stop quoting one symbol of a running worker: its orders are cancelled, its position kept."""
    url = _need(api_url, "stop")
    client = _client(url, write=True)
    try:
        doc = client.post("/maker/stop", {"symbol": symbol, "reason": reason})
    finally:
        client.close()
    emit(doc, as_json=as_json, human=f"stop {doc['symbol']} (request {doc['request_id']}): {doc['detail']}")


@trade_app.command("start")
@reported
def start(
    symbol: Annotated[str, typer.Argument(help="the symbol to quote again, e.g. ETHUSDT")],
    max_position_lots: Annotated[
        int | None, typer.Option("--max-position-lots", help="its own position limit, lots")
    ] = None,
    max_position_base: Annotated[
        float | None, typer.Option("--max-position-base", help="its own position limit, base ccy")
    ] = None,
    min_half_spread_bps: Annotated[
        float | None, typer.Option("--min-half-spread-bps", help="its own half-spread floor, bps of mid")
    ] = None,
    api_url: ApiUrlOpt = None,
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Quote one symbol of a running worker again, with its own limit and spread floor if given."""
    url = _need(api_url, "start")
    body: dict[str, Any] = {"symbol": symbol, "reason": reason}
    if max_position_lots is not None or max_position_base is not None:
        body["limits"] = {"max_position_lots": max_position_lots, "max_position_base": max_position_base}
    if min_half_spread_bps is not None:
        body["spread"] = {"min_half_spread_bps": min_half_spread_bps}
    client = _client(url, write=True)
    try:
        doc = client.post("/maker/start", body)
    finally:
        client.close()
    numbers = [
        f"{k} {doc[k]:g}" for k in ("max_position_lots", "min_half_spread_bps") if doc.get(k) is not None
    ]
    human = (
        f"start {doc['symbol']}" + (f" with {', '.join(numbers)}" if numbers else "") + f": {doc['detail']}"
    )
    emit(doc, as_json=as_json, human=human)
