"""What the worker exchanges with its venues and its signal source: orders, fills, signals.

Prices are integer ticks and sizes integer lots (converted at the venue edge), times integer ns
since the epoch. The venue interface is the one the live ccxt venue implements too: place with
a client order id, cancel, open orders, fills since, order by client id. A venue raises
:class:`VenueRejected` when the order was definitely not accepted and :class:`VenueAmbiguous`
when it cannot tell (timeouts, dropped acknowledgements, 5xx): the order then stays in flight
until a status query by client id resolves it (NautilusTrader's rule), never "failed".
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

import numpy as np

from features.errors import OperationalError, TemporaryError

OrderStatus = Literal["pending", "open", "filled", "canceled", "rejected"]
TERMINAL: frozenset[str] = frozenset({"filled", "canceled", "rejected"})


class VenueRejected(OperationalError):  # noqa: N818 - reads as the event it reports
    """The venue refused the request; nothing was placed or cancelled."""


class VenueAmbiguous(TemporaryError):  # noqa: N818 - reads as the state it reports
    """The venue may or may not have acted (timeout after send, lost acknowledgement)."""


class OrderRequest(NamedTuple):
    """One order the worker wants on the venue.

    This record, :class:`OrderState` and :class:`Fill` are named tuples rather than frozen
    dataclasses: a tick makes a few hundred of each, and a frozen dataclass cost 3-4 us to build
    against well under 1 for a tuple."""

    client_id: str
    symbol: str
    side: int  # +1 buy, -1 sell
    lots: int
    price_ticks: int  # limit price; ignored for a market order
    kind: Literal["limit", "market"] = "limit"


class OrderState(NamedTuple):
    """The venue's view of one order."""

    client_id: str
    symbol: str
    side: int
    price_ticks: int
    lots: int
    filled_lots: int
    status: OrderStatus
    kind: Literal["limit", "market"] = "limit"

    @property
    def remaining(self) -> int:
        return self.lots - self.filled_lots


class Fill(NamedTuple):
    """One execution, unique by ``(venue, trade_id)``; ``seq`` orders a venue's fills."""

    venue: str
    trade_id: str
    seq: int
    client_id: str
    symbol: str
    side: int
    price_ticks: int
    lots: int
    fee: float  # quote ccy, negative = rebate
    maker: bool
    ts_ns: int  # the bar (or event) the fill happened in


VenueError = VenueRejected | VenueAmbiguous


class Venue(Protocol):
    """Where orders go. All calls may raise :class:`VenueAmbiguous`; place/cancel also
    :class:`VenueRejected`. Placing an existing client id returns that order (idempotent).

    A send phase goes as two batches, the cancels and then the orders (``cancel_many``,
    ``place_many``), answered item by item in the order asked: each answer is what the single
    call would return, or the error it would raise. A venue with a batch form uses it (the
    paper venue: one pass); the others send single calls one after another
    (:func:`places_one_by_one`, :func:`cancels_one_by_one`).
    """

    name: str

    async def place(self, order: OrderRequest) -> OrderState: ...

    async def cancel(self, symbol: str, client_id: str) -> OrderState | None: ...

    async def place_many(self, orders: Sequence[OrderRequest]) -> list[OrderState | VenueError]: ...

    async def cancel_many(self, cancels: Sequence[tuple[str, str]]) -> list[OrderState | VenueError | None]:
        """``(symbol, client id)`` each."""
        ...

    async def open_orders(self, symbol: str | None = None) -> list[OrderState]: ...

    async def fills_since(self, seq: int) -> list[Fill]: ...

    async def order(self, client_id: str) -> OrderState | None: ...

    async def positions(self) -> dict[str, int]: ...

    async def flush(self) -> None:
        """After a send phase: whatever makes the requests sent so far final (paper: commit)."""
        ...


async def places_one_by_one(venue: Venue, orders: Sequence[OrderRequest]) -> list[OrderState | VenueError]:
    """:meth:`Venue.place_many` as single ``place`` calls, one after another (a venue with no
    batch form)."""
    answers: list[OrderState | VenueError] = []
    for order in orders:
        try:
            answers.append(await venue.place(order))
        except (VenueRejected, VenueAmbiguous) as exc:
            answers.append(exc)
    return answers


async def cancels_one_by_one(
    venue: Venue, cancels: Sequence[tuple[str, str]]
) -> list[OrderState | VenueError | None]:
    """:meth:`Venue.cancel_many` as single ``cancel`` calls, one after another."""
    answers: list[OrderState | VenueError | None] = []
    for symbol, client_id in cancels:
        try:
            answers.append(await venue.cancel(symbol, client_id))
        except (VenueRejected, VenueAmbiguous) as exc:
            answers.append(exc)
    return answers


@dataclass(frozen=True, slots=True)
class SignalBatch:
    """One answer of the signal source for the symbols asked, column-wise."""

    values: np.ndarray  # float64 per symbol
    versions: Sequence[str]
    aliases: Sequence[str]
    kind: Literal["forward_log_return", "prob_up"]
    shadow_values: np.ndarray | None = None
    shadow_version: str | None = None
    shadow_kind: Literal["forward_log_return", "prob_up"] | None = None  # the challenger may differ
    kinds: Sequence[str] | None = None  # per symbol, when the answer says (canary: two models)


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What the source expects: rows per window and the feature names, in order."""

    window_rows: int
    feature_names: tuple[str, ...]
    kind: Literal["forward_log_return", "prob_up"]
    champion: str
    challenger: str | None
    mode: str


class SignalSource(Protocol):
    """The signal service as the worker sees it (``flows`` adapts :mod:`serving.client` to it)."""

    async def info(self) -> SourceInfo: ...

    async def signals(
        self,
        symbols: Sequence[str],
        windows: np.ndarray,
        *,
        seq: np.ndarray | None = None,
        sent: asyncio.Event | None = None,
    ) -> SignalBatch:
        """One answer for all ``symbols``. ``seq`` is each window's newest row number (the
        symbol's bar count, from 0), so a source may send only the rows the service lacks. A
        source that sends a request sets ``sent`` once it has left (the worker does its venue
        work while the answer is on its way); one that does not may ignore it (the worker then
        waits for the answer before that work)."""
        ...

    async def close(self) -> None: ...
