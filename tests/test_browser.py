"""The running app in a real headless Chromium: start ``streamlit run app.py`` on a free port,
open every page by its URL, take one screenshot of each and check for no exception box, no
script error and no console error; open the Results page by its URL (a deep link), click a row of
a finished run and land on the Certify page with that input; open Smoothing basics, Audio volume
and GSmooth and certify on each.

Skips when no Chromium is installed -- except in CI (``CI=true``), where it must run and fails.
Uses the shipped ``mnist_cnn_noise025`` when present, else a tiny untrained checkpoint in a
temporary assets folder (the mechanics under test are the same).
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("semsmooth_screenshot", REPO / "scripts" / "screenshot.py")
shot = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shot)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shot.find_chromium()
    if path is None:
        msg = "no Chromium found (/usr/bin/chromium): install the Debian packages chromium and chromium-driver"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but " + msg)
        pytest.skip(msg)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but the Python package playwright is not installed")
        pytest.skip("the Python package playwright is not installed")
    return path


@pytest.fixture(scope="module")
def app_env(tmp_path_factory) -> dict:
    """Environment for the server: repo assets with the shipped model, else a tiny checkpoint."""
    if (REPO / "assets" / "models" / "mnist_cnn_noise025.pt").exists():
        return {}
    import torch

    from semsmooth_core.models import build, save_checkpoint

    assets = tmp_path_factory.mktemp("assets")
    (assets / "models").mkdir()
    shutil.copy(REPO / "assets" / "mnist_embedded.npz", assets / "mnist_embedded.npz")
    torch.manual_seed(0)
    save_checkpoint(assets / "models" / "tiny_test.pt", build("small_cnn", width=4).eval(), "small_cnn",
                    {"width": 4}, {"summary": "untrained test model"})
    return {"SEMSMOOTH_ASSETS": str(assets)}


@pytest.fixture(scope="module")
def results_db(tmp_path_factory) -> str:
    """A results store with one run of ours (two rows written as a worker writes them)."""
    from semsmooth_core.runs import Store

    store = Store(tmp_path_factory.mktemp("store") / "runs.sqlite")
    model = "mnist_cnn_noise025" if (REPO / "assets" / "models" / "mnist_cnn_noise025.pt").exists() else "tiny_test"
    cfg = {"dataset": "mnist", "split": "heldout", "model": model, "smoothing": "noise", "sigma_eps": 0.25,
           "n0": 10, "n_eps": 50, "alpha_gamma": 0.01, "batch_size": 60, "seed": 0}
    rid = store.create_run(cfg, [0, 1], name="browser test", status="done")
    for i, label in enumerate((7, 2)):  # the first two held-out digits
        store.add_row(rid, {"index": i, "label": label, "prediction": label, "radius": 0.3, "correct": True,
                            "radius_unit": "l2 (pixel scale [0,1])", "n_forward": 60, "seconds": 0.1})
    return str(store.path)


def test_certify_in_real_browser(chromium, app_env, results_db):
    """Results (opened by its URL) -> click a row -> Certify opens that input with the run's
    settings -> Certify shows a radius; a refresh (the page's URL in a new session) shows the page
    without a "Page not found" notice (that notice appears only on a deep link that is the very
    first session after a server start; see app.py)."""
    env = {**app_env, "OMP_NUM_THREADS": "1", "SEMSMOOTH_DB": results_db}
    with shot.running_app(env=env) as base, shot.browser_page(chromium) as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        banner = shot.open_row_in_certify(page, base)
        assert "Opened from run #1 (browser test), input 0" in banner, banner
        assert page.url.endswith("/certify")
        page.get_by_role("button", name="Certify", exact=True).click()
        metric = page.locator('[data-testid="stMetric"]').filter(has=page.get_by_text(shot.CARD_RADIUS))
        metric.wait_for(state="visible", timeout=60_000)  # the result card (not the preview's max radius)
        radius = metric.locator('[data-testid="stMetricValue"]').inner_text().strip()
        assert math.isfinite(float(radius)) and float(radius) >= 0, radius
        # Streamlit draws the result's elements one after another: wait for the block after the metric
        guarantee = page.get_by_text("Not covered", exact=True)  # the guarantee card's last block
        guarantee.wait_for(state="visible", timeout=30_000)
        assert guarantee.count() == 1
        # the sidebar is shared: the device line and the pickers are there
        sidebar = page.locator('[data-testid="stSidebar"]')
        assert "Compute device" in sidebar.inner_text()
        # a refresh opens the page's URL in a new session: the page itself, no "Page not found"
        page.reload(wait_until="domcontentloaded")
        page.get_by_role("button", name="Certify", exact=True).wait_for(state="visible", timeout=60_000)
        shot.wait_idle(page)
        assert page.get_by_role("dialog").count() == 0
        assert page.locator('[data-testid="stException"]').count() == 0
        # another model in the sidebar: the fields the browser already shows take its card's
        # preprocessing and σ_ε (AppTest cannot see a field that keeps its old value on screen)
        if not app_env:
            shot.pick_model(page, shot.CERTIFY_MODEL, "vignette+gauss:5:1")
            assert shot.input_value(page, "σ_ε (pixel scale)") == "0.300"
        assert not errors, errors


def test_basics_audio_and_gsmooth_pages_in_real_browser(chromium, app_env):
    """Smoothing basics certifies a radius; the Audio volume page plays a clip and certifies a
    radius in dB; the GSmooth page certifies a blur with the shipped surrogate -- in the browser,
    with no exception and no script error."""
    if app_env:
        pytest.skip("the shipped speech and GSmooth models are not in this checkout")
    with shot.running_app(env={"OMP_NUM_THREADS": "1"}) as base, shot.browser_page(chromium) as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        radius = shot.certify_on_basics(page, base)
        assert math.isfinite(float(radius)) and float(radius) > 0, radius
        assert page.locator('[data-testid="stException"]').count() == 0
        for url in ("audio_volume", "gsmooth"):
            text = shot.certify_on_page(page, base, url)
            if url == "audio_volume":
                assert page.locator("audio").count() >= 1  # the clip can be heard
                assert "dB" in text and math.isfinite(float(text.split()[-1])), text
            else:
                assert 0.0 <= float(text.split()[-1]) <= 1.0, text
            assert page.locator('[data-testid="stException"]').count() == 0, url
        assert not errors, errors


def test_every_page_by_its_url(chromium, app_env, results_db, tmp_path):
    """Issue 15: every page, opened by its own URL, runs without an exception box, a script error
    or a console error (a failed request included; only Streamlit's upstream base-URL probe, see
    ``screenshot._UPSTREAM_PROBE``, may fail), and one screenshot of each is taken. The home page
    is opened first: the very first session after a server start greets a deep link with
    Streamlit's "Page not found" notice (see app.py)."""
    env = {**app_env, "OMP_NUM_THREADS": "1", "SEMSMOOTH_DB": results_db}
    urls = shot.page_urls()
    assert {"home", "glossary", "results"} <= set(urls), urls
    with shot.running_app(env=env) as base, shot.browser_page(chromium) as page:
        console = shot.Console().attach(page)
        boxes = {}
        for url in urls:
            boxes[url] = shot.visit(page, base, url)
            page.screenshot(path=str(tmp_path / f"{url}.png"))
            assert (tmp_path / f"{url}.png").stat().st_size > 10_000, url  # a drawn page, not a blank one
        assert not any(boxes.values()), boxes
        assert page.get_by_role("dialog").count() == 0
        assert not console.errors, console.errors
        # the glossary is one click away: the sidebar link opens it
        shot.visit(page, base, "smoothing_basics")
        page.locator('[data-testid="stSidebar"] [data-testid="stPageLink-NavLink"]', has_text="Glossary").click()
        page.get_by_role("heading", name="Glossary").wait_for(state="visible", timeout=60_000)
        assert page.url.endswith("/glossary")


def test_stop_button_stops_a_certification(chromium, app_env):
    """Issue 15: a long certification on Smoothing basics shows a Stop button; pressing it ends the
    computation (Streamlit reruns the page, which interrupts the running script at its next
    progress update) and the page says it was stopped, with no result and no error."""
    with shot.running_app(env={**app_env, "OMP_NUM_THREADS": "1"}) as base, shot.browser_page(chromium) as page:
        console = shot.Console().attach(page)
        shot.visit(page, base, "home")
        shot.visit(page, base, shot.BASICS_URL)
        field = page.locator('input[aria-label="n — estimation samples"]')
        field.fill("400000")
        field.press("Enter")
        page.get_by_text(re.compile("n0 \\+ n = 400,100 forward passes")).wait_for(state="visible", timeout=60_000)
        shot.wait_idle(page)
        confirm = page.locator('[data-testid="stCheckbox"]', has_text="Yes, run it although")
        if confirm.count():  # estimated above 3 minutes on this machine: confirm first
            confirm.click()
            page.wait_for_function("""() => { const b = [...document.querySelectorAll('button')]
                .find(e => e.innerText.trim() === 'Certify'); return b && !b.disabled; }""", timeout=60_000)
        page.get_by_role("button", name="Certify", exact=True).click()
        stop = page.get_by_role("button", name=re.compile("Stop"))
        stop.wait_for(state="visible", timeout=60_000)
        page.wait_for_selector('[data-testid="stProgress"]', timeout=60_000)
        page.wait_for_timeout(1500)
        stop.click()
        page.get_by_text(re.compile("^Stopped: the certification did not finish")).wait_for(state="visible",
                                                                                              timeout=60_000)
        shot.wait_idle(page)
        assert page.locator('[data-testid="stMetric"]', has_text=shot.RADIUS_LABEL).count() == 0
        assert page.locator('[data-testid="stException"]').count() == 0
        assert not console.errors, console.errors
