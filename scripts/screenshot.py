"""Screenshots of the running app for the README (and the helpers the browser test shares).

Starts ``streamlit run app.py`` headless on a free port, drives Debian's Chromium with
Playwright, and writes ``docs/assets/home.png``, ``docs/assets/smoothing_basics.png`` (after a
certification) and ``docs/assets/certify.png`` (double smoothing of a held-out digit against
rotation with the shipped rotation model: E estimated on the page, certificate, gallery and outer
counts), ``docs/assets/audio.png`` and ``docs/assets/gsmooth.png`` (each after a certification
with the page's defaults), ``docs/assets/transform_explorer.png``, ``docs/assets/error_distribution.png``
(after sampling ε with the page's defaults), ``docs/assets/glossary.png`` and, with
``--results-db``, ``docs/assets/results.png``. Usage::

    python scripts/screenshot.py [--out docs/assets] [--width 1400] [--results-db runs.sqlite]

Needs ``/usr/bin/chromium`` (Debian packages ``chromium`` and ``chromium-driver``) or
``$CHROMIUM``; Playwright's own browser download is not used.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
BASICS_URL = "smoothing_basics"  # app.py: the lower-case page title
RADIUS_LABEL = "Certified radius (l2, pixel scale [0,1])"


def find_chromium() -> str | None:
    """Path of a Chromium binary: ``$CHROMIUM``, /usr/bin/chromium, or chromium on PATH."""
    for cand in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                 shutil.which("chromium-browser")):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(env: dict | None = None, timeout: float = 90.0):
    """Run ``streamlit run app.py`` headless on a free port; yield its base URL; stop it after."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"),
           "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
           "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    full_env = {**os.environ, **(env or {})}
    log = open(os.devnull, "wb") if not os.environ.get("SEMSMOOTH_APP_LOG") else \
        open(os.environ["SEMSMOOTH_APP_LOG"], "wb")
    proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited early with code {proc.returncode}")
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"streamlit did not answer on {base} within {timeout:.0f} s")
            time.sleep(0.2)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group (start_new_session)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()


@contextmanager
def browser_page(chromium: str, width: int = 1400, height: int = 900):
    """A Playwright page in headless Debian Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=1)
            yield page
        finally:
            browser.close()


def wait_idle(page, timeout_ms: int = 60_000) -> None:
    """Wait until the app has rendered and no script run is in progress."""
    page.wait_for_selector('[data-testid="stSidebar"] >> text=Compute device', timeout=timeout_ms)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')",
        timeout=timeout_ms)


def scroll_to_top(page) -> None:
    """Streamlit scrolls inside its main container; bring it (and the window) to the top."""
    page.evaluate("""() => { window.scrollTo(0, 0);
        for (const el of document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppScrollToBottomContainer"], section.main'))
            el.scrollTop = 0; }""")


def dismiss_page_not_found(page) -> bool:
    """Close the "Page not found" notice if it is up. The first session after a server start
    runs in Streamlit's legacy pages/ mode and greets a deep link with it, although app.py then
    shows the right page (see app.py). Returns whether there was one."""
    dialog = page.get_by_role("dialog").filter(has_text="Page not found")
    if dialog.count() == 0:
        return False
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached", timeout=10_000)
    return True


def certify_on_basics(page, base: str, timeout_ms: int = 60_000) -> str:
    """Open Smoothing basics, press Certify, wait for the radius; return the radius text."""
    page.goto(f"{base}/{BASICS_URL}", wait_until="domcontentloaded")
    button = page.get_by_role("button", name="Certify", exact=True)
    button.wait_for(state="visible", timeout=timeout_ms)
    wait_idle(page, timeout_ms)
    dismiss_page_not_found(page)
    page.wait_for_function("""() => { const b = [...document.querySelectorAll('button')]
        .find(e => e.innerText.trim() === 'Certify'); return b && !b.disabled; }""", timeout=timeout_ms)
    button.click()
    metric = page.locator('[data-testid="stMetric"]', has_text=RADIUS_LABEL)
    metric.wait_for(state="visible", timeout=timeout_ms)
    return metric.locator('[data-testid="stMetricValue"]').inner_text().strip()


def open_row_in_certify(page, base: str, timeout_ms: int = 60_000) -> str:
    """Open the Results page by its URL, click the first row of the per-input table and wait
    for the Certify page to open that input; return the Certify page's "Opened from run" banner.
    Needs a results store with at least one run of ours that has rows."""
    page.goto(f"{base}/results", wait_until="domcontentloaded")
    wait_idle(page, timeout_ms)
    dismiss_page_not_found(page)
    page.wait_for_selector(".js-plotly-plot", timeout=timeout_ms)
    grid = page.locator('[data-testid="stDataFrame"]').last  # the per-input table
    grid.scroll_into_view_if_needed()
    wait_idle(page, timeout_ms)
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 15, box["y"] + 55)  # the row marker of the first row (below the header)
    banner = page.locator('[data-testid="stAlert"]', has_text="Opened from run")
    banner.wait_for(state="visible", timeout=timeout_ms)
    return banner.inner_text()


CERTIFY_MODEL = "mnist_cnn_rot_vg_noise030"
CARD_RADIUS = re.compile(r"^Radius \(")  # the guarantee card's radius metric ("Radius (degrees)", "Radius (dB)")


def page_urls() -> list[str]:
    """The URL path of every page, in navigation order (app.py: the lower-case title of each
    ``pages/N_Title.py``; the default page is "home")."""
    out = []
    for p in sorted((REPO / "pages").glob("*.py")):
        if p.name.startswith("_"):
            continue
        title = re.sub(r"^\d+[_\- ]*", "", p.stem) or p.stem
        out.append(re.sub(r"[^a-z0-9]+", "_", title.replace("_", " ").strip().lower()).strip("_") or "page")
    return out


# Streamlit's frontend, opened on a page URL, first looks for its server under that path
# (GET /<page>/_stcore/health and /host-config answer 404) and then under "/": an upstream
# behaviour (streamlit/streamlit#7074, open) that an app cannot change. Only these two requests
# are allowed to fail; any other 404 or console error counts.
_UPSTREAM_PROBE = re.compile(r"/[a-z0-9_]+/_stcore/(health|host-config)$")


class Console:
    """What the browser reported while pages were open: console errors, failed requests (except
    the upstream base-URL probe) and uncaught script errors. (A plain class: the browser test
    loads this file without registering it as a module, which a dataclass needs.)"""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.probes = 0

    def attach(self, page) -> "Console":
        page.on("pageerror", lambda e: self.errors.append(f"script error: {e}"))
        page.on("response", self._response)
        page.on("console", self._console)
        return self

    def _response(self, r) -> None:
        if r.status >= 400:
            if r.status == 404 and _UPSTREAM_PROBE.search(r.url.split("?")[0]):
                self.probes += 1
            else:
                self.errors.append(f"HTTP {r.status} {r.url}")

    def _console(self, m) -> None:
        if m.type != "error":
            return
        # the failed upstream probe's own console line ("Failed to load resource ... 404"): the
        # response handler above has judged that request already
        if "Failed to load resource" in m.text and "404" in m.text:
            return
        self.errors.append(f"console error: {m.text[:300]}")


def visit(page, base: str, url: str, timeout_ms: int = 120_000) -> int:
    """Open the page at ``url`` by its address, wait until it has run; returns how many
    Streamlit exception boxes it shows."""
    page.goto(f"{base}/{url}" if url != "home" else base, wait_until="domcontentloaded")
    wait_idle(page, timeout_ms)
    dismiss_page_not_found(page)
    page.wait_for_timeout(1000)
    wait_idle(page, timeout_ms)
    return page.locator('[data-testid="stException"]').count()


def sample_errors_on_page(page, base: str, timeout_ms: int = 180_000) -> None:
    """Error distribution: open it and press "Sample ε" with the page's defaults; wait for the histogram."""
    visit(page, base, "error_distribution", timeout_ms)
    page.get_by_role("button", name=re.compile("^Sample ε")).click()
    page.locator('[data-testid="stMetric"]', has_text="q_E at E").wait_for(state="visible", timeout=timeout_ms)
    page.wait_for_selector(".js-plotly-plot", timeout=timeout_ms)
    wait_idle(page, timeout_ms)


def input_value(page, label: str) -> str | None:
    """The value the browser shows in the input field labelled ``label`` (None if there is none)."""
    return page.evaluate("l => { const el = document.querySelector(`input[aria-label=\"${l}\"]`); "
                         "return el ? el.value : null; }", label)


def pick_model(page, model: str, preprocess: str, timeout_ms: int = 60_000) -> None:
    """Pick ``model`` in the sidebar and wait until the Certify page's preprocessing field shows
    ``preprocess`` (the model card reached the widgets the browser already had)."""
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]', has_text="Model").click()
    page.get_by_role("option", name=model, exact=True).click()
    page.wait_for_function("""p => { const el = document.querySelector(
        'input[aria-label="Preprocessing (as the model was trained)"]'); return el && el.value === p; }""",
        arg=preprocess, timeout=timeout_ms)
    wait_idle(page, timeout_ms)


def certify_double_on_page(page, base: str, model: str = CERTIFY_MODEL, timeout_ms: int = 300_000) -> str:
    """Certify page: pick ``model`` in the sidebar, estimate E on the page and use it, certify with
    the page's default double-smoothing settings; return the radius text. Each step waits for
    its effect on the page (a rerun), not just for the page to look idle."""
    certify = page.get_by_role("button", name="Certify", exact=True)
    page.goto(f"{base}/certify", wait_until="domcontentloaded")
    certify.wait_for(state="visible", timeout=timeout_ms)
    wait_idle(page, timeout_ms)
    dismiss_page_not_found(page)
    pick_model(page, model, "vignette+gauss:5:1", timeout_ms)
    page.get_by_role("button", name="Estimate E here").click()
    use = page.get_by_role("button", name="Use these values")
    use.wait_for(state="visible", timeout=timeout_ms)
    wait_idle(page, timeout_ms)
    use.click()
    page.wait_for_function("""() => { const el = document.querySelector('input[aria-label="E (l2 bound on ε)"]');
        return el && el.value !== '0.3000'; }""", timeout=timeout_ms)  # the estimate is in the E field
    page.wait_for_timeout(3000)  # the rerun that the click started has drawn the page
    wait_idle(page, timeout_ms)
    long_ok = page.locator('[data-testid="stCheckbox"]', has_text="Yes, start a run")
    if long_ok.count():  # the page asks before a run it estimates to take minutes
        long_ok.click()
        page.wait_for_timeout(2000)
        wait_idle(page, timeout_ms)
    certify.click(timeout=timeout_ms)
    metric = page.locator('[data-testid="stMetric"]').filter(has=page.get_by_text(CARD_RADIUS))
    metric.wait_for(state="visible", timeout=timeout_ms)
    wait_idle(page, timeout_ms)
    return metric.locator('[data-testid="stMetricValue"]').inner_text().strip()


def certify_on_page(page, base: str, url: str, timeout_ms: int = 120_000) -> str:
    """Open the page at ``url`` ("audio_volume" or "gsmooth"), press its Certify button with the
    page's defaults and return the verdict's text: the Audio page's guarantee card radius metric
    ("Radius (dB)" and its value), the GSmooth page's p̲_A metric."""
    page.goto(f"{base}/{url}", wait_until="domcontentloaded")
    certify = page.get_by_role("button", name="Certify", exact=True)
    certify.wait_for(state="visible", timeout=timeout_ms)
    wait_idle(page, timeout_ms)
    dismiss_page_not_found(page)
    certify.click()
    if url == "audio_volume":
        verdict = page.locator('[data-testid="stMetric"]').filter(has=page.get_by_text(CARD_RADIUS))
    else:
        verdict = page.locator('[data-testid="stMetric"]', has_text="p̲_A")
    verdict.first.wait_for(state="visible", timeout=timeout_ms)
    wait_idle(page, timeout_ms)
    return verdict.first.inner_text()


def page_shot(page, path: Path, width: int, height: int) -> None:
    """The whole page at ``width`` × ``height`` from its top (Streamlit scrolls inside a container)."""
    page.set_viewport_size({"width": width, "height": height})
    scroll_to_top(page)
    page.wait_for_timeout(1500)  # plotly and images finish drawing
    page.screenshot(path=str(path))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "docs" / "assets"), help="folder for the PNG files")
    ap.add_argument("--width", type=int, default=1400, help="browser viewport width (pixels)")
    ap.add_argument("--height", type=int, default=1080, help="home screenshot height (pixels)")
    ap.add_argument("--basics-height", type=int, default=1750,
                    help="Smoothing basics screenshot height (pixels): input, votes and the result")
    ap.add_argument("--certify-height", type=int, default=2000,
                    help="Certify screenshot height (pixels): settings, result card, gallery, counts")
    ap.add_argument("--audio-height", type=int, default=2350, help="Audio volume screenshot height (pixels)")
    ap.add_argument("--gsmooth-height", type=int, default=2000, help="GSmooth screenshot height (pixels)")
    ap.add_argument("--results-db", help="also write results.png: the Results page on this results store "
                    "(e.g. the 1,000-input run of benchmarks/run_lifecycle.py with a Cohen log imported by "
                    "`runs import`); the page shows its newest run of ours and its newest imported log")
    ap.add_argument("--results-height", type=int, default=1900, help="Results screenshot height (pixels)")
    ap.add_argument("--explorer-height", type=int, default=1500, help="Transform explorer screenshot height (pixels)")
    ap.add_argument("--errors-height", type=int, default=1500, help="Error distribution screenshot height (pixels)")
    ap.add_argument("--glossary-height", type=int, default=1300, help="Glossary screenshot height (pixels)")
    args = ap.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print("no Chromium found: install the Debian packages chromium and chromium-driver", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {"SEMSMOOTH_DB": str(Path(args.results_db).resolve())} if args.results_db else None
    with running_app(env=env) as base, browser_page(chromium, args.width, args.height) as page:
        page.goto(base, wait_until="domcontentloaded")
        wait_idle(page)
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        page.wait_for_timeout(1500)  # plotly finishes drawing
        # Streamlit scrolls inside its main container, so a tall viewport shows the whole page
        page.set_viewport_size({"width": args.width, "height": args.height})
        scroll_to_top(page)
        page.wait_for_timeout(800)
        page.screenshot(path=str(out / "home.png"))
        radius = certify_on_basics(page, base)
        wait_idle(page)
        page_shot(page, out / "smoothing_basics.png", args.width, args.basics_height)
        r_double = certify_double_on_page(page, base)
        page_shot(page, out / "certify.png", args.width, args.certify_height)
        audio = certify_on_page(page, base, "audio_volume")
        page_shot(page, out / "audio.png", args.width, args.audio_height)
        gsm = certify_on_page(page, base, "gsmooth").replace("\n", " ")
        page_shot(page, out / "gsmooth.png", args.width, args.gsmooth_height)
        visit(page, base, "transform_explorer")
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        page_shot(page, out / "transform_explorer.png", args.width, args.explorer_height)
        sample_errors_on_page(page, base)
        page_shot(page, out / "error_distribution.png", args.width, args.errors_height)
        visit(page, base, "glossary")
        page_shot(page, out / "glossary.png", args.width, args.glossary_height)
        if args.results_db:
            page.goto(f"{base}/results", wait_until="domcontentloaded")
            wait_idle(page)
            page.wait_for_selector(".js-plotly-plot", timeout=60_000)
            page_shot(page, out / "results.png", args.width, args.results_height)
    print(f"wrote {out / 'home.png'}, {out / 'smoothing_basics.png'} (certified radius {radius}), "
          f"{out / 'certify.png'} (double smoothing, radius {r_double} degrees), {out / 'audio.png'} "
          f"({audio}), {out / 'gsmooth.png'} ({gsm}), {out / 'transform_explorer.png'}, "
          f"{out / 'error_distribution.png'}, {out / 'glossary.png'}"
          + (f"; {out / 'results.png'}" if args.results_db else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
