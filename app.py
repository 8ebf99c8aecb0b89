"""semsmooth: certificates of robustness against semantic perturbations, in the browser.

Run with ``streamlit run app.py``. Every ``pages/*.py`` whose name does not start with "_" is a
page, in file-name order; its title comes from the file name (``3_Transform_explorer.py`` ->
"Transform explorer"). ``pages/0_Home.py`` is the default page. The sidebar (pages/_shared.py)
is drawn here, so it shows on every page.
"""

from __future__ import annotations

import re
from pathlib import Path

import streamlit as st

from pages._shared import sidebar

ROOT = Path(__file__).resolve().parent
PAGES_DIR = ROOT / "pages"


def page_title(path: Path) -> str:
    """``3_Transform_explorer.py`` -> "Transform explorer"."""
    stem = re.sub(r"^\d+[_\- ]*", "", path.stem) or path.stem
    return stem.replace("_", " ").strip()


def page_files() -> list[Path]:
    """Page files in display order (file name order), without helpers (``_*.py``)."""
    return sorted((p for p in PAGES_DIR.glob("*.py") if not p.name.startswith("_")),
                  key=lambda p: p.name)


def build_pages() -> list:
    files = page_files()
    home = next((p for p in files if page_title(p).lower() == "home"), files[0] if files else None)
    pages = []
    for p in files:
        title = page_title(p)
        # URL: the lower-case title ("smoothing_basics"). It must differ from the legacy name
        # of the file ("Smoothing_basics"): the first session after a server start runs in
        # Streamlit's legacy pages/ mode, and a legacy match would run the page file alone,
        # without this script (no sidebar, no navigation). With a non-matching URL Streamlit
        # runs app.py, which then shows the right page (after a dismissible "Page not found"
        # notice on that first deep link only). The default page is served at "/"; its explicit
        # url_path keeps AppTest's switch_page to it from dropping the sidebar.
        url = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_") or "page"
        pages.append(st.Page(str(p.relative_to(ROOT)), title=title, default=(p == home),
                             url_path="home" if p == home else url))
    return pages


# pages (url paths) that pick their own model and data: the sidebar leaves its pickers out (a
# bare string here would be drawn on every page by Streamlit's "magic")
OWN_PICKERS = {"audio_volume", "glossary"}


def run_guarded(fn, where: str) -> None:
    """Run ``fn``; an unexpected exception becomes one ``st.error`` line naming the log file with
    its traceback (the browser never sees a traceback). ``st.stop``/``st.rerun`` pass through
    (they are BaseExceptions)."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the last guard of a page
        from semsmooth_core.errorlog import log_exception, one_line

        try:
            where_log = f"details in {log_exception(e, where)}"
        except OSError:
            where_log = "the error log could not be written"
        st.error(f"{one_line(e)} ({where_log})", icon=":material/error:")


# the icon is a file of ours: an emoji needs an emoji font, a ":material/…" page icon is fetched
# from fonts.gstatic.com (nothing may be downloaded at run time)
st.set_page_config(page_title="semsmooth", page_icon=str(ROOT / "assets" / "icon.png"), layout="wide")
nav = st.navigation(build_pages())
run_guarded(lambda: sidebar(pickers=nav.url_path not in OWN_PICKERS), "sidebar")
run_guarded(nav.run, f"page {getattr(nav, 'title', '')}")
