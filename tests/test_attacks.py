"""Attacks beside certificates (semsmooth_core.attacks): every registered transformation can be
attacked, the search is deterministic for a seed and keeps its budget (counted at the model), the
grid finds a planted weak parameter interval, the ``attack`` CLI keeps its JSON contract, and the
standing soundness check finds no certified input broken inside its radius on a shipped model."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch

from semsmooth_core import transforms
from semsmooth_core.attacks import (Region, SmoothedTarget, Target, attack_input, attack_range, parse_range,
                                    search, soundness_check)
from semsmooth_core.validation import SemsmoothError


class Counting(torch.nn.Module):
    """Wraps a model and counts the inputs it classifies (the forward passes)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, 0

    def forward(self, x):
        self.seen += x.shape[0]
        return self.model(x)


class MeanBand(torch.nn.Module):
    """Class 0 unless the mean pixel lies within ``w`` of ``c``: then class 1 (a weak interval)."""

    def __init__(self, c: float, w: float):
        super().__init__()
        self.c, self.w = c, w
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        m = x.flatten(1).mean(dim=1)
        z1 = self.w - (m - self.c).abs()
        return torch.stack([torch.zeros_like(z1), z1 * 100], dim=1)


class Linear(torch.nn.Module):
    def __init__(self, n_in: int, k: int = 3, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(n_in, k, generator=g) / n_in ** 0.5)

    def forward(self, x):
        return x.flatten(1) @ self.w


def _image(seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(1, 28, 28, generator=g) * 255).round() / 255


def _gen(seed=1):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", transforms.names())
def test_every_registered_transformation_is_attacked_within_its_budget(name):
    t = transforms.get(name)
    x = torch.randint(-3000, 3000, (1600,)).float() / 32768 if t.modality == "audio" else _image()
    model = Counting(Linear(x.numel()))
    y = int(model.model(x.unsqueeze(0)).argmax())
    region = Region.box(attack_range(t))
    a = attack_input(Target(model), t, x, y, region, 40, generator=_gen(), stop_when_broken=False)
    assert a["n_forward"] == model.seen and a["n_forward"] + a["n_backward"] <= 40
    (lo, hi), = [tuple(r) for r in attack_range(t)][:1]
    assert lo - 1e-9 <= a["worst_param"][0] <= hi + 1e-9 and len(a["worst_param"]) == t.dim
    # the reported margin is the model's margin at the reported (rounded) attacked input
    xa = t(x.unsqueeze(0), torch.tensor([a["worst_param"]]))
    z = model.model(xa)[0].detach()
    other = torch.cat([z[:y], z[y + 1:]]).max()
    assert a["margin"] == pytest.approx(float(z[y] - other), abs=1e-4)
    assert a["broken"] == (a["worst_prediction"] != y)


def test_grid_finds_a_planted_weak_interval():
    """Brightness of a mid-grey image: the model is wrong only for offsets in [0.11, 0.13] (5 % of
    C = [-0.2, 0.2]); the grid (spacing 0.008) must land in it."""
    x = torch.full((1, 28, 28), 128 / 255)
    t = transforms.get("brightness")
    model = MeanBand(128 / 255 + 0.12, 0.01)
    a = attack_input(Target(model), t, x, 0, Region.box([(-0.2, 0.2)]), 100, generator=_gen(),
                     stop_when_broken=False)
    assert a["broken"] and a["worst_prediction"] == 1
    assert 0.11 - 1e-3 <= a["worst_param"][0] <= 0.13 + 1e-3
    # ... and a search that misses it reports an unbroken input (the interval is outside this C)
    b = attack_input(Target(model), t, x, 0, Region.box([(-0.2, 0.1)]), 100, generator=_gen())
    assert not b["broken"]


def test_gradient_refinement_moves_towards_the_minimum():
    """A smooth score with its minimum between grid points: the gradient refinement beats the grid."""
    target = torch.tensor([0.3131, -0.2717], dtype=torch.float64)

    def score(p):
        return ((p - target) ** 2).sum(dim=1)

    def grad(p):
        return score(p), 2 * (p - target)

    region = Region.box([(-1, 1), (-1, 1)])
    plain = search(score, region, 60, generator=_gen(), grad=None, max_rounds=0, grid_fraction=0.8,
                   random_fraction=0.0)
    refined = search(score, region, 120, generator=_gen(), grad=grad, grid_fraction=0.4, random_fraction=0.0)
    assert refined.n_forward <= 120
    assert float(refined.scores.min()) < float(plain.scores.min()) / 4


def test_search_is_deterministic_for_a_seed_and_respects_the_ball():
    t = transforms.get("translation")
    x = _image(3)
    model = Linear(784, seed=2)
    y = int(model(x.unsqueeze(0)).argmax())
    region = Region.box(attack_range(t, 4), radius=2.5)
    runs = [attack_input(Target(model), t, x, y, region, 60, generator=_gen(s), stop_when_broken=False)
            for s in (5, 5, 6)]
    assert runs[0]["worst_param"] == runs[1]["worst_param"] and runs[0]["margin"] == runs[1]["margin"]
    for r in runs:
        for p in r["worst_of_k"]:
            assert torch.tensor(p).norm() < 2.5
    res = search(lambda p: p[:, 0], Region.box([(-4, 4), (-4, 4)], radius=2.5), 50, generator=_gen())
    assert bool((Region.box([(-4, 4), (-4, 4)], radius=2.5).norm(res.params) < 2.5).all())


@pytest.mark.parametrize("kind", ["noise", "transform", "double", "resolvable"])
def test_smoothed_targets_spend_what_they_report(kind):
    t = transforms.get("gaussian_blur" if kind == "resolvable" else "rotation")
    x = _image(4)
    model = Counting(Linear(784, seed=3))
    y = int(model.model(x.unsqueeze(0)).argmax())
    kw = dict(transform=t, sigma_gamma=[10.0], sigma_eps=0.25, n_predict=30, n_eps=8, alpha=0.01, n_probe=4)
    if kind == "resolvable":
        target = SmoothedTarget(model, None, "gsmooth", dist="exp", scale=1.0, **kw)
    else:
        target = SmoothedTarget(model, None, kind, **kw)
    budget = 2 * target.predict_cost + 10 * target.cost
    a = attack_input(target, t, x, y, Region.box(attack_range(t)), budget, generator=_gen(), k_worst=2)
    assert a["n_forward"] == model.seen <= budget
    assert len(a["worst_of_k_predictions"]) == 2 and a["broken"] == (a["worst_prediction"] != y)
    with pytest.raises(SemsmoothError, match="too small"):
        attack_input(target, t, x, y, Region.box(attack_range(t)), target.predict_cost, generator=_gen())


def test_range_parsing_and_errors():
    rot, blur, tr = transforms.get("rotation"), transforms.get("zoom_blur"), transforms.get("translation")
    assert attack_range(rot, 30) == [(-30.0, 30.0)]
    assert attack_range(blur, 0.3) == [(0.0, 0.3)]
    assert attack_range(tr, parse_range("-4:4,-2:2")) == [(-4.0, 4.0), (-2.0, 2.0)]
    assert attack_range(tr, 4) == [(-4.0, 4.0), (-4.0, 4.0)]
    for bad in (1000, [(-1, 1), (-1, 1)]):
        with pytest.raises(SemsmoothError):
            attack_range(rot, bad)
    with pytest.raises(SemsmoothError):
        parse_range("ten")


def _cli(*args):
    from semsmooth_core import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main(list(args))
        except SystemExit as e:
            rc = e.code
    return rc, out.getvalue(), err.getvalue()


def test_attack_cli_json_contract():
    rc, out, err = _cli("attack", "--model", "mnist_cnn_noise025", "--transform", "rotation", "--range", "45",
                        "--indices", "0,200,300", "--budget", "60", "--json", "--quiet")
    assert rc == 0, err
    d = json.loads(out)
    assert {"n", "clean_accuracy", "empirical_robust_accuracy", "forward_passes_per_input",
            "seconds_per_input", "rows"} <= set(d)
    assert d["n"] == 3 and len(d["rows"]) == 3
    for r in d["rows"]:
        assert {"index", "label", "prediction", "broken", "worst_param", "worst_prediction", "margin"} <= set(r)
        assert r["n_forward"] <= 60 + 1          # the budget plus the clean prediction
    assert d["empirical_robust_accuracy"] == pytest.approx(sum(not r["broken"] for r in d["rows"]) / 3)
    rc2, out2, _ = _cli("attack", "--model", "mnist_cnn_noise025", "--range", "45", "--indices", "0,200,300",
                        "--budget", "60", "--json", "--quiet")
    assert json.loads(out2)["rows"] == [{**r, "seconds": json.loads(out2)["rows"][i]["seconds"]}
                                        for i, r in enumerate(d["rows"])]
    for bad in (["--range", "1000"], ["--transform", "nope"], ["--budget", "0"], ["--smoothing", "gsmooth"]):
        rc, out, err = _cli("attack", "--model", "mnist_cnn_noise025", "--indices", "0", *bad, "--json")
        assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1, (bad, err)


def test_attack_cli_smoothed_gsmooth_target():
    rc, out, err = _cli("attack", "--model", "gsmooth_zoom_blur_cnn", "--transform", "zoom_blur", "--smoothing",
                        "gsmooth", "--range", "0.03", "--indices", "0", "--n-probe", "4", "--n-predict", "40",
                        "--alpha", "0.01", "--budget", "120", "--json", "--quiet")
    assert rc == 0, err
    d = json.loads(out)
    assert d["target"]["kind"] == "gsmooth" and "alpha = 0.01" in d["target"]["predict"]
    r = d["rows"][0]
    assert r["n_forward"] <= 120 + 40
    assert r["broken"] or 0.0 <= r["worst_param"][0] <= 0.03


def test_standing_check_small_no_certified_input_broken():
    """Transform smoothing (Thm 4.2) of the rotation-trained model, C = ±30°: every certified input is
    attacked inside its radius with the real, rounded rotation; PREDICT never names another class."""
    res = soundness_check({"model": "mnist_cnn_rot_noise025", "smoothing": "transform", "transform": "rotation",
                           "sigma_gamma": 30, "attacker_range": 30, "n0": 20, "n_gamma": 100,
                           "alpha_gamma": 0.01, "attack_budget": 8 * 16 + 2 * 100, "attack_n_probe": 16},
                          [0, 300, 500, 700])
    assert res["certified"] >= 3
    assert res["broken"] == 0, res["breaks"]
    assert res["ok"]
    for r in res["rows"]:
        if r["prediction"] != -1:
            assert r["attack_n_forward"] <= 8 * 16 + 2 * 100 and abs(r["attack_param"][0]) <= 30


def test_standing_check_reports_a_break_of_a_wrong_certificate(monkeypatch):
    """The check can fail: a certificate claiming a class the smoothed classifier does not predict
    under attack is reported with its input, parameter and certificate."""
    from semsmooth_core import smoothing
    from semsmooth_core.runs import pipeline

    real = smoothing.certify_transform

    def lying(*a, **k):
        cert = real(*a, **k)
        cert.label = (cert.label + 1) % 10       # claims the wrong class, with the same radius
        return cert

    monkeypatch.setattr(smoothing, "certify_transform", lying)
    res = soundness_check({"model": "mnist_cnn_rot_noise025", "smoothing": "transform", "transform": "rotation",
                           "sigma_gamma": 30, "attacker_range": 30, "n0": 20, "n_gamma": 100,
                           "alpha_gamma": 0.01, "attack_budget": 4 * 16 + 2 * 100, "attack_n_probe": 16},
                          [0, 300])
    assert pipeline is not None
    assert res["broken"] == res["certified"] == 2 and not res["ok"]
    b = res["breaks"][0]
    assert {"index", "param", "prediction", "certified_class", "radius", "radius_unit", "p_lower"} <= set(b)


# --------------------------------------------------------------------------- pages (AppTest)
def _page(page: str):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from pathlib import Path

    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=120)
    at.run()
    at.switch_page(f"pages/{page}")
    at.run()
    assert not at.exception, at.exception
    return at


def test_certify_page_attack_panel(tmp_path, monkeypatch):
    """Certify page, transform smoothing: the panel's search finds a worst angle inside C, shows the
    original and the attacked digits and the base and smoothed (PREDICT) predictions there."""
    monkeypatch.setenv("SEMSMOOTH_DB", str(tmp_path / "runs.sqlite"))
    at = _page("5_Certify.py")
    at.radio(key="cf_kind").set_value("transform").run()
    at.number_input(key="cf_attack_budget").set_value(60)
    at.number_input(key="cf_attack_npred").set_value(20)
    at.number_input(key="cf_attack_alpha").set_value(0.05)
    at.run()
    at.button(key="cf_attack_go").click().run()
    assert not at.exception and not [e.value for e in at.error], [e.value for e in at.error]
    got = at.session_state["cf_attack_result"]
    assert set(got["res"]) == {"base", "smoothed"}
    for a in got["res"].values():
        assert -30 <= a["worst_param"][0] <= 30 and "base_at_worst" in a and "smoothed_at_worst" in a
    text = " ".join(m.value for m in at.markdown)
    assert "base predicts" in text and "smoothed (PREDICT)" in text
    assert any("worst for the base classifier" in str(i.proto) for i in at.get("image"))


def test_transform_explorer_finds_the_worst_angle():
    at = _page("3_Transform_explorer.py")
    if "mnist_cnn_noise025" in at.selectbox(key="te_attack_model").options:
        at.selectbox(key="te_attack_model").select("mnist_cnn_noise025")
    at.number_input(key="te_attack_budget").set_value(40).run()
    at.button(key="te_attack_go").click().run()
    assert not at.exception and not [e.value for e in at.error]
    a = at.session_state["te_attack_result"]["res"]["base"]
    assert len(a["worst_param"]) == 1 and a["n_forward"] + a["n_backward"] <= 40


def test_results_page_shows_attack_curves_or_says_how_to_make_them(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMSMOOTH_DB", str(tmp_path / "runs.sqlite"))
    at = _page("6_Results.py")
    assert any(s.value == "Empirical robustness beside certificates" for s in at.subheader)
    from pages._attack_panel import RESULTS

    if RESULTS.exists():            # the benchmark's curves: one setting picked, one chart of three curves
        pick = at.selectbox(key="res_attack_pick")
        pick.set_value(len(pick.options) - 1).run()
        assert not at.exception
        fig = [c for c in at.get("plotly_chart") if "empirical robust accuracy, base" in str(c.proto)]
        assert fig and "certified accuracy" in str(fig[0].proto)


@pytest.mark.parametrize("page,key", [("8_GSmooth.py", "gs_attack"), ("7_Audio_volume.py", "av_attack")])
def test_gsmooth_and_audio_pages_attack_panel(page, key):
    at = _page(page)
    at.number_input(key=f"{key}_budget").set_value(20)
    at.number_input(key=f"{key}_npred").set_value(10)
    at.number_input(key=f"{key}_alpha").set_value(0.1)
    at.run()
    at.button(key=f"{key}_go").click().run()
    assert not at.exception and not [e.value for e in at.error], [e.value for e in at.error]
    got = at.session_state[f"{key}_result"]
    lo, hi = got["range"][0]
    for a in got["res"].values():
        assert lo <= a["worst_param"][0] <= hi and "smoothed_at_worst" in a


def test_predict_that_can_never_decide_is_refused():
    t = transforms.get("rotation")
    with pytest.raises(SemsmoothError, match="always abstains"):
        SmoothedTarget(Linear(784), None, "double", transform=t, sigma_gamma=[10.0], sigma_eps=0.25,
                       n_predict=50, n_eps=10, alpha=0.001)
    with pytest.raises(SemsmoothError, match="n_predict >= 11"):
        SmoothedTarget(Linear(784), None, "noise", sigma_eps=0.25, n_predict=10, alpha=0.001)


def test_attack_inside_an_l2_noise_certificate_stays_inside_its_ball():
    """Noise smoothing certifies an l2 ball: the attack searches only rotations whose rounded image
    lies inside it (‖ψ_γ(x) − x‖₂ < R), and finds such rotations other than γ = 0."""
    from semsmooth_core.data.datasets import load_dataset

    res = soundness_check({"model": "mnist_cnn_noise025", "smoothing": "noise", "transform": "rotation",
                           "attacker_range": 30, "sigma_eps": 0.25, "n0": 20, "n_eps": 200, "alpha_gamma": 0.01,
                           "attack_budget": 8 * 16 + 2 * 200, "attack_n_probe": 16}, [0, 500])
    assert res["certified"] == 2 and res["broken"] == 0
    x, _ = load_dataset("mnist", indices=[0, 500])
    t = transforms.get("rotation")
    moved = 0
    for xi, r in zip(x, res["rows"]):
        g = r["attack_param"]
        d = float((t(xi.unsqueeze(0), torch.tensor([g]))[0] - xi).norm())
        assert d < r["radius"]
        moved += abs(g[0]) > 0
    assert moved >= 1
