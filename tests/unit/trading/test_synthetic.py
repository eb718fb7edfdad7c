"""The Avellaneda-Stoikov (2008) experiment: inventory strategy vs symmetric, against the paper."""

from __future__ import annotations

import math

import pytest

from trading.synthetic import run_as_experiment

# paper, section 4 tables: (profit mean, profit std, final q std, spread) for inventory / symmetric
PAPER = {
    0.1: ((62.94, 5.89, 2.80, 1.29), (67.21, 13.43, 8.66)),
    0.01: ((66.78, 8.76, 4.70, 1.33), (67.36, 13.40, 8.65)),
}


@pytest.mark.parametrize("gamma", [0.1, 0.01])
def test_reproduces_the_paper_table(gamma: float) -> None:
    res = run_as_experiment(gamma=gamma, paths=4000, seed=3)
    (p_mean, p_std, p_qstd, p_spread), (s_mean, s_std, s_qstd) = PAPER[gamma]
    inv, sym = res.inventory, res.symmetric
    # Seeded, so deterministic. The tolerances are against the PAPER's table, not our own noise: the
    # Monte Carlo standard error of 4,000 paths is 0.1-0.3% of these means (std / sqrt(4000)), but the
    # paper's figures come from 1,000 paths and its own discretisation, and sit 2-3% from the exact
    # expectations (test below); its stds carry ~2.2% sampling error (1 / sqrt(2 x 1000)) on top.
    assert inv.mean_spread == pytest.approx(p_spread, abs=0.005)
    assert inv.mean_profit == pytest.approx(p_mean, rel=0.06)
    assert inv.std_profit == pytest.approx(p_std, rel=0.12)
    assert inv.std_final_q == pytest.approx(p_qstd, rel=0.12)
    assert sym.mean_profit == pytest.approx(s_mean, rel=0.04)
    assert sym.std_profit == pytest.approx(s_std, rel=0.08)
    assert sym.std_final_q == pytest.approx(s_qstd, rel=0.08)
    assert abs(inv.mean_final_q) < 0.2


@pytest.mark.parametrize("gamma", [0.1, 0.01, 0.5])
def test_inventory_strategy_trades_profit_for_lower_risk(gamma: float) -> None:
    res = run_as_experiment(gamma=gamma, paths=2000, seed=11)
    assert res.inventory.std_profit < 0.75 * res.symmetric.std_profit
    assert res.inventory.std_final_q < 0.6 * res.symmetric.std_final_q
    assert res.inventory.mean_profit <= res.symmetric.mean_profit + 0.5
    assert set(res.to_dict()) == {"gamma", "paths", "inventory", "symmetric"}


def test_higher_gamma_keeps_inventory_tighter() -> None:
    q_std = [run_as_experiment(gamma=g, paths=2000, seed=5).inventory.std_final_q for g in (0.01, 0.1, 0.5)]
    assert q_std[0] > q_std[1] > q_std[2]
    with pytest.raises(ValueError, match="paths >= 2"):
        run_as_experiment(gamma=0.1, paths=1)


def test_exact_moments_agree_with_the_simulation_and_a_closed_form() -> None:
    from trading.synthetic import exact_moments

    half = (2 / 0.5) * math.log1p(0.5 / 1.5) / 2  # symmetric: E[profit] = 2 A exp(-kappa h) h T
    assert exact_moments(gamma=0.5, symmetric=True).mean_profit == pytest.approx(
        2 * 140 * math.exp(-1.5 * half) * half, rel=1e-9
    )
    res = run_as_experiment(gamma=0.5, paths=3000, seed=21)
    exact = exact_moments(gamma=0.5, symmetric=False)
    assert abs(res.inventory.mean_profit - exact.mean_profit) < 4 * res.inventory.std_profit / math.sqrt(3000)
    assert res.inventory.std_final_q == pytest.approx(exact.std_final_q, rel=0.05)


def test_paper_gamma_half_inventory_profit_is_not_reachable_from_its_model() -> None:
    """The paper's 33.92 (gamma 0.5, inventory strategy) is ~65 standard errors above the exact
    expectation of its own stated model (23.90), and above neither variant of the spread: with
    the time term the exact value is 48.6. See the note in :mod:`trading.synthetic`."""
    from trading.synthetic import exact_moments

    assert exact_moments(gamma=0.5, symmetric=False).mean_profit == pytest.approx(23.90, abs=0.01)
    with_time_term = exact_moments(gamma=0.5, symmetric=False, spread_time_term=True).mean_profit
    assert with_time_term == pytest.approx(48.57, abs=0.01)
