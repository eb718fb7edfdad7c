"""Risk engine: each trigger, hysteresis, cooldown with the clock passed in, latched kill."""

from __future__ import annotations

from dataclasses import replace

import pytest

from trading.config import RiskConfig
from trading.risk import RiskDecision, RiskSnapshot, RiskStatus, check

CFG = RiskConfig()
T0 = 1_770_000_000_000_000_000
MIN = 60_000_000_000
CALM = RiskSnapshot(
    inventory_lots=0,
    notional=0.0,
    equity=100_000.0,
    initial_equity=100_000.0,
    peak_equity=100_000.0,
    var_ratio=1.0,
    last_data_ns=T0,
)


def run(snap: RiskSnapshot, now: int = T0, previous: RiskDecision | None = None) -> RiskDecision:
    return check(snap, now, risk=CFG, previous=previous)


def test_calm_market_is_active_on_both_sides() -> None:
    d = run(CALM)
    assert (d.status, d.reasons, d.allow_bid, d.allow_ask, d.cancel_all) == (
        RiskStatus.ACTIVE,
        (),
        True,
        True,
        False,
    )


def test_position_reduces_with_hysteresis() -> None:
    d = run(replace(CALM, inventory_lots=80))
    assert d.status == RiskStatus.REDUCING
    assert d.reasons == ("position_limit",)
    assert (d.allow_bid, d.allow_ask) == (False, True)  # long: only sell
    d = run(replace(CALM, inventory_lots=60), previous=d)
    assert d.status == RiskStatus.REDUCING  # 60 > resume 50: still reducing
    assert run(replace(CALM, inventory_lots=60)).status == RiskStatus.ACTIVE  # fresh: under 80
    d = run(replace(CALM, inventory_lots=50), previous=d)
    assert d.status == RiskStatus.ACTIVE


def test_notional_limit_reduces() -> None:
    d = run(replace(CALM, inventory_lots=-5, notional=2e6))
    assert d.status == RiskStatus.REDUCING
    assert "notional_limit" in d.reasons
    assert (d.allow_bid, d.allow_ask) == (True, False)


def test_max_loss_latches_kill_and_flattens() -> None:
    d = run(replace(CALM, equity=94_000.0))
    assert d.status == RiskStatus.HALTED
    assert "max_loss" in d.reasons
    assert d.cancel_all
    assert d.flatten
    assert not d.allow_bid
    assert not d.allow_ask
    d = run(
        replace(CALM, last_data_ns=T0 + 10**6 * MIN), now=T0 + 10**6 * MIN, previous=d
    )  # recovered, much later: still halted
    assert d.status == RiskStatus.HALTED
    assert "max_loss" in d.reasons


def test_drawdown_is_measured_from_the_peak() -> None:
    d = run(replace(CALM, equity=110_000.0, peak_equity=120_000.0))  # up 10k on start, 8.3% off peak
    assert d.status == RiskStatus.HALTED
    assert d.reasons == ("drawdown",)
    assert d.details == ("drawdown 8.33% >= 5.00% of peak: kill switch",)  # the decision carries its numbers
    assert run(replace(CALM, equity=115_000.0, peak_equity=120_000.0)).status == RiskStatus.ACTIVE


def test_every_reason_is_explained_with_its_numbers() -> None:
    d = run(
        replace(
            CALM,
            inventory_lots=-90,
            notional=2e6,
            equity=94_000.0,
            var_ratio=12.0,
            last_data_ns=T0 - 200_000_000_000,
            reject_rate=0.75,
            signal_available=False,
            kill_switch=True,
        )
    )
    text = " | ".join(d.details)
    assert len(d.details) == len(d.reasons) == 9
    for expected in (
        "position -90 lots",
        "exposure 2,000,000.00 >= max_notional",
        "loss 6,000.00 >= max_loss 5,000.00",
        "drawdown 6.00% >= 5.00% of peak",
        "volatility fast/slow 12.00 >= 9",
        "market data 200.0 s old > 180 s",
        "model signal unavailable",
        "reject rate 0.75 >= 0.50",
        "kill switch pressed",
    ):
        assert expected in text


def test_volatility_spike_pauses_with_cooldown_and_hysteresis() -> None:
    d = run(replace(CALM, var_ratio=10.0))
    assert d.status == RiskStatus.HALTED
    assert d.reasons == ("volatility_spike",)
    assert not d.flatten
    assert d.paused_until_ns == T0 + CFG.cooldown_ms * 1_000_000
    calm_again = run(replace(CALM, last_data_ns=T0 + MIN), now=T0 + MIN, previous=d)
    assert calm_again.status == RiskStatus.HALTED  # cooling down
    between = run(
        replace(CALM, var_ratio=5.0, last_data_ns=T0 + 10 * MIN), now=T0 + 10 * MIN, previous=calm_again
    )
    assert between.status == RiskStatus.HALTED  # 5 > resume ratio 3
    resumed = run(
        replace(CALM, var_ratio=2.0, last_data_ns=T0 + 10 * MIN), now=T0 + 10 * MIN, previous=between
    )
    assert resumed.status == RiskStatus.ACTIVE


def test_stale_data_signal_loss_and_reject_rate() -> None:
    stale = run(replace(CALM, last_data_ns=T0 - 4 * MIN))
    assert stale.status == RiskStatus.HALTED
    assert stale.reasons == ("stale_market_data",)
    no_signal = run(replace(CALM, inventory_lots=3, signal_available=False))
    assert no_signal.status == RiskStatus.REDUCING
    assert no_signal.reasons == ("signal_unavailable",)
    assert (no_signal.allow_bid, no_signal.allow_ask) == (False, True)
    rejects = run(replace(CALM, reject_rate=0.6))
    assert rejects.status == RiskStatus.HALTED
    assert rejects.reasons == ("reject_rate",)


def test_kill_switch_halts_cancels_and_stays() -> None:
    d = run(replace(CALM, inventory_lots=10, kill_switch=True))
    assert d.status == RiskStatus.HALTED
    assert d.reasons == ("kill_switch",)
    assert d.cancel_all
    assert d.flatten
    assert run(replace(CALM, last_data_ns=T0 + MIN), now=T0 + MIN, previous=d).status == RiskStatus.HALTED


def test_bad_input_and_config() -> None:
    with pytest.raises(ValueError, match="peak_equity must be > 0"):
        run(replace(CALM, peak_equity=0.0))
    with pytest.raises(ValueError, match="hysteresis"):
        RiskConfig(reduce_at_fraction=0.5, resume_at_fraction=0.8)
