"""The running app in a real headless Chromium: start ``streamlit run app.py`` on a free port,
open Smoothing basics, run a certification and see a radius.

Skips when no Chromium is installed -- except in CI (``CI=true``), where it must run and fails.
Uses the shipped ``mnist_cnn_noise025`` when present, else a tiny untrained checkpoint in a
temporary assets folder (the mechanics under test are the same).
"""

from __future__ import annotations

import importlib.util
import math
import os
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


def test_certify_in_real_browser(chromium, app_env):
    with shot.running_app(env={**app_env, "OMP_NUM_THREADS": "1"}) as base, \
            shot.browser_page(chromium) as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        radius = shot.certify_on_basics(page, base)
        assert math.isfinite(float(radius)) and float(radius) >= 0, radius
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.get_by_text("Forward passes").count() >= 1
        # the sidebar is shared: the device line and the pickers are there
        sidebar = page.locator('[data-testid="stSidebar"]')
        assert "Compute device" in sidebar.inner_text()
        assert not errors, errors
