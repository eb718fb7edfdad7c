"""The glue the retrain flow shares: series keys and why a retrain runs."""

from __future__ import annotations

import pytest

from features.errors import ConfigError
from flows.training_steps import retrain_reason, split_series


def test_a_series_key_splits_into_venue_symbol_interval() -> None:
    assert split_series("binance:BTCUSDT:1m") == ("binance", "BTCUSDT", "1m")
    assert split_series("BTCUSDT-1m") == split_series("mmops-BTCUSDT-1m") == (None, "BTCUSDT", "1m")
    for bad in ("BTCUSDT", "binance:BTCUSDT", "a:b:c:d"):
        with pytest.raises(ConfigError, match="expected venue:symbol:interval"):
            split_series(bad)


def test_a_canary_retrain_must_say_why() -> None:
    assert retrain_reason("canary", " drift on rv_60 ", None) == "drift on rv_60"
    assert retrain_reason("canary", None, {"series": "binance:BTCUSDT:1m"}) == (
        "drift detected on binance:BTCUSDT:1m"
    )
    assert retrain_reason("canary", "", {"reason": "3 windows drifted"}) == "3 windows drifted"
    assert retrain_reason("standard", None, None) == "scheduled retrain"
    with pytest.raises(ConfigError, match="a canary retrain needs --reason"):
        retrain_reason("canary", None, None)
