"""Issue 13: the per-input E, honest certificate labels, and the smaller soundness fixes.

- per-input coverage: for single MNIST digits (the shipped rotation model's preprocessing), the
  digit's own miss rate P_{β,γ}(‖ε‖ ≥ E) at its E stays within its 1 − q̲_E (sampling that
  digit alone), while the dataset E of the training split does not hold for every digit;
- double smoothing has power: with each β's inner success probability just below the threshold,
  dropping α_ε from ρ (the reference code's bug) breaks soundness and the correct ρ holds;
- E chosen as an order statistic of the samples that bound it: tied norms no longer inflate q̲_E;
- one partition mask for E estimation and k-smoothing (odd sizes);
- every certificate kind's statement matches its attacker / E_scope / sound fields.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats as sst

from semsmooth_core import errors, planner, smoothing, stats
from semsmooth_core.runs import pipeline
from semsmooth_core.validation import SemsmoothError

ROT_MODEL = "mnist_cnn_rot_vg_noise030"        # the README's rotation model: vignette+gauss:5:1


def _slack_max(p: float, n: int, level: float = 0.999) -> float:
    """The largest miss rate a sample of n can show at level when the true rate is p."""
    return float(sst.binom.ppf(level, n, min(max(p, 0.0), 1.0))) / n


@pytest.fixture(scope="module")
def heldout():
    from semsmooth_core.data import embedded_mnist

    x, _ = embedded_mnist("heldout")
    return x


@pytest.fixture(scope="module")
def rot_setup():
    return errors.ErrorSetup("rotation", "bilinear", 30, 30, "vignette+gauss:5:1")


def _miss_rate(setup, x, E, n, seed):
    _, b, g = errors.draw(setup, n, 1, seed)
    return float((errors.input_norms(setup, x, b, g) >= E).mean())


def _miss_rates(setup, X, E, n_each, seed, batch=2000):
    """Each input's own miss rate P_{β,γ}(‖ε(β, γ, x_i)‖ ≥ E), n_each fresh draws per input,
    batched across inputs (every draw still belongs to one input)."""
    _, b, g = errors.draw(setup, len(X) * n_each, 1, seed)
    owner = torch.arange(len(X)).repeat_interleave(n_each)
    miss = np.zeros(len(X))
    with torch.no_grad():
        for s in range(0, len(owner), batch):
            o = owner[s:s + batch]
            nn = errors.part_norms(errors.eps(setup, X[o], b[s:s + batch], g[s:s + batch])).amax(1)
            np.add.at(miss, o.numpy(), (nn >= E).double().numpy())
    return miss / n_each


# ----------------------------------------------------------------------------- per-input E
def test_per_input_E_covers_each_input(heldout, rot_setup):
    """For single digits: estimate (E, q̲_E) on the digit (planner's sizes for the README's run),
    then sample the SAME digit with 8,000 fresh (β, γ): its miss rate at E must stay within
    1 − q̲_E plus binomial slack. Each estimate fails with probability ≤ α_E = 0.001."""
    cfg = pipeline.validate_config({"model": ROT_MODEL, "sigma_gamma": 30, "sigma_eps": 0.3,
                                    "attacker_range": 30, "sequential": "looks"})
    assert cfg["E_scope"] == "input" and cfg["attacker"] == "random"
    plan = pipeline.input_E_plan(cfg)
    assert 0 < plan.E_cap and plan.n_E >= 200
    n_check = 8000
    for i in (0, 300, 895):
        est = errors.estimate_E_for_input(rot_setup, heldout[i], plan.n_E, seed=100 + i, E_cap=plan.E_cap,
                                          n_select=plan.n_select, select_quantile=plan.select_quantile)
        assert est["E"] <= plan.E_cap and est["n"] == plan.n_E
        miss = _miss_rate(rot_setup, heldout[i], est["E"], n_check, seed=10_000 + i)
        assert miss <= _slack_max(1 - est["q_E_lower"], n_check), (i, est, miss)


@pytest.mark.slow  # ~25 s on the shared 2-core machine: 40,000 + 20,000 error samples
def test_dataset_E_does_not_hold_per_input(heldout, rot_setup):
    """The dataset E (train split, q̲_E = 0.95) is an average: some held-out digit misses it far
    more often than 5 % (the issue measured up to 0.27). Screen all 1,000 held-out digits with
    40 draws each, then confirm the worst five with 4,000 fresh draws each."""
    from semsmooth_core.data import embedded_mnist

    xt, _ = embedded_mnist("train")
    d = errors.E_for_q(errors.sample_errors(rot_setup, xt, 5000, seed=1).worst, 0.95, 0.001)
    assert d["q_E_lower"] >= 0.95
    screen = _miss_rates(rot_setup, heldout, d["E"], 40, seed=2000)
    worst = torch.as_tensor(np.argsort(screen)[::-1][:5].copy())
    confirmed = _miss_rates(rot_setup, heldout[worst], d["E"], 4000, seed=5000)
    limit = _slack_max(1 - d["q_E_lower"], 4000)
    assert max(confirmed) > limit, (worst, confirmed, limit)


@pytest.mark.slow  # ~30 s on the shared 2-core machine: certifies two digits end to end
def test_pipeline_rows_carry_their_own_E(heldout, rot_setup):
    """End to end: certify two digits with the per-input E (the default), then check each row's
    E against the digit sampled on its own (the issue's 'done when')."""
    from semsmooth_core.models import list_models

    if ROT_MODEL not in list_models():
        pytest.skip("rotation model not shipped")
    rows = []
    cfg = {"model": ROT_MODEL, "sigma_gamma": 30, "sigma_eps": 0.3, "n0": 10, "n_gamma": 20, "n_eps": 50,
           "alpha_gamma": 0.01, "alpha_eps": 0.01, "alpha_E": 0.01, "batch_size": 500, "seed": 3,
           "E_input_samples": 600}
    out = pipeline.certify_inputs(cfg, [1, 2], rows.append)
    assert out["config"]["E_scope"] == "input" and "E_per_input" in out
    for r in rows:
        assert r["attacker"] == "random" and r["E_scope"] == "input" and r["sound"] is True
        assert r["E"] is not None and 0 < r["q_E_lower"] <= 1
        assert "for this input" in r["statement"] and "drawn at random" in r["statement"]
        miss = _miss_rate(rot_setup, heldout[r["index"]], r["E"], 4000, seed=77 + r["index"])
        assert miss <= _slack_max(1 - r["q_E_lower"], 4000), r


@pytest.mark.parametrize("tr,rng", [("rotation", 10), ("translation", 1.0), ("scaling", 0.1)])
def test_worst_case_attacker_runs_and_bounds(tmp_path, tr, rng):
    """--attacker worst-case for rotation, translation, scaling: rows say worst-case, the
    statement says 'may pick any', and each sampled β's bound is >= the exact ε on a dense γ grid."""
    from semsmooth_core.models import build, save_checkpoint
    from semsmooth_core.worstcase import max_eps_upper

    torch.manual_seed(0)
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, build("small_cnn", width=2), "small_cnn", {"width": 2}, {"name": "tiny", "preprocess": "none"})
    rows = []
    cfg = {"model": str(path), "transform": tr, "attacker": "worst-case", "attacker_range": rng,
           "sigma_gamma": rng, "n0": 5, "n_gamma": 10, "n_eps": 30, "alpha_gamma": 0.1, "alpha_eps": 0.1,
           "alpha_E": 0.1, "E_input_samples": 12, "batch_size": 500}
    pipeline.certify_inputs(cfg, [0], rows.append)
    (r,) = rows
    assert r["attacker"] == "worst-case" and r["E_scope"] == "input" and r["sound"] is True
    assert "drawn at random" not in r["statement"]
    if r["prediction"] != -1:
        assert "may pick any" in r["statement"]
    # the bound is an upper bound of the exact max over a dense grid of γ in C
    from semsmooth_core.data import embedded_mnist

    x = embedded_mnist("heldout")[0][0]
    setup = errors.ErrorSetup(tr, "bilinear", rng, rng, None)
    beta = torch.tensor([[0.3 * rng]] * setup.t.dim).reshape(1, -1).double()
    res = max_eps_upper(setup, x, beta, threshold=0.5)
    d = setup.t.dim
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-rng, rng, 41 if d == 1 else 15)] * d, indexing="ij"),
                       -1).reshape(-1, d)
    ex = errors.input_norms(setup, x, beta.float().expand(len(grid), -1), grid)
    assert res.bound[0] >= ex.max() - 1e-6 and res.below[0] == (res.bound[0] < 0.5)


def test_claim_refusals():
    base = {"model": "x", "sigma_gamma": 30}
    with pytest.raises(SemsmoothError, match="dataset"):
        pipeline.validate_config({**base, "E_worst_case": True, "estimate_E": True})
    with pytest.raises(SemsmoothError, match="worst-case attacker needs"):
        pipeline.validate_config({**base, "attacker": "worst-case", "E": 0.3, "q_E_lower": 0.9})
    with pytest.raises(SemsmoothError, match="E scope dataset"):
        pipeline.validate_config({**base, "E_scope": "input", "E": 0.3, "q_E_lower": 0.9})
    c = pipeline.validate_config({**base, "E_worst_case": True})
    assert c["attacker"] == "worst-case" and c["E_scope"] == "input"
    c = pipeline.validate_config({**base, "E": 0.3, "q_E_lower": 0.9})
    assert c["E_scope"] == "dataset" and c["attacker"] == "random"


# ----------------------------------------------------------------------------- double smoothing power
class _Toy(torch.nn.Module):
    """Class 1 when z[0] > 500 (a 'fine' β: inner success probability 1) or z[1] > c."""

    def __init__(self, c):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1), requires_grad=False)
        self.c = c

    def forward(self, z):
        v = ((z[:, 0] > 500) | (z[:, 1] > self.c)).float()
        return torch.stack([-v, v], 1)


def test_double_rho_without_alpha_eps_fails_and_correct_rho_holds(monkeypatch):
    """Lemma 4.3 with a known answer. ψ_β(x) = (1000·[β > t], 0): a fraction π = P(β > t) of β is
    fine (inner success probability 1); for the others the inner model is right with probability
    p just BELOW the inner threshold θ = Φ(E/σ_ε), so f ('the inner smoothing truly certifies
    radius E') is false there, yet each inner test passes with probability ≈ α_ε. True
    P_β(f = 1) = π, so a certificate is wrong when p̲_A − ρ > π (radius > σ_γ Φ⁻¹(π)). At
    α_γ = α_ε = 0.1 over 120 certifications: the reference code's ρ (no α_ε) is wrong far more
    often than α_γ; the correct ρ stays within α_γ plus binomial slack."""
    n_eps, a = 20, 0.1
    theta = float(stats.cp_lower(19, n_eps, a))          # 19 of 20 right passes, 18 does not
    se = 1.0
    E = se * float(sst.norm.ppf(theta - 1e-9))
    assert smoothing.inner_threshold(E, se) <= theta
    p = theta - 0.002                                      # just below the threshold
    c = -se * float(sst.norm.ppf(p))                       # P(N(0, σ_ε²) > c) = p
    pass_prob = float(sst.binom.sf(18, n_eps, p))
    assert 0.09 < pass_prob <= a
    sg, t = 1.0, -0.5244                                   # π = P(β > t) = 0.70
    pi = float(sst.norm.sf(t / sg))
    R_true = sg * float(sst.norm.ppf(pi))

    def transform(xb, params):
        out = torch.zeros(len(params), 2)
        out[:, 0] = 1000.0 * (params[:, 0] > t).float()
        return out

    def run(trials, seed):
        g = torch.Generator().manual_seed(seed)
        bad = 0
        for _ in range(trials):
            cert = smoothing.certify_double(_Toy(c), torch.zeros(2), transform, sg, se, E, 1.0, 20, 1000, n_eps,
                                            a, a, 1e-9, generator=g, dim=1, clip=False, batch_size=20000)
            bad += cert.label != stats.ABSTAIN and (cert.label != 1 or cert.radius > R_true)
        return bad

    trials = 120
    limit = sst.binom.ppf(0.999, trials, a)
    good = run(trials, 1)
    assert good <= limit
    monkeypatch.setattr(smoothing, "double_rho", lambda a_eps, q, a_E, mode="lemma": (1 - float(q)) + float(a_E))
    buggy = run(trials, 1)
    assert buggy > limit, (buggy, limit)


# ----------------------------------------------------------------------------- order statistic and ties
def test_E_for_q_ties_not_anti_conservative():
    """Lattice-valued norms (3 values; P(norm = 0) = q): E chosen as an order statistic of the same
    samples. Counting the tied norms (the old q̲_E) fails more often than α = 0.1; the planned
    count k* keeps the failure rate within α plus binomial slack."""
    rng = np.random.default_rng(0)
    vals, probs = np.array([0.0, 0.1, 0.2]), np.array([0.8, 0.1, 0.1])
    n, q, alpha, trials = 200, 0.8, 0.1, 5000
    new, k_below, truth = 0, [], []
    for _ in range(trials):
        x = rng.choice(vals, size=n, p=probs)
        r = errors.E_for_q(x, q, alpha)
        true_q = float(probs[vals < r["E"]].sum())
        new += r["q_E_lower"] > true_q
        assert r["k_below"] >= r["k"]
        k_below.append(r["k_below"])
        truth.append(true_q)
    k_below = np.array(k_below)
    old = int((stats.cp_lower(k_below, np.full_like(k_below, n), alpha) > np.array(truth)).sum())  # ties counted
    limit = sst.binom.ppf(0.999, trials, alpha)
    assert new <= limit
    assert old > limit, (old, limit)


# ----------------------------------------------------------------------------- one partition mask
@pytest.mark.parametrize("shape", [(1, 5, 7), (3, 9, 6), (2, 4, 4)])
def test_partition_masks_shared(shape):
    C, H, W = shape
    for kind, norm in (("halves", "half"), ("quadrants", "quadrant"), ("channels", "channel"), ("none", "whole")):
        m = smoothing.partition_masks(kind, shape)
        ref = errors.part_masks(C, H, W, norm).float()
        assert torch.equal(m, ref)
        assert torch.all(m.sum(0) == 1)
    left = smoothing.partition_masks("halves", shape)[0]
    assert int(left[0, 0].sum()) == (W + 1) // 2            # left half takes the odd column
    e = torch.randn(3, C, H, W)
    m = smoothing.partition_masks("quadrants", shape)
    assert torch.allclose(errors.part_norms(e, "quadrant"),
                          torch.stack([(e * mk).flatten(1).norm(dim=1) for mk in m], 1), atol=1e-5)


# ----------------------------------------------------------------------------- labels
_STRONG_INPUT = ("for this input at certify time", "the guarantee holds for this input")


def _mean_model():
    class Mean(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

        def forward(self, z):
            v = 40 * (z.flatten(1).mean(1) - 0.1)
            return torch.stack([-v, v], 1)

    return Mean()


def test_statements_match_fields():
    x = torch.zeros(1, 12, 12)
    x[:, 3:9, 3:9] = 1
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    m = _mean_model()
    kw = dict(generator=None)
    dbl = {}
    for att in ("random", "worst-case"):
        for scope in ("input", "dataset"):
            cert = smoothing.certify_double(m, x, "rotation", 30, 0.25, 0.3, 0.97, 10, 40, 120, 0.01, 0.001, 0.001,
                                            generator=g(), attacker=att, E_scope=scope)
            assert (cert.attacker, cert.E_scope, cert.E, cert.q_E_lower, cert.sound) == (att, scope, 0.3, 0.97, True)
            dbl[att, scope] = cert.statement
            assert cert.to_dict()["statement"] == cert.statement
    for scope in ("input", "dataset"):
        s = dbl["worst-case", scope]
        assert "may pick any angle in [-30°, 30°]" in s and "drawn at random" not in s
        s = dbl["random", scope]
        assert "angle drawn at random (uniformly) from [-30°, 30°]" in s and "may pick any" not in s
    for att in ("random", "worst-case"):
        assert all(w in dbl[att, "input"] for w in _STRONG_INPUT) and "on average" not in dbl[att, "input"]
        s = dbl[att, "dataset"]
        assert "on average over inputs like the training set" in s
        assert not any(w in s for w in _STRONG_INPUT) and "for this input" not in s
    for s in dbl.values():
        assert "estimate, not a proof" not in s
    # the old flag maps onto the field
    old = smoothing.certify_double(m, x, "rotation", 30, 0.25, 0.3, 0.97, 10, 20, 60, 0.01, 0.001, 0.001,
                                   generator=g(), E_worst_case=True)
    assert old.attacker == "worst-case" and old.E_scope == "dataset"
    # k-smoothing
    ks = smoothing.certify_ksmooth(m, x, "rotation", 30, 0.25, 0.3, 0.97, 10, 20, 80, 0.01, 0.001, 0.001,
                                   partitions="none", generator=g(), E_scope="input")
    assert ks.E_scope == "input" and ks.E == 0.3 and "for this input" in ks.statement
    # noise: any l2 perturbation, no E
    nz = smoothing.certify_noise(m, x, 0.25, 10, 200, 0.01, generator=g())
    assert (nz.attacker, nz.E_scope, nz.E, nz.sound) == ("worst-case", None, None, True)
    assert "may pick any such perturbation" in nz.statement and "estimate" not in nz.statement
    # parameter smoothing of a registry transform: interpolation error not bounded -> estimate
    tr = smoothing.certify_transform(m, x, "rotation", 30, 10, 200, 0.01, generator=g())
    assert tr.attacker == "worst-case" and tr.sound is False and "estimate, not a proof" in tr.statement
    assert "not covered" in tr.statement
    # GSmooth-style certificates: extra["sound"] / method map onto the fields
    gs = smoothing.Certificate(label=1, radius=2.0, p_lower=0.9, alpha=0.001, n_forward=10, seconds=0.1,
                               radius_unit="severity", extra={"method": "gsmooth", "transform": "zoom_blur"})
    assert gs.attacker == "worst-case" and gs.sound is False and "estimate, not a proof" in gs.statement
    gs2 = smoothing.Certificate(label=1, radius=2.0, p_lower=0.9, alpha=0.001, n_forward=10, seconds=0.1,
                                extra={"method": "gsmooth", "sound": True, "attacker": "worst-case"})
    assert gs2.sound is True and "estimate" not in gs2.statement
    with pytest.raises(SemsmoothError):
        smoothing.Certificate(label=1, radius=1.0, p_lower=0.9, alpha=0.1, n_forward=1, seconds=0.0,
                              attacker="clever")


def test_store_keeps_claim_fields_and_migrates(tmp_path):
    import sqlite3

    from semsmooth_core.runs import Store

    db = tmp_path / "old.sqlite"
    con = sqlite3.connect(db)            # a store from before the claim columns (and clipped)
    con.executescript("""CREATE TABLE rows (run_id INTEGER NOT NULL, idx INTEGER NOT NULL, label INTEGER NOT NULL,
        prediction INTEGER NOT NULL, radius REAL NOT NULL, unit TEXT, p_lower REAL, rho REAL,
        correct INTEGER NOT NULL, base_correct INTEGER, n_forward INTEGER, seconds REAL,
        written REAL NOT NULL, PRIMARY KEY (run_id, idx));""")
    con.close()
    st = Store(db)
    rid = st.create_run({"model": "m"}, [0, 1])
    row = {"index": 0, "label": 1, "prediction": 1, "radius": 3.0, "radius_unit": "degrees", "p_lower": 0.9,
           "rho": 0.05, "correct": True, "base_correct": True, "n_forward": 10, "seconds": 0.1, "clipped": False,
           "attacker": "worst-case", "E_scope": "input", "E": 0.31, "q_E_lower": 0.97, "sound": True,
           "statement": "With probability ..."}
    st.add_row(rid, row)
    st.add_row(rid, {k: v for k, v in row.items() if k not in ("attacker", "E_scope", "E", "q_E_lower", "sound",
                                                                  "statement")} | {"index": 1})
    a, b = st.rows(rid)
    assert {k: a[k] for k in row} == row
    assert "attacker" not in b and "sound" not in b      # not guessed for rows without them
