"""Issue 15 (part A): the Certify page and the guarantee card, classroom-ready.

AppTest: switching the transformation brings its own σ_γ and C; a stale E (any E-relevant setting
changed) switches Certify off until E is re-estimated or kept; presets reproduce their README
rows' settings (the Cohen one is run); a dead end and a long run explain themselves and offer
their fix. Unit tests: the guarantee card's fields for every kind of certificate, the planner's
sample count for an abstaining vote share, against independent computations."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import streamlit as st
from scipy import stats as sst
from streamlit.testing.v1 import AppTest

from semsmooth_core import explain, planner, presets
from semsmooth_core.smoothing import Certificate

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")
CERTIFY = "pages/5_Certify.py"
SHIPPED = REPO / "assets" / "models" / "mnist_cnn_noise025.pt"
needs_model = pytest.mark.skipif(not SHIPPED.exists(), reason="shipped models not in assets/models")


@pytest.fixture(autouse=True)
def _fresh(monkeypatch, tmp_path):
    monkeypatch.setenv("SEMSMOOTH_DB", str(tmp_path / "runs.sqlite"))
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


def _certify(scope: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(CERTIFY)
    at.run()
    assert not at.exception, at.exception
    if scope is not None:  # "dataset": one E for all inputs, with the E widgets and the stale-E guard
        at.radio(key="cf_Escope").set_value(scope).run()
        assert not at.exception, at.exception
    return at


def _warnings(at) -> list[str]:
    return [w.value for w in at.warning]


# --------------------------------------------------------------------------- stale E guard
@needs_model
def test_switching_transform_brings_its_defaults_and_makes_E_stale():
    at = _certify("dataset")
    assert at.selectbox(key="cf_tf").value == "rotation"
    assert at.number_input(key="cf_sg").value == 30 and at.number_input(key="cf_C").value == 30
    assert not at.button(key="cf_run").disabled
    at.selectbox(key="cf_tf").select("translation").run()
    assert not at.exception
    d = presets.transform_defaults("translation")
    assert at.number_input(key="cf_sg").value == d["sigma_gamma"] == 4.0  # pixels now, not 30
    assert at.number_input(key="cf_C").value == d["C"] == 4.0
    assert any("belongs to other settings" in w and "transformation rotation → translation" in w
               for w in _warnings(at))
    assert at.button(key="cf_run").disabled and at.button(key="cf_queue").disabled
    at.button(key="cf_keepE").click().run()  # the user vouches for E here
    assert not any("belongs to other settings" in w for w in _warnings(at))
    assert not at.button(key="cf_run").disabled
    # every E-relevant setting: σ_γ, C, interpolation, preprocessing
    for widget, value in (("cf_sg", 3.0), ("cf_C", 2.0)):
        at.number_input(key=widget).set_value(value).run()
        assert at.button(key="cf_run").disabled, widget
        at.button(key="cf_keepE").click().run()
    at.selectbox(key="cf_interp").select("bicubic").run()
    assert at.button(key="cf_run").disabled
    at.button(key="cf_keepE").click().run()
    at.text_input(key="cf_pp").input("gauss:5:1").run()
    assert at.button(key="cf_run").disabled
    # a typed E is the user's statement for the current settings
    at.number_input(key="cf_E").set_value(0.25).run()
    assert not at.button(key="cf_run").disabled
    # σ_ε does not change E: no stale warning
    at.number_input(key="cf_se").set_value(0.3).run()
    assert not at.button(key="cf_run").disabled


@needs_model
def test_stale_estimate_is_re_estimated_in_one_click():
    at = _certify("dataset")
    if "mnist_cnn_rot_vg_noise030" in at.sidebar.selectbox(key="model_name").options:  # E within reach
        at.sidebar.selectbox(key="model_name").select("mnist_cnn_rot_vg_noise030").run()
    at.button(key="cf_est").click().run()
    est = at.session_state["cf_E_est"]
    at.button(key="cf_use_E").click().run()
    assert at.number_input(key="cf_E").value == pytest.approx(est["E"], abs=1e-4)
    assert not at.button(key="cf_run").disabled
    at.selectbox(key="cf_interp").select("bicubic").run()
    assert at.button(key="cf_run").disabled and at.button(key="cf_use_E").disabled  # old estimate, other settings
    at.button(key="cf_reest").click().run()
    assert not at.exception
    new = at.session_state["cf_E_est"]
    assert new["E"] < est["E"]  # bicubic interpolates better than bilinear (README Table 1)
    assert at.number_input(key="cf_E").value == pytest.approx(new["E"], abs=1e-4)
    assert at.number_input(key="cf_q").value == pytest.approx(new["q_E_lower"], abs=1e-4)
    assert not at.button(key="cf_run").disabled
    assert any("estimated here" in c.value for c in at.caption)


@needs_model
def test_result_of_other_settings_is_not_shown():
    at = _certify()
    at.radio(key="cf_kind").set_value("noise").run()
    at.number_input(key="cf_ne").set_value(100).run()
    at.number_input(key="cf_n0").set_value(10).run()
    at.button(key="cf_run").click().run()
    assert not at.exception and at.session_state["cf_result"]
    assert any("**Covered**" in m.value for m in at.markdown)
    at.number_input(key="cf_se").set_value(0.5).run()
    assert not any("**Covered**" in m.value for m in at.markdown)
    assert any("other settings" in i.value and "σ_ε" in i.value for i in at.info)


# --------------------------------------------------------------------------- presets
def _squash(s: str) -> str:
    return re.sub(r"\s+", " ", s)


def test_every_preset_names_a_readme_row_and_its_E_file():
    readme = _squash((REPO / "README.md").read_text())
    for p in presets.PRESETS:
        for text in p.readme:
            assert _squash(text) in readme, (p.key, text)
        c = p.config()
        if p.E_file:
            E_in_row = float(re.search(r"(\d\.\d+) \|", p.readme[0]).group(1))
            assert c["E"] == pytest.approx(E_in_row, abs=6e-4), p.key  # the row prints E to 3 digits
            assert 0.9 < c["q_E_lower"] <= 1
    # the table script's settings (σ_γ, C) are the per-transform defaults of the page
    from benchmarks import certify_tables as ct

    for name, cfg in ct.CONFIGS.items():
        d = presets.transform_defaults(name)
        assert (d["sigma_gamma"], d["C"]) == (cfg["sigma_gamma"], cfg["C"])


@needs_model
@pytest.mark.parametrize("key", [p.key for p in presets.for_page("certify")])
def test_certify_preset_sets_its_row(key):
    p = presets.get(key)
    want = p.config()
    at = _certify()
    at.button(key=f"cf_preset_{key}").click().run()
    assert not at.exception, at.exception
    errs = [e.value for e in at.error]
    assert not errs, errs
    cfg = at.session_state["cf_config"]
    assert at.session_state["model_name"] == want["model"]
    for k in ("smoothing", "sigma_eps", "n0", "alpha_gamma"):
        assert cfg[k] == pytest.approx(want[k]), k
    if want["smoothing"] == "noise":
        assert cfg["n_eps"] == want["n_eps"]
        at.button(key="cf_run").click().run()  # the Cohen row is cheap enough to run
        assert not at.exception
        cert = at.session_state["cf_result"][0]
        assert (cert.extra["sigma"], cert.extra["n0"], cert.extra["n"], cert.alpha) == (0.25, 100, 1000, 0.001)
        return
    for k in ("transform", "interpolation", "preprocess", "n_gamma", "n_eps", "alpha_eps", "alpha_E", "sequential"):
        assert cfg[k] == want[k], k
    sg = want["sigma_gamma"]
    assert cfg["sigma_gamma"] == (sg if isinstance(sg, list) else pytest.approx(sg))
    assert cfg["attacker_range"] == want["attacker_range"]
    assert cfg["E"] == pytest.approx(want["E"], abs=1e-4) and cfg["q_E_lower"] == pytest.approx(want["q_E_lower"], abs=1e-4)
    assert not at.button(key="cf_run").disabled  # E is fresh: it came with the preset's settings
    assert any("preset" in c.value and p.E_file in c.value for c in at.caption)


# --------------------------------------------------------------------------- failures and their fix
@needs_model
def test_dead_end_says_why_and_applies_the_needed_n_eps():
    at = _certify("dataset")
    at.number_input(key="cf_se").set_value(0.3).run()
    at.number_input(key="cf_E").set_value(0.6).run()
    errs = [e.value for e in at.error]
    assert len(errs) == 1 and errs[0].startswith("Dead end") and "Phi" not in errs[0], errs
    assert at.button(key="cf_run").disabled
    # independent: n correct samples give α^(1/n); need α^(1/n) > Φ(E/σ_ε)
    need = math.floor(math.log(0.001) / math.log(sst.norm.cdf(0.6 / 0.3))) + 1
    assert f"n_ε ≥ {need:,}" in errs[0]
    at.button(key="cf_pre_fix_dead_end_0").click().run()
    assert at.number_input(key="cf_ne").value == need
    long = [c for c in at.checkbox if c.key == "cf_long_ok"]  # on a busy machine the time guard may ask too
    if long:
        long[0].check().run()
    assert not [e.value for e in at.error] and not at.button(key="cf_run").disabled


@needs_model
def test_long_run_asks_first():
    at = _certify()
    at.radio(key="cf_kind").set_value("noise").run()
    at.number_input(key="cf_ne").set_value(100_000_000).run()
    assert not at.exception
    assert any("100,000,050 forward passes" in c.value for c in at.caption)
    assert at.button(key="cf_run").disabled
    box = at.checkbox(key="cf_long_ok")
    assert "Yes, start a run of about" in box.label
    box.check().run()
    assert not at.button(key="cf_run").disabled


def test_min_n_for_share_is_about_the_smallest_n():
    from semsmooth_core import stats

    for share, alpha, rho in ((0.6, 0.001, 0.0), (0.8, 0.01, 0.05), (0.97, 0.001, 0.05)):
        n = planner.min_n_for_share(share, alpha, rho)
        assert stats.cp_lower(math.floor(share * n), n, alpha) - rho > 0.5
        # ⌊share·m⌋ makes the condition jitter by one vote near n; well below n it never holds
        assert not any(stats.cp_lower(math.floor(share * m), m, alpha) - rho > 0.5 for m in range(1, int(0.9 * n)))
    assert planner.min_n_for_share(0.52, 0.001, 0.05) is None


# --------------------------------------------------------------------------- guarantee cards
def _cert(**kw) -> Certificate:
    base = dict(label=3, radius=1.0, p_lower=0.9, alpha=0.001, n_forward=100, seconds=1.0)
    return Certificate(**(base | kw))


def test_card_fields_for_every_kind():
    # the fields as the core sets them (smoothing.certify_noise / certify_transform: worst-case ball)
    noise = explain.guarantee_fields(_cert(extra={"sigma": 0.25, "n0": 10, "n": 100}, radius=0.2,
                                           attacker="worst-case"))
    top = 0.25 * sst.norm.ppf(0.001 ** (1 / 100))
    assert noise["kind"] == "noise" and noise["ceiling"] == pytest.approx(top)
    assert noise["attacker"] == "worst-case" and noise["E_scope"] is None and noise["sound"]
    assert not noise["at_ceiling"]
    at_top = explain.guarantee_fields(_cert(extra={"sigma": 0.25, "n0": 10, "n": 100}, radius=top,
                                            attacker="worst-case"))
    assert at_top["at_ceiling"] and any("most these n samples" in s for s in at_top["not_covered"])

    par = explain.guarantee_fields(_cert(radius_unit="degrees", extra={"smoothing": "transform", "sigma": 10.0,
                                                                        "n": 100, "transform": "rotation"}))
    assert par["kind"] == "parameter" and any("interpolation" in s for s in par["not_covered"])
    par_real = explain.guarantee_fields(_cert(radius_unit="degrees", sound=False, attacker="worst-case",
                                              extra={"smoothing": "transform", "sigma": 10.0, "n": 100}))
    assert not par_real["sound"] and "interpolation" in par_real["sound_words"]

    dbl_extra = {"smoothing": "double", "transform": "rotation", "interpolation": "bilinear", "sigma_gamma": 30.0,
                 "n_gamma": 100, "alpha_gamma": 0.001, "E": 0.375, "q_E_lower": 0.95, "clipped": True,
                 "attacker_range": [[-30.0, 30.0]], "attacker": "random: γ ~ U(C) (E, q_E ...)"}
    dbl = explain.guarantee_fields(_cert(radius=30.0, rho=0.052, radius_unit="degrees", alpha=0.003, extra=dbl_extra))
    assert dbl["attacker"] == "random" and dbl["E_scope"] == "dataset" and dbl["clipped"] and not dbl["at_ceiling"]
    assert "drawn at random" in dbl["attacker_words"] and "any parameter" not in " ".join(dbl["covered"])
    assert any("not measured on this input" in dbl["E_words"] for _ in [0])
    # the other helper's fields win over the fallbacks
    c = _cert(radius=30.0, rho=0.052, radius_unit="degrees", extra=dbl_extra)
    c.attacker, c.E_scope, c.sound = "worst-case", "input", True
    g = explain.guarantee_fields(c)
    assert g["attacker"] == "worst-case" and g["E_scope"] == "input" and "on this input" in g["E_words"]

    audio = explain.guarantee_fields(_cert(radius_unit="dB", rho=0.03, extra={**dbl_extra, "transform": "volume",
                                                                               "clipped": False, "sigma_gamma": 3.0}))
    assert audio["kind"] == "audio" and any("16-bit" in s for s in audio["covered"])

    gs = explain.guarantee_fields(_cert(radius=0.02, radius_unit="factor", extra={
        "method": "gsmooth", "transform": "zoom_blur", "n": 500, "xi_max": 0.3, "M": 20.0,
        "radius_surrogate": 0.03}))
    assert gs["kind"] == "gsmooth" and not gs["sound"] and "estimate, not a proof" in gs["sound_words"]
    assert gs["ceiling"] == pytest.approx(sst.norm.ppf(0.001 ** (1 / 500)) / 20.0)
    gs_sound = _cert(radius=0.02, radius_unit="factor", extra={"method": "gsmooth", "n": 500, "xi_max": 0.3,
                                                                "M": 20.0, "sound": True})
    assert explain.guarantee_fields(gs_sound)["sound"]

    ab = explain.guarantee_fields(_cert(label=-1, radius=0.0, extra={"sigma": 0.25, "n": 100}))
    assert ab["status"] == "abstained" and ab["covered"] == []


def test_picture_2d_box_inside_the_ball_and_strip_marks():
    c = _cert(radius=3.0, radius_unit="pixels", extra={"smoothing": "double", "sigma_gamma": 4.0, "n_gamma": 100,
                                                       "alpha_gamma": 0.001, "attacker_range": [[-4, 4], [-4, 4]],
                                                       "betas": [[0.5, 0.5], [5, 5]],
                                                       "inner_verdict": ["certified", "not certified"]})
    p = explain.picture(c)
    assert p["dim"] == 2 and p["box"] == pytest.approx(3.0 / math.sqrt(2))
    for params, ok in p["strip"]:
        assert ok == (math.hypot(*params) < 3.0)
    assert [ok for _, ok in p["strip"]].count(True) >= 1 and not p["strip"][0][1]
    g = explain.picture(_cert(radius=0.08, radius_unit="factor", extra={"method": "gsmooth", "xi_max": 0.3}))
    assert g["one_sided"] and g["C"] == [[0.0, 0.3]]
    assert [ok for _, ok in g["strip"]] == [0 <= q[0] < 0.08 for q, _ in g["strip"]]
    assert [q[0] for q, _ in g["strip"]][2:4] == pytest.approx([0.076, 0.084])  # the radius's edge is shown


# --------------------------------------------------------------------------- Audio volume and GSmooth
AUDIO = "pages/7_Audio_volume.py"
GSMOOTH = "pages/8_GSmooth.py"


def _page(path) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240)
    at.run()
    at.switch_page(path)
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.mark.slow
@pytest.mark.skipif(not (REPO / "assets" / "models" / "speech_cnn.pt").exists(), reason="no speech model")
def test_audio_preset_and_guarantee_card():
    at = _page(AUDIO)
    at.button(key="av_preset_audio_3db").click().run()
    assert not at.exception, at.exception
    want = presets.get("audio_3db").config()
    got = {k: at.number_input(key=w).value for k, w in (("sigma_gamma", "av_sigma_g"), ("attacker_range", "av_C"),
                                                        ("q", "av_q"), ("E_samples", "av_nerr"), ("n0", "av_n0"),
                                                        ("n_gamma", "av_ngamma"), ("n_eps", "av_neps"),
                                                        ("alpha_gamma", "av_alpha"), ("sigma_eps", "av_sigma_eps"))}
    assert got == pytest.approx({k: want[k] for k in got})
    at.number_input(key="av_ngamma").set_value(20)  # a cheaper run of the same kind (not the README's n)
    at.number_input(key="av_neps").set_value(4)  # a dead end first: it says so and offers n_ε
    at.run()
    assert at.button(key="av_certify").disabled
    assert any(e.value.startswith("Dead end") for e in at.error)
    at.button(key="av_pre_fix_dead_end_0").click().run()
    assert at.number_input(key="av_neps").value > 4 and not at.button(key="av_certify").disabled
    at.button(key="av_certify").click().run()
    assert not at.exception and not [e.value for e in at.error]
    cert = at.session_state["av_cert"][0]
    assert cert.radius_unit == "dB"
    assert any("**Covered**" in m.value for m in at.markdown) and any("16-bit" in m.value for m in at.markdown)
    assert any(c.value.startswith(("Certified:", "Not covered:")) and "dB" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) >= 3  # waveform, MFCC, E histogram and the attacker picture


@pytest.mark.slow
@pytest.mark.skipif(not (REPO / "assets" / "models" / "surrogate_zoom_blur.pt").exists(), reason="no surrogate")
def test_gsmooth_preset_and_guarantee_card():
    at = _page(GSMOOTH)
    at.button(key="gs_preset_gsmooth_zoom_blur").click().run()
    assert not at.exception, at.exception
    want = presets.get("gsmooth_zoom_blur").config()
    assert at.selectbox(key="gs_transform").value == "zoom_blur"
    got = {k: at.number_input(key=w).value for k, w in (("sigma_gamma", "gs_sigma1"), ("sigma2", "gs_sigma2"),
                                                        ("n0", "gs_n0"), ("n_gamma", "gs_n"), ("alpha_gamma", "gs_alpha"))}
    assert got == pytest.approx({k: want[k] for k in got})
    at.button(key="gs_certify").click().run()
    assert not at.exception and not [e.value for e in at.error]
    cert = at.session_state["gs_cert"][2]
    assert any("**Covered**" in m.value or "**Not covered**" in m.value for m in at.markdown)
    assert any("estimate, not a proof" in m.value or "a proof:" in m.value for m in at.markdown)
    if not cert.abstained:
        caps = [str(i.proto) for i in at.get("image")]
        assert any("Certified" in c for c in caps) and any("Not covered" in c for c in caps)


def test_result_failures_say_why_and_which_setting_helps():
    from semsmooth_core import stats

    # abstention with a clear but thin majority: the same share would clear 1/2 with more samples
    ab = _cert(label=-1, radius=0.0, p_lower=stats.cp_lower(60, 100, 0.001), counts=[60, 40] + [0] * 8,
               extra={"sigma": 0.25, "n0": 10, "n": 100})
    (f,) = explain.diagnose_result(ab, true_label=3)
    need = planner.min_n_for_share(0.6, 0.001)
    assert f.kind == "abstain" and "60.0 %" in f.sentence and f.fix == {"n_eps": need} and need > 100
    assert stats.cp_lower(int(0.6 * need), need, 0.001) > 0.5
    # a split vote: no setting is offered
    split = _cert(label=-1, radius=0.0, counts=[30, 30, 40], extra={"sigma": 0.25, "n": 100})
    (f,) = explain.diagnose_result(split)
    assert f.kind == "abstain" and f.fix is None and "split" in f.sentence
    # a certified but wrong class, at the n-ceiling, with σ far from the model's training noise
    top = stats.max_radius(0.5, 100, 0.001)
    wrong = _cert(label=5, radius=top, extra={"sigma": 0.5, "sigma_eps": 0.5, "n": 100})
    kinds = {f.kind: f for f in explain.diagnose_result(wrong, true_label=3, model_sigma=0.25)}
    assert set(kinds) == {"wrong_class", "n_ceiling", "sigma_mismatch"}
    assert kinds["sigma_mismatch"].fix == {"sigma_eps": 0.25}
    assert kinds["n_ceiling"].fix == {"n_eps": 1000}
    # double smoothing at the ceiling: the n_γ that reaches the whole attacker range C
    dbl = {"smoothing": "double", "sigma_gamma": 15.0, "n_gamma": 100, "alpha_gamma": 0.001, "clipped": False,
           "attacker_range": [[-30.0, 30.0]]}
    r = stats.max_radius(15.0, 100, 0.001, rho=0.001)
    assert r < 30
    (f,) = explain.diagnose_result(_cert(radius=r, rho=0.001, radius_unit="degrees", extra=dbl), true_label=3)
    n = f.fix["n_gamma"]
    assert stats.max_radius(15.0, n, 0.001, rho=0.001) > 30.0 >= stats.max_radius(15.0, n - 1, 0.001, rho=0.001)


def test_min_samples_for_radius_counts_rho_once():
    """α^(1/n) − ρ > Φ(R/σ): the smallest such n, computed here by a plain scan (ρ was subtracted twice)."""
    from semsmooth_core import stats

    for R, sigma, alpha, rho in ((30.0, 15.0, 0.001, 0.001), (0.0, 1.0, 0.001, 0.052), (0.5, 0.3, 0.01, 0.02)):
        n = 1
        while not (alpha ** (1 / n) - rho > sst.norm.cdf(R / sigma) if R > 0 else alpha ** (1 / n) - rho > 0.5):
            n += 1
        assert stats.min_samples_for_radius(R, sigma, alpha, rho=rho) == n


# --------------------------------------------------------------------------- whose E, which attacker
VG = "mnist_cnn_rot_vg_noise030"
needs_vg = pytest.mark.skipif(not (REPO / "assets" / "models" / f"{VG}.pt").exists(), reason=f"{VG} not shipped")
TINY = {"cf_n0": 10, "cf_ng": 20, "cf_ne": 40, "cf_ag": 0.1, "cf_ae": 0.1, "cf_aE": 0.1}


def _tiny(at, **extra):
    for k, v in (TINY | extra).items():
        at.number_input(key=k).set_value(v).run()
    assert not at.exception, at.exception


@needs_vg
def test_default_is_per_input_E_and_the_card_says_this_input():
    """Default: E for this input, random attacker; the E widgets and the stale-E guard are off; a tiny
    certification goes through the CLI's path and its card names this input's E and q̲_E."""
    at = _certify()
    at.sidebar.selectbox(key="model_name").select(VG).run()
    assert at.radio(key="cf_Escope").value == "input" and at.radio(key="cf_att").value == "random"
    assert at.number_input(key="cf_E").disabled and at.number_input(key="cf_q").disabled
    assert at.button(key="cf_est").disabled
    _tiny(at)
    cfg = at.session_state["cf_config"]
    assert cfg["E_scope"] == "input" and cfg["E"] is None and cfg["q_E_lower"] is None
    # the caption's sample count and cap are the planner's for the resolved config (as the CLI's)
    from semsmooth_core.runs import config as run_config, pipeline

    c = run_config.resolve_form(cfg, None, need_model=False)[0].to_dict()
    plan = pipeline.input_E_plan(c)
    cap = [x.value for x in at.caption if "estimated for this input at certify time" in x.value]
    assert len(cap) == 1 and f"{plan.n_E:,} samples" in cap[0] and f"{plan.E_cap:.4g}" in cap[0]
    at.number_input(key="cf_sg").set_value(35.0).run()  # an E-relevant change: no stale guard in input mode
    assert not any("belongs to other settings" in w for w in _warnings(at))
    assert not at.button(key="cf_run").disabled
    at.button(key="cf_run").click().run()
    assert not at.exception and not [e.value for e in at.error]
    cert = at.session_state["cf_result"][0]
    assert cert.E_scope == "input" and cert.attacker == "random" and cert.sound
    est = cert.extra["E_input"]
    assert cert.E == est["E"] and cert.q_E_lower == est["q_E_lower"] and est["n"] >= plan.n_E
    card = [m.value for m in at.markdown if "**E:**" in m.value]
    assert len(card) == 1 and "this input" in card[0] and f"E = {cert.E:.4g}" in card[0]
    assert f"q̲_E = {cert.q_E_lower:.4f}" in card[0] and "average" not in card[0]


@needs_vg
def test_dataset_mode_with_a_given_E_still_certifies():
    at = _certify("dataset")
    at.sidebar.selectbox(key="model_name").select(VG).run()
    assert not at.number_input(key="cf_E").disabled
    _tiny(at, cf_E=0.31, cf_q=0.96)  # typed in: the user's E for these settings
    assert at.session_state["cf_config"]["E_scope"] == "dataset"
    at.button(key="cf_run").click().run()
    assert not at.exception and not [e.value for e in at.error]
    cert = at.session_state["cf_result"][0]
    assert cert.E_scope == "dataset" and (cert.E, cert.q_E_lower) == (pytest.approx(0.31), pytest.approx(0.96))
    assert "E_input" not in cert.extra
    card = [m.value for m in at.markdown if "**E:**" in m.value]
    assert len(card) == 1 and "not measured on this input" in card[0]


@needs_model
def test_worst_case_with_a_dataset_E_is_refused_in_one_line():
    at = _certify()
    at.radio(key="cf_att").set_value("worst-case").run()
    assert not at.exception and not [e.value for e in at.error]  # per-input E: allowed
    at.radio(key="cf_Escope").set_value("dataset").run()
    errs = [e.value for e in at.error]
    assert len(errs) == 1 and "worst-case attacker" in errs[0] and "\n" not in errs[0], errs
    assert at.button(key="cf_run").disabled and at.button(key="cf_queue").disabled
    at.radio(key="cf_Escope").set_value("input").run()
    assert not [e.value for e in at.error] and not at.button(key="cf_run").disabled


@needs_model
def test_presets_switch_to_a_dataset_E():
    p = next(p for p in presets.for_page("certify") if p.E_file)
    at = _certify()
    at.radio(key="cf_att").set_value("worst-case").run()
    at.button(key=f"cf_preset_{p.key}").click().run()
    assert not at.exception and not [e.value for e in at.error]
    assert at.radio(key="cf_Escope").value == "dataset" and at.radio(key="cf_att").value == "random"
    assert not at.number_input(key="cf_E").disabled
    assert at.session_state["cf_config"]["E_scope"] == "dataset"
