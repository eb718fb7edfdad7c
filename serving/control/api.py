"""The worker's control API and dashboard (FastAPI): read the journal, write the operator's controls.

Reads open a read-only connection to the journal per request (WAL: the worker keeps writing);
writes are journal rows the worker takes inside its next tick's transaction (a stop/start
request, the kill switch, its resume), answered 202 with what was written.

Roles: a bearer token per role. The viewer token reads; the operator token also starts, stops,
kills and resumes. No token or an unknown one: 401; a viewer on a write: 403. Every error is one
sentence in ``{"detail": ...}``. The dashboard page and its script are public (they hold no
data); the page asks for a token and sends it with every call.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse

from features.errors import ConfigError
from serving.control import models as m
from serving.control import views
from serving.control.views import ControlContext, NotReady, UnknownSymbol
from trading.worker.journal import Journal

logger = logging.getLogger(__name__)
VIEWER_ENV = "MMOPS_API_VIEWER_TOKEN"
OPERATOR_ENV = "MMOPS_API_OPERATOR_TOKEN"
STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {"app.js": "text/javascript", "app.css": "text/css"}
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": m.Problem} for code in (401, 403, 404, 422, 503)}


@dataclass(frozen=True)
class Tokens:
    """The bearer tokens of the two roles (never printed: ``repr`` leaves them out)."""

    operator: str = field(repr=False)
    viewer: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Tokens:
        """The tokens from ``MMOPS_API_OPERATOR_TOKEN`` and ``MMOPS_API_VIEWER_TOKEN`` (optional).

        Raises:
            ConfigError: no operator token, or the same token for both roles.
        """
        operator = env.get(OPERATOR_ENV, "").strip()
        viewer = env.get(VIEWER_ENV, "").strip() or None
        if not operator:
            raise ConfigError(
                f"{OPERATOR_ENV} is not set: the control API will not start without an operator token "
                f"(export {OPERATOR_ENV}=<a long random string>; {VIEWER_ENV} optionally for read-only use)"
            )
        if viewer is not None and hmac.compare_digest(viewer.encode(), operator.encode()):
            raise ConfigError(f"{VIEWER_ENV} and {OPERATOR_ENV} are the same token: give each role its own")
        return cls(operator=operator, viewer=viewer)

    def role(self, given: str) -> m.Role | None:
        """The role a token gives, compared in constant time against both (None: neither)."""
        token = given.encode()
        is_operator = hmac.compare_digest(token, self.operator.encode())
        is_viewer = hmac.compare_digest(token, (self.viewer or "\0").encode()) and self.viewer is not None
        return "operator" if is_operator else "viewer" if is_viewer else None


def _problem(status: int, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail}, headers=headers or None)


def _sentence(exc: RequestValidationError) -> str:
    """pydantic's errors as one line: ``limits.max_position_lots: Input should be ...; ...``."""
    parts = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0])
        parts.append(f"{where}: {str(e['msg']).removeprefix('Value error, ')}")
    return "; ".join(parts)


def _ctx(request: Request) -> ControlContext:
    ctx: ControlContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ControlContext, Depends(_ctx)]


def _role(request: Request, authorization: Annotated[str | None, Header()] = None) -> m.Role:
    scheme, _, token = (authorization or "").partition(" ")
    if not authorization:
        raise HTTPException(
            401,
            f"no bearer token: send 'Authorization: Bearer <token>' ({VIEWER_ENV} or {OPERATOR_ENV})",
            headers={"WWW-Authenticate": "Bearer"},
        )
    tokens: Tokens = request.app.state.tokens
    found = tokens.role(token.strip()) if scheme.lower() == "bearer" else None
    if found is None:
        raise HTTPException(
            401,
            "token not recognised: send the viewer or the operator token as 'Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return found


def _operator(who: Annotated[m.Role, Depends(_role)]) -> m.Role:
    if who != "operator":
        raise HTTPException(403, "this needs the operator token; the viewer token only reads")
    return who


def _reader(ctx: Ctx) -> Iterator[Journal]:
    try:
        j = Journal.reader(ctx.journal)
    except ConfigError as exc:
        raise NotReady(f"{exc} (the worker has not started its run yet?)") from exc
    try:
        yield j
    finally:
        j.close()


@contextmanager
def _writing(ctx: ControlContext) -> Iterator[Journal]:
    """The journal to write a control to (opened and closed in the handler's own thread)."""
    if not ctx.journal.exists():
        raise NotReady(f"{ctx.journal}: no journal yet; the worker has not started its run")
    j = Journal(ctx.journal)
    try:
        if j.run_spec() is None:
            raise NotReady(f"{ctx.journal}: the worker has not started its run yet; ask again in a moment")
        yield j
    finally:
        j.close()


Viewer = Annotated[m.Role, Depends(_role)]
Operator = Annotated[m.Role, Depends(_operator)]
Read = Annotated[Journal, Depends(_reader)]
router = APIRouter(prefix="/maker", responses=ERRORS)
pages = APIRouter(include_in_schema=False)


def _ack(j: Journal, action: str, who: m.Role, at_ns: int, **extra: Any) -> m.ControlAck:
    phase = j.control("phase") or "stopped"
    when = "at its next tick" if phase == "active" else f"when it runs again (it is {phase} now)"
    return m.ControlAck(
        action=action,
        by=who,
        at=str(pd.Timestamp(at_ns, tz="UTC").isoformat()),
        detail=f"written to the journal: the worker takes it {when}",
        **extra,
    )


def _symbol(ctx: ControlContext, name: str) -> str:
    """A request body's symbol (422 when unknown: the body is what is wrong)."""
    try:
        return ctx.symbols[ctx.row(name)]
    except UnknownSymbol as exc:
        raise HTTPException(422, f"symbol: {exc}") from exc


@router.get("/whoami", response_model=m.WhoAmI)
def whoami(who: Viewer) -> m.WhoAmI:
    return m.WhoAmI(role=who)


@router.get("/active", response_model=m.Active)
def active(_who: Viewer, j: Read, ctx: Ctx) -> m.Active:
    return views.active(j, ctx)


@router.get("/status/{symbol}", response_model=m.SymbolStatus)
def status(symbol: str, _who: Viewer, j: Read, ctx: Ctx) -> m.SymbolStatus:
    return views.status(j, ctx, symbol)


@router.get("/performance/{symbol}", response_model=m.Performance)
def performance(symbol: str, _who: Viewer, j: Read, ctx: Ctx) -> m.Performance:
    return views.performance(j, ctx, symbol)


@router.get("/series/{symbol}", response_model=m.Series)
def series(
    symbol: str, _who: Viewer, j: Read, ctx: Ctx, points: Annotated[int, Query(ge=2, le=20_000)] = 720
) -> m.Series:
    return views.series(j, ctx, symbol, points=points)


@router.get("/risk/alerts", response_model=m.Alerts)
def risk_alerts(
    _who: Viewer, j: Read, ctx: Ctx, limit: Annotated[int, Query(ge=1, le=5000)] = 100
) -> m.Alerts:
    return views.alerts(j, ctx, limit=limit)


@router.post("/start", response_model=m.ControlAck, status_code=202)
def start(body: m.StartRequest, who: Operator, ctx: Ctx) -> m.ControlAck:
    sym = _symbol(ctx, body.symbol)
    try:
        doc = views.start_doc(ctx, body)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    with _writing(ctx) as j:
        req = j.request(sym, "start", by=who, doc=doc)
        return _ack(
            j,
            "start",
            who,
            req.at_ns,
            symbol=sym,
            request_id=req.id,
            max_position_lots=doc.get("max_position_lots"),
            min_half_spread_bps=doc.get("min_half_spread_bps"),
        )


@router.post("/stop", response_model=m.ControlAck, status_code=202)
def stop(body: m.StopRequest, who: Operator, ctx: Ctx) -> m.ControlAck:
    sym = _symbol(ctx, body.symbol)
    with _writing(ctx) as j:
        req = j.request(sym, "stop", by=who, doc={"reason": body.reason})
        return _ack(j, "stop", who, req.at_ns, symbol=sym, request_id=req.id)


def _press(ctx: ControlContext, key: str, who: m.Role, reason: str) -> m.ControlAck:
    with _writing(ctx) as j:
        j.press(key, by=who, reason=reason)
        doc = j.control_doc(key) or {}
        return _ack(j, key, who, int(doc.get("at", 0)), symbol=None)


@router.post("/kill", response_model=m.ControlAck, status_code=202)
def kill(who: Operator, ctx: Ctx, body: m.KillRequest | None = None) -> m.ControlAck:
    return _press(ctx, "kill", who, (body or m.KillRequest()).reason)


@router.post("/resume", response_model=m.ControlAck, status_code=202)
def resume(body: m.ResumeRequest, who: Operator, ctx: Ctx) -> m.ControlAck:
    return _press(ctx, "resume", who, body.reason)


@pages.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard")


@pages.get("/dashboard")
def dashboard() -> FileResponse:
    return FileResponse(STATIC / "dashboard.html", media_type="text/html")


@pages.get("/dashboard/{asset}")
def asset(asset: str) -> FileResponse:
    if asset not in ASSETS:
        raise HTTPException(404, f"no dashboard asset {asset!r}")
    return FileResponse(STATIC / asset, media_type=ASSETS[asset])


async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _problem(422, _sentence(exc))


async def _unknown(_request: Request, exc: Exception) -> JSONResponse:
    return _problem(404, str(exc))


async def _not_ready(_request: Request, exc: Exception) -> JSONResponse:
    return _problem(503, str(exc))


async def _failed(request: Request, exc: Exception) -> JSONResponse:
    logger.error("control API: %s %s failed: %r", request.method, request.url.path, exc)
    return _problem(
        500, f"the control API failed on this request ({type(exc).__name__}: {exc}); the worker goes on"
    )


def create_app(ctx: ControlContext, tokens: Tokens) -> FastAPI:
    """The API over ``ctx.journal`` for ``ctx.symbols``, guarded by ``tokens``."""
    app = FastAPI(
        title="mmops control API", summary="Start, stop, watch and kill the quoting worker", redoc_url=None
    )
    app.state.ctx, app.state.tokens = ctx, tokens
    app.include_router(router)
    app.include_router(pages)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(UnknownSymbol, _unknown)
    app.add_exception_handler(NotReady, _not_ready)
    app.add_exception_handler(Exception, _failed)  # JSON like every other answer; no traceback in it
    return app
