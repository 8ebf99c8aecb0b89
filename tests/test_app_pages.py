"""AppTest tests of the Streamlit app: the home page, EVERY page in pages/ (pages added later are
picked up automatically) with default widgets, and Smoothing basics in detail (certify, bad input,
bring-your-own model upload, no model at all)."""

from __future__ import annotations

import io
import math
import re
import shutil
from pathlib import Path

import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

from semsmooth_core.models import build, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")
PAGES = sorted(p.name for p in (REPO / "pages").glob("*.py") if not p.name.startswith("_"))
BASICS = "pages/1_Smoothing_basics.py"
SHIPPED = REPO / "assets" / "models" / "mnist_cnn_noise025.pt"
TIMEOUT = 120


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Each test starts with empty Streamlit caches (models, datasets, figures)."""
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


def _tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build("small_cnn", width=4).eval()


@pytest.fixture
def tiny_assets(tmp_path, monkeypatch) -> Path:
    """An assets folder with the embedded MNIST and one tiny (untrained) checkpoint only."""
    assets = tmp_path / "assets"
    (assets / "models").mkdir(parents=True)
    shutil.copy(REPO / "assets" / "mnist_embedded.npz", assets / "mnist_embedded.npz")
    save_checkpoint(assets / "models" / "tiny_test.pt", _tiny_model(), "small_cnn", {"width": 4},
                    {"summary": "untrained test model", "heldout_accuracy": 0.1})
    monkeypatch.setenv("SEMSMOOTH_ASSETS", str(assets))
    return assets


def _app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


def _open(page: str) -> AppTest:
    at = _app()
    at.switch_page(f"pages/{page}" if "/" not in page else page)
    at.run()
    return at


def _errors(at) -> list[str]:
    return [e.value for e in at.error]


def _metric(at, prefix: str) -> str:
    found = [m.value for m in at.metric if m.label.startswith(prefix)]
    assert found, f"no metric {prefix!r}; metrics: {[m.label for m in at.metric]}"
    return found[0]


# --------------------------------------------------------------------------- all pages
def test_home_page():
    at = _app()
    assert any("semsmooth" in t.value for t in at.title)
    assert len(at.sidebar.selectbox) >= 2  # dataset and model pickers on every page
    assert at.session_state["dataset"] == "mnist"
    # every other page is linked from the home page
    links = {pl.proto.page for pl in at.get("page_link")}  # url paths of the linked pages
    for name in PAGES[1:]:
        url = re.sub(r"[^a-z0-9]+", "_", re.sub(r"^\d+[_\- ]*", "", name[:-3]).lower()).strip("_")
        assert url in links, (name, links)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_with_defaults(page):
    at = _open(page)
    assert not at.exception, f"{page}: {at.exception}"
    assert at.sidebar.number_input(key="seed").value == 0


# --------------------------------------------------------------------------- Smoothing basics
def test_basics_certify_then_bad_inputs(tiny_assets):
    """One session: the sidebar state survives a page switch; certify shows a radius; every bad
    input shows exactly one one-line st.error and the page recovers."""
    at = _app()
    at.number_input(key="seed").set_value(7).run()
    at.switch_page(BASICS)
    at.run()
    assert not at.exception and not _errors(at)
    assert at.session_state["seed"] == 7 and at.session_state["model_name"] == "tiny_test"

    at.number_input(key="sb_index").set_value(3)
    at.number_input(key="sb_sigma").set_value(0.3)
    at.number_input(key="sb_n0").set_value(20)
    at.number_input(key="sb_n").set_value(120)
    at.number_input(key="sb_alpha").set_value(0.01)
    at.run()
    at.button(key="sb_certify").click().run()
    assert not at.exception and not _errors(at)
    radius = float(_metric(at, "Certified radius"))
    assert radius >= 0 and math.isfinite(radius)
    assert _metric(at, "Forward passes") == "140"
    assert [m.label for m in at.metric if m.label.startswith("Certified")] == [
        "Certified radius (l2, pixel scale [0,1])"]
    cert = at.session_state["sb_result"][1]
    assert cert.n_forward == 140 and cert.alpha == 0.01 and cert.extra["sigma"] == 0.3
    at.slider(key="sb_frac").set_value(0.9).run()  # the result survives other widgets' reruns
    assert not at.exception and _metric(at, "Forward passes") == "140"

    bad = [("sb_sigma", -0.5, "σ must be > 0", 0.3),
           ("sb_sigma", 0.0, "σ must be > 0", 0.3),
           ("sb_n0", 5000, "must not exceed n", 20),
           ("sb_alpha", 0.0, "α must lie strictly between 0 and 1", 0.01),
           ("sb_alpha", 1.5, "α must lie strictly between 0 and 1", 0.01)]
    for key, value, needle, good in bad:
        at.number_input(key=key).set_value(value).run()
        assert not at.exception, (key, value)
        errs = _errors(at)
        assert len(errs) == 1 and needle in errs[0] and "\n" not in errs[0], (key, value, errs)
        assert at.sidebar.selectbox(key="model_name").value == "tiny_test"  # page still up
        at.number_input(key=key).set_value(good).run()
        assert not at.exception and not _errors(at), (key, good, _errors(at))

    # NaN cannot be typed in a browser; if a client sends it, Streamlit keeps a finite value or
    # the page shows one error line -- never an exception
    at.number_input(key="sb_sigma").set_value(float("nan")).run()
    assert not at.exception
    sigma = at.number_input(key="sb_sigma").value
    assert (sigma is not None and math.isfinite(sigma)) or len(_errors(at)) == 1


@pytest.mark.skipif(not SHIPPED.exists(), reason="shipped model mnist_cnn_noise025 not in assets/models yet")
def test_basics_certify_with_shipped_model():
    at = _open(BASICS)
    assert at.session_state["model_name"] == "mnist_cnn_noise025"
    at.button(key="sb_certify").click().run()
    assert not at.exception and not _errors(at)
    cert = at.session_state["sb_result"][1]
    from semsmooth_core.data.embedded import embedded_mnist

    _, y = embedded_mnist("heldout")
    assert cert.label == int(y[0])  # a noise-trained model certifies this clean digit
    assert float(_metric(at, "Certified radius")) > 0.1
    assert any("What is guaranteed" in m.value for m in at.markdown)


def test_basics_without_any_model(tmp_path, monkeypatch):
    assets = tmp_path / "assets"
    (assets / "models").mkdir(parents=True)
    shutil.copy(REPO / "assets" / "mnist_embedded.npz", assets / "mnist_embedded.npz")
    monkeypatch.setenv("SEMSMOOTH_ASSETS", str(assets))
    at = _open(BASICS)
    assert not at.exception and not _errors(at)
    assert at.session_state["model_name"] == "Bring your own model…"
    assert any("Upload a model" in i.value for i in at.info)
    assert any("No shipped" in c.value for c in at.sidebar.caption)
    assert at.button(key="sb_certify").disabled


# --------------------------------------------------------------------------- bring your own model
def _state_dict_bytes(model) -> bytes:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


def test_bring_your_own_model(tiny_assets):
    """Upload: garbage and a state_dict for another architecture give one error line each; a
    semsmooth checkpoint and an architecture + state_dict load and certify."""
    at = _open(BASICS)
    at.selectbox(key="model_name").select("Bring your own model…").run()
    assert not at.exception
    assert any("Upload a model" in i.value for i in at.info)
    up = lambda name, data: at.file_uploader(key="model_upload").set_value(  # noqa: E731
        (name, data, "application/octet-stream")).run()

    up("bad.pt", b"this is not a checkpoint")
    assert not at.exception
    errs = _errors(at)
    assert errs and all("\n" not in e for e in errs), errs
    assert at.button(key="sb_certify").disabled

    data = (tiny_assets / "models" / "tiny_test.pt").read_bytes()
    up("mine.pt", data)
    assert not at.exception and not _errors(at), _errors(at)
    assert Path(at.session_state["model_path"]).read_bytes() == data
    at.number_input(key="sb_n0").set_value(10)
    at.number_input(key="sb_n").set_value(50).run()
    at.button(key="sb_certify").click().run()
    assert not at.exception and not _errors(at)
    assert _metric(at, "Forward passes") == "60"

    at.text_input(key="model_arch").input("small_cnn").run()
    up("sd_w8.pt", _state_dict_bytes(build("small_cnn", width=8)))  # width 8 != default 32
    assert not at.exception
    errs = _errors(at)
    assert len(errs) == 1 and "does not match" in errs[0], errs
    assert at.button(key="sb_certify").disabled

    up("sd_w32.pt", _state_dict_bytes(build("small_cnn")))
    assert not at.exception and not _errors(at), _errors(at)
    assert not at.button(key="sb_certify").disabled


# --------------------------------------------------------------------------- Certify page
CERTIFY = "pages/5_Certify.py"


@pytest.mark.skipif(not SHIPPED.exists(), reason="shipped model mnist_cnn_noise025 not in assets/models yet")
def test_certify_opens_a_runs_input_and_reproduces_its_row(tmp_path, monkeypatch):
    """Results -> Certify: a run's input opens with the run's parameters, model, dataset and seed
    prefilled, says so, and Certify reproduces the run's stored row (same per-input random stream)."""
    from semsmooth_core.runs import jobs, pipeline
    from semsmooth_core.runs import Store

    monkeypatch.setenv("SEMSMOOTH_DB", str(tmp_path / "runs.sqlite"))
    store = Store()
    cfg = {"dataset": "mnist", "split": "heldout", "model": "mnist_cnn_noise025", "smoothing": "noise",
           "sigma_eps": 0.3, "n0": 10, "n_eps": 60, "alpha_gamma": 0.01, "batch_size": 70, "seed": 3}
    rid = jobs.create_job(cfg, [5, 7], store, name="tiny")
    assert jobs.worker_loop(store, run_id=rid, runner=pipeline.certify_inputs) == [(rid, "done")]
    row = next(r for r in store.rows(rid) if r["index"] == 7)
    # a double-smoothing run queued but not run: only its parameters can be opened
    dbl = store.create_run({"model": "mnist_cnn_noise025", "smoothing": "double", "transform": "rotation",
                            "interpolation": "bicubic", "sigma_gamma": 20, "sigma_eps": 0.3, "E": 0.2,
                            "q_E_lower": 0.95, "n0": 20, "n_gamma": 40, "n_eps": 150, "alpha_gamma": 0.002,
                            "alpha_eps": 0.003, "alpha_E": 0.004, "attacker_range": [[-25, 25]],
                            "sequential": "looks", "seed": 0}, [11], name="dbl")

    at = _app()
    at.session_state["certify_run"], at.session_state["certify_index"] = rid, 7  # what a Results click sets
    at.switch_page(CERTIFY)
    at.run()
    assert not at.exception and not _errors(at), (at.exception, _errors(at))
    banner = " ".join(i.value for i in at.info)
    assert f"Opened from run #{rid} (tiny), input 7" in banner and f"radius {row['radius']:.4g}" in banner
    got = {k: at.number_input(key=k).value for k in ("cf_index", "cf_se", "cf_ne", "cf_n0", "cf_ag", "cf_bs")}
    assert got == {"cf_index": 7, "cf_se": 0.3, "cf_ne": 60, "cf_n0": 10, "cf_ag": 0.01, "cf_bs": 70}
    assert at.radio(key="cf_kind").value == "noise"
    assert at.session_state["seed"] == 3 and at.session_state["model_name"] == "mnist_cnn_noise025"
    at.button(key="cf_run").click().run()
    assert not at.exception and not _errors(at)
    cert = at.session_state["cf_result"][0]
    assert cert.label == row["prediction"] and cert.radius == pytest.approx(row["radius"], abs=1e-12)
    assert cert.n_forward == row["n_forward"] == 70
    at.number_input(key="cf_index").set_value(8).run()  # another input: the banner goes
    assert not any("Opened from run" in i.value for i in at.info)

    at.session_state["certify_run"], at.session_state["certify_index"] = dbl, 11
    at.run()
    assert not at.exception and not _errors(at), _errors(at)
    assert any(f"Opened from run #{dbl} (dbl), input 11" in i.value and "no row for it yet" in i.value
               for i in at.info)
    assert at.session_state["seed"] == 0
    assert at.radio(key="cf_kind").value == "double" and at.selectbox(key="cf_tf").value == "rotation"
    assert at.selectbox(key="cf_interp").value == "bicubic" and at.checkbox(key="cf_seq").value
    got = {k: at.number_input(key=k).value for k in ("cf_sg", "cf_se", "cf_E", "cf_q", "cf_n0", "cf_ng",
                                                     "cf_ne", "cf_ag", "cf_ae", "cf_aE", "cf_C")}
    assert got == {"cf_sg": 20, "cf_se": 0.3, "cf_E": 0.2, "cf_q": 0.95, "cf_n0": 20, "cf_ng": 40, "cf_ne": 150,
                   "cf_ag": 0.002, "cf_ae": 0.003, "cf_aE": 0.004, "cf_C": 25}
    assert _metric(at, "ρ") == f"{0.003 + 0.05 + 0.004:.4f}"  # the planner preview uses the run's values


@pytest.mark.skipif(not SHIPPED.exists(), reason="shipped model mnist_cnn_noise025 not in assets/models yet")
def test_certify_double_planner_stages_gallery(tmp_path, monkeypatch):
    """Double smoothing on the page: a dead end is shown before a run (Certify disabled), the
    planner's suggestion and an E estimate can be applied, and a certificate shows the result card
    with units, the guarantee, the gallery of sampled inputs with verdicts and the outer counts."""
    monkeypatch.setenv("SEMSMOOTH_DB", str(tmp_path / "runs.sqlite"))
    at = _open(CERTIFY)
    assert not at.exception and not _errors(at)
    assert at.radio(key="cf_kind").value == "double"
    at.radio(key="cf_Escope").set_value("dataset").run()  # one E for the dataset: typed or estimated here
    if "mnist_cnn_rot_vg_noise030" in at.sidebar.selectbox(key="model_name").options:
        at.sidebar.selectbox(key="model_name").select("mnist_cnn_rot_vg_noise030").run()
        # the model's card sets the page's preprocessing and sigma_eps
        assert at.text_input(key="cf_pp").value == "vignette+gauss:5:1"
        assert at.number_input(key="cf_se").value == 0.3
    at.number_input(key="cf_E").set_value(2.0).run()  # far beyond what sigma_eps 0.25 can certify
    errs = _errors(at)
    assert len(errs) == 1 and "out of reach" in errs[0] and at.button(key="cf_run").disabled
    at.number_input(key="cf_E").set_value(0.3).run()
    assert not _errors(at) and not at.button(key="cf_run").disabled
    assert any("Planner's suggestion" in c.value for c in at.caption)
    at.button(key="cf_plan").click().run()  # applies n_gamma, n_eps, alphas of the best plan
    assert not at.exception and at.number_input(key="cf_ng").value * at.number_input(key="cf_ne").value <= 100 * 200
    at.button(key="cf_est").click().run()
    assert not at.exception and not _errors(at), _errors(at)
    est = at.session_state["cf_E_est"]
    assert 0 < est["E"] and 0 < est["q_E_lower"] < est["q_E"] <= 1
    at.button(key="cf_use_E").click().run()
    assert at.number_input(key="cf_E").value == pytest.approx(est["E"], abs=1e-4)
    for key, v in {"cf_E": 0.05, "cf_q": 0.97, "cf_n0": 5, "cf_ng": 10, "cf_ne": 30, "cf_ag": 0.1,
                   "cf_ae": 0.1, "cf_aE": 0.1, "cf_sg": 10.0}.items():
        at.number_input(key=key).set_value(v)
    at.run()
    at.button(key="cf_run").click().run()
    assert not at.exception and not _errors(at), _errors(at)
    cert = at.session_state["cf_result"][0]
    assert cert.extra["smoothing"] == "double" and cert.radius_unit == "degrees"
    assert any("**Covered**" in m.value for m in at.markdown)  # the guarantee card (pages/_guarantee.py)
    assert any("Stage" in t or "Done:" in t for t in [str(p.proto.text) for p in at.get("progress")])
    imgs = at.get("image")  # the input and the gallery of sampled transformed inputs with verdicts
    assert len(imgs) >= 3 and any("certified" in str(i.proto) for i in imgs), imgs
    assert len(at.get("plotly_chart")) >= 2  # outer counts and inner votes


# --------------------------------------------------------------------------- help texts (issue 15)
SYMBOL = re.compile(r"[\u0370-\u03ff\u0332\u2080-\u2089‖]"  # Greek letters, q̲'s underline, subscripts, norms
                    r"|(?<![A-Za-z0-9_])(?:n0|n|n_\w+|E|C|M|B|P|R|q|k)(?![A-Za-z0-9_])")
"""A label "uses a symbol" when it has a Greek letter, a subscript or underline, a norm, or one of
the one-letter names the papers use (n0, n, E, C, M, B, P, R, q, k) as a word of its own."""
INPUTS = ("number_input", "slider", "select_slider", "selectbox", "text_input")
# buttons pressed after the default run, to reach the widgets and metrics a result brings
PRESS = {"1_Smoothing_basics.py": ["sb_certify"], "4_Error_distribution.py": ["ed_go"]}
# widgets the Error distribution page shows only for another choice
CHOICES = {"3_Transform_explorer.py": [("checkbox", "te_lp", True), ("radio", "te_source", "Embedded photo")],
           "4_Error_distribution.py": [("selectbox", "ed_vary", "another interpolation"),
                                       ("selectbox", "ed_vary", "another preprocessing"),
                                       ("radio", "ed_source", "Embedded photos"),
                                       ("selectbox", "ed_vary", "another image size (photos)")]}


def test_symbol_regex_matches_what_it_should():
    for label in ("σ — noise", "n0 — selection samples", "n (estimation)", "α", "E (l2 bound on ε)",
                  "C = ±R, R angle (degrees)", "q̲_E (lower bound)", "n_γ", "Bandwidth B", "σ₂", "‖ε‖₂ with P"):
        assert SYMBOL.search(label), label
    for label in ("Seed", "Dataset", "Model", "batch size", "Inputs", "First index", "Photo", "Greyscale",
                  "Sample index (0–999, heldout split of mnist)", "Run", "Kernel size (pixels)"):
        assert not SYMBOL.search(label), label


def _missing_help(at) -> list[str]:
    out = []
    for kind in INPUTS:
        for w in getattr(at, kind):
            if SYMBOL.search(w.label or "") and not (w.help or "").strip():
                out.append(f"{kind} {w.label!r}")
    for m in at.metric:
        if SYMBOL.search(m.label or "") and not (m.help or "").strip():
            out.append(f"metric {m.label!r}")
    return out


@pytest.mark.parametrize("page", PAGES)
def test_every_symbol_input_and_metric_has_help(page):
    """Issue 15: every number_input/slider/selectbox/text input and every metric whose label uses a
    symbol explains it (non-empty help), on every page, in the sidebar too, also after the page's
    main button and in the choices that show more widgets."""
    at = _open(page)
    assert not at.exception, at.exception
    # the glossary is one click away: the shared sidebar links it on every page
    assert [pl for pl in at.sidebar.get("page_link") if pl.proto.page == "glossary"], f"{page}: no glossary link"
    missing = _missing_help(at)
    for key in PRESS.get(page, []):
        at.button(key=key).click().run(timeout=TIMEOUT)
        assert not at.exception, at.exception
        missing += _missing_help(at)
    for kind, key, value in CHOICES.get(page, []):
        getattr(at, kind)(key=key).set_value(value).run(timeout=TIMEOUT)
        assert not at.exception, at.exception
        missing += _missing_help(at)
    assert not missing, f"{page}: no help on {sorted(set(missing))}"


def test_glossary_page_lists_every_entry_and_searches():
    """The Glossary page (linked from every page's sidebar: checked above) lists every entry of
    semsmooth_core.glossary; the search box filters."""
    from semsmooth_core.glossary import ENTRIES

    at = _open("9_Glossary.py")
    text = " ".join(m.value for m in at.markdown)
    for e in ENTRIES:
        assert e.name in text and e.plain in text, e.key
    at.text_input(key="gl_query").input("severity").run()
    shown = " ".join(m.value for m in at.markdown)
    assert "severity (GSmooth)" in shown and "interpolation-error bound" not in shown


def test_audio_sidebar_has_no_image_pickers():
    """Issue 15: the Audio page picks its own model; the sidebar there has no MNIST dataset/model
    pickers, and the choice made on other pages survives a visit to it."""
    at = _app()
    at.sidebar.selectbox(key="dataset").set_value("mnist").run()
    at.switch_page("pages/7_Audio_volume.py")
    at.run()
    assert not at.exception, at.exception
    assert [w.label for w in at.sidebar.selectbox] == []
    assert at.selectbox(key="av_model").value
    at.switch_page("pages/1_Smoothing_basics.py")
    at.run()
    assert at.sidebar.selectbox(key="model_name").value == "mnist_cnn_noise025"


@pytest.mark.parametrize("page,n_keys,tick,run", [
    ("7_Audio_volume.py", {"av_ngamma": 10**5, "av_neps": 10**5}, "av_long_ok", "av_certify"),
    ("8_GSmooth.py", {"gs_n": 10**8}, "gs_long_ok", "gs_certify"),
])
def test_long_runs_ask_first_on_audio_and_gsmooth(page, n_keys, tick, run):
    """Issue 15 item 6 on the Audio volume and GSmooth pages: the run's forward passes and its time on
    this device are shown, and a run estimated above a few minutes needs a tick before Certify works."""
    at = _open(page)
    assert not at.exception, at.exception
    assert any("forward passes" in c.value for c in at.caption), [c.value for c in at.caption]
    assert not at.button(key=run).disabled
    for k, v in n_keys.items():
        at.number_input(key=k).set_value(v)
    at.run()
    assert not at.exception, at.exception
    assert at.button(key=run).disabled
    at.checkbox(key=tick).check().run()
    assert not at.button(key=run).disabled
