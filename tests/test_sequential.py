"""Sequential inner tests (stats "sequential" section): the false-success rate stays within alpha
plus binomial slack over many simulated streams, for the alpha-spending looks and the
beta-mixture martingale; curtailment never changes a decision; power on clean streams."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats as sst

from semsmooth_core import planner, stats


def run_streams(plan, theta, p, n_streams, rng):
    """Simulate ``n_streams`` Bernoulli(p) streams through the plan; return (success, n_used)."""
    x = rng.random((n_streams, plan.n_max)) < p
    cum = np.cumsum(x, axis=1)
    status = np.zeros(n_streams, int)
    used = np.zeros(n_streams, int)
    for j, look in enumerate(plan.looks):
        open_ = status == 0
        if not open_.any():
            break
        k = cum[open_, look - 1]
        s, f = stats.sequential_decide(plan, j, k, theta)
        idx = np.flatnonzero(open_)
        status[idx[s]] = 1
        status[idx[f]] = 2
        used[idx] = look
    assert (status != 0).all()
    return status == 1, used


@pytest.mark.parametrize("method", ["looks", "mixture"])
def test_false_success_rate_within_alpha(method):
    rng = np.random.default_rng(3)
    theta, alpha, n_streams = 0.8, 0.1, 4000
    plan = planner.inner_plan(300, alpha, theta, method=method, futility_alpha=None)
    assert len(plan.looks) > 1
    succ, _ = run_streams(plan, theta, theta - 1e-9, n_streams, rng)   # H0 boundary: p just below θ
    assert succ.mean() <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / n_streams)


def test_naive_repeated_testing_would_fail():
    # The TSS bug: re-testing at the full alpha after every look inflates the error. This shows the
    # simulation above can detect unsoundness (the test can fail).
    rng = np.random.default_rng(4)
    theta, alpha, n_streams = 0.8, 0.1, 4000
    naive = stats.SequentialPlan(tuple(range(20, 301, 20)), tuple([alpha] * 15), "looks")
    succ, _ = run_streams(naive, theta, theta - 1e-9, n_streams, rng)
    assert succ.mean() > alpha + 3 * math.sqrt(alpha * (1 - alpha) / n_streams)


def test_power_and_savings_on_clean_streams():
    rng = np.random.default_rng(5)
    theta = stats.prob_lower_needed(0.3, 0.25)
    plan = planner.inner_plan(200, 0.001, theta)
    succ, used = run_streams(plan, theta, 1.0, 200, rng)
    assert succ.all() and (used == plan.looks[0]).all() and plan.looks[0] <= 100
    # curtailment is exact: a stream that fails early could not have succeeded at any later look
    succ2, used2 = run_streams(stats.make_sequential_plan(0.001, plan.looks, [1, 1, 1][:len(plan.looks)]
                                                          if len(plan.looks) <= 3 else None),
                               theta, 0.3, 200, rng)
    assert not succ2.any() and (used2 < 200).all()


def test_mixture_martingale_closed_form():
    # against direct numerical integration of the mixture likelihood ratio
    theta, a, b, k, n = 0.7, 2.0, 1.0, 17, 20
    grid = np.linspace(theta, 1, 200001)
    dens = sst.beta.pdf(grid, a, b) / sst.beta.sf(theta, a, b)
    lr = (grid / theta) ** k * ((1 - grid) / (1 - theta)) ** (n - k)
    direct = np.trapezoid(lr * dens, grid)
    assert stats.mixture_log_martingale(k, n, theta, a, b) == pytest.approx(math.log(direct), rel=1e-4)


def test_plan_validation():
    from semsmooth_core.validation import SemsmoothError

    with pytest.raises(SemsmoothError):
        stats.make_sequential_plan(0.01, [100, 50])
    with pytest.raises(SemsmoothError):
        stats.make_sequential_plan(0.01, [50, 100], method="magic")
    p = stats.make_sequential_plan(0.01, [50, 100, 200])
    assert sum(p.alphas) == pytest.approx(0.01)
