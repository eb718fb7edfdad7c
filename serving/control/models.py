"""The control API's request and response models (pydantic): what goes over the wire.

Units: prices in quote currency (the tick-integer prices beside them), sizes in lots of
``backtest.lot_size`` (and base units where named ``_base``), money in quote currency, spreads in
ticks and bps of the mid, times as ISO 8601 UTC.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Role = Literal["viewer", "operator"]
Severity = Literal["critical", "warning", "info"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Request):
    """A symbol's position limit: lots, or base units (a whole number of lots); one of them."""

    max_position_lots: int | None = Field(None, ge=1, description="hard inventory limit, lots")
    max_position_base: float | None = Field(None, gt=0, description="hard inventory limit, base ccy")

    @model_validator(mode="after")
    def _one(self) -> Limits:
        if (self.max_position_lots is None) == (self.max_position_base is None):
            raise ValueError("give exactly one of max_position_lots or max_position_base")
        return self


class Spread(_Request):
    """A symbol's spread floor."""

    min_half_spread_bps: float = Field(
        ge=0, le=1000, description="narrowest half-spread, bps of the mid (quote.max_spread_ticks still caps)"
    )


class StartRequest(_Request):
    """Quote ``symbol`` again, with its own limits and spread where given (params.yaml's otherwise)."""

    symbol: str
    limits: Limits | None = None
    spread: Spread | None = None
    reason: str = Field("", max_length=300)


class StopRequest(_Request):
    """Stop quoting ``symbol``: cancel its orders; its position is kept (no flatten)."""

    symbol: str
    reason: str = Field("", max_length=300)


class KillRequest(_Request):
    reason: str = Field("manual kill switch (control API)", min_length=1, max_length=300)


class ResumeRequest(_Request):
    reason: str = Field(min_length=1, max_length=300, description="why it is safe to quote again")


class ControlAck(BaseModel):
    """A control written to the journal; the worker takes it at its next tick (202)."""

    action: Literal["start", "stop", "kill", "resume"]
    symbol: str | None
    by: Role
    at: str
    request_id: int | None = None
    max_position_lots: int | None = None
    min_half_spread_bps: float | None = None
    detail: str


class WhoAmI(BaseModel):
    role: Role


class Order(BaseModel):
    """One of our working orders."""

    client_id: str
    side: Literal["buy", "sell"]
    price: float
    price_ticks: int
    lots: int
    filled_lots: int
    status: str
    tick: int
    version: str


class SymbolStatus(BaseModel):
    """One symbol now: the operator's word, the risk state, position, PnL, quotes and orders."""

    symbol: str
    quoting: bool = Field(description="False: stopped by an operator (its position kept)")
    pending: list[str] = Field(description="stop/start requests the worker has not taken yet")
    controlled_by: str | None
    controlled_at: str | None
    max_position_lots: int = Field(description="the limit it is quoted with (override or params.yaml)")
    min_half_spread_bps: float
    overridden: list[str] = Field(description="which of the two are overrides")
    risk_status: Literal["ACTIVE", "REDUCING", "HALTED"]
    reasons: list[str]
    risk_message: str | None = Field(description="the last risk event of the symbol, with its numbers")
    inventory_lots: int
    inventory_base: float
    equity: float
    pnl: float
    mark: float | None = Field(description="the last close")
    bid: float | None
    ask: float | None
    bid_lots: int
    ask_lots: int
    spread_ticks: int | None
    spread_bps: float | None
    orders: list[Order]
    model_free: str | None = Field(description="why it is quoted without a model signal, if it is")
    tick: int


class Active(BaseModel):
    """The worker: its phase, the kill switch, and which symbols it quotes."""

    phase: str
    kill: bool
    kill_by: str | None
    kill_reason: str | None
    tick: int
    ticks_total: int | None  # None: a live run (ticks keep coming)
    time: str | None = Field(description="the replay's clock: the last tick's bar open")
    symbols: list[str]
    active: list[str] = Field(description="quoting now (not stopped, not HALTED)")
    stopped: list[str]
    halted: list[str]


class VersionShare(BaseModel):
    """One model version's share of the symbol's fills (trading.worker.attribution)."""

    book: str
    version: str
    label: str
    fills: int
    lots: int
    fees: float
    pnl: float
    spread_capture_bps: float | None
    markouts_bps: dict[str, float | None]


class Performance(BaseModel):
    """How a symbol has done on the live book."""

    symbol: str
    pnl: float
    fees: float
    fills: int
    maker_fills: int
    lots_traded: int
    volume_base: float
    volume_quote: float
    avg_spread_ticks: float | None = Field(description="mean bid-ask distance of our two-sided quotes")
    avg_spread_bps: float | None
    quoted_ticks: int = Field(description="ticks that ended with a two-sided quote working")
    fill_rate: float | None = Field(description="lots filled / lots placed, limit orders")
    inventory_turnover: float | None = Field(description="lots traded / mean |inventory| lots over the run")
    mean_abs_inventory_lots: float
    max_drawdown: float = Field(description="largest fall from the running peak of equity, fraction")
    by_version: list[VersionShare]


class Series(BaseModel):
    """A symbol's curves, one entry per tick (null: nothing there at that tick)."""

    symbol: str
    tick: list[int]
    time: list[str]
    mid: list[float | None]
    bid: list[float | None]
    ask: list[float | None]
    inventory_lots: list[int]
    pnl: list[float]
    drawdown: list[float] = Field(description="fall from the running peak of equity, fraction")


class Alert(BaseModel):
    tick: int
    time: str | None
    symbol: str
    kind: str
    severity: Severity
    message: str


class OpenAlert(BaseModel):
    """A symbol not ACTIVE now, and why."""

    symbol: str
    status: Literal["REDUCING", "HALTED"]
    reasons: list[str]
    message: str | None


class Alerts(BaseModel):
    kill: bool
    open: list[OpenAlert]
    events: list[Alert] = Field(description="newest last")


class Problem(BaseModel):
    """Every 4xx/5xx answer: one readable sentence."""

    detail: str
