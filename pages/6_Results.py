"""Results: start, watch, cancel and resume background certification runs, and explore their results beside imported logs of other tools.

Certified accuracy vs radius, radius histograms, a Fischer-Table-2 summary and per-input rows,
for runs in the results store and imported Cohen-format TSV logs.

Session-state keys: reads ``"results_run"`` (a run id to select, e.g. set by the Certify page; kept
until the run has its first row); a run of ours that gets its first rows while the page is in use
is added to the selection;
a click on a per-input row sets ``"certify_index"`` and ``"certify_run"`` and opens the Certify page."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from pages._attack_panel import attack_curves
from PIL import Image

from pages._shared import (cached_dataset, checked_data_root, data_options, ensure_worker, fmt, hint, model_ref,
                           seed, show_error, tensor_to_image)
from semsmooth_core.data.uploads import limit_text
from semsmooth_core.runs import jobs
from semsmooth_core.runs import Store, export_tsv, import_tsv, progress_info
from semsmooth_core.runs.summary import accuracy_curve, n_ceiling, radius_grid, summarize, table_row
from semsmooth_core.validation import SemsmoothError

CERTIFY_PAGE = "pages/5_Certify.py"
ACTIVE = ("queued", "running")
THUMBS = 60  # thumbnails in the per-input table (the first rows)

st.title("Results")
st.markdown(
    "Every certification run writes one row per input into the results store (SQLite) as soon "
    "as the input is done, so runs survive closing the page, a refresh or a killed worker, and "
    "resume where they stopped. **Certified accuracy at radius r** = fraction of *all* inputs "
    "whose smoothed prediction is correct and certified at radius ≥ r (abstentions count as wrong).")

try:
    store = Store()
except SemsmoothError as e:
    show_error(e)
    st.stop()
st.caption(f"Results store: `{store.path}` (set `SEMSMOOTH_DB` or `--db` on the CLI to use another)")
store.reap()


# --------------------------------------------------------------------------- new run
def _config(sigma: float, n0: int, n: int, alpha: float, bs: int) -> dict:
    """The certify options of a Gaussian-smoothing run of the sidebar's model and dataset."""
    ref = model_ref()
    cfg = {"dataset": st.session_state.get("dataset", "mnist"), "split": "heldout",
           "root": checked_data_root(), "model": ref[0] if ref else None, **data_options(),
           "smoothing": "noise", "transform": None, "interpolation": "bilinear", "sigma_gamma": None,
           "sigma_eps": sigma, "E": None, "q_E_lower": None, "n0": n0, "n_gamma": None, "n_eps": n,
           "alpha_gamma": alpha, "alpha_eps": alpha, "alpha_E": None, "preprocess": None,  # noise: α = alpha_gamma
           "sequential": False, "batch_size": bs, "seed": seed(), "device": "auto"}
    return cfg


with st.expander("Start a new background run", expanded=False):
    st.caption("Gaussian (l2) smoothing of the sidebar's model on the sidebar's dataset; the run goes "
               "to a worker process, so you can leave this page. Transformation certificates are "
               "started from the Certify page or `python -m semsmooth_core certify`.")
    with st.form("new_run", enter_to_submit=False):  # Enter in a field must not start a run
        c1, c2, c3, c4 = st.columns(4)
        n_inputs = c1.number_input("Inputs", 1, 100000, 20, help="how many dataset inputs")
        start = c2.number_input("First index", 0, 10**7, 0)
        sigma = c3.number_input("σ (pixel scale [0,1])", 0.01, 10.0, 0.25, 0.05, format="%.3f", help=hint("sigma"))
        alpha = c4.number_input("α", 1e-6, 0.5, 0.001, format="%.4f", help=hint("alpha"))
        c5, c6, c7, c8 = st.columns(4)
        n0 = c5.number_input("n0 (selection)", 1, 10**6, 100, help=hint("n0"))
        n = c6.number_input("n (estimation)", 1, 10**7, 1000, help=hint("n"))
        bs = c7.number_input("Batch size", 1, 100000, 500)
        name = c8.text_input("Name", "")
        spread = st.checkbox("Spread the inputs evenly over the dataset split (else consecutive from the first index)",
                             value=True)
        if st.form_submit_button("Start run", type="primary"):
            try:
                cfg = _config(float(sigma), int(n0), int(n), float(alpha), int(bs))
                if not cfg["model"]:
                    raise SemsmoothError("no model selected in the sidebar")
                if spread:  # evenly over the split (the embedded MNIST split is sorted by class)
                    size = len(cached_dataset(cfg["dataset"], cfg["split"], cfg["root"] or "")[1])
                    idx = sorted({int(v) for v in np.linspace(int(start), size - 1, int(n_inputs))})
                else:
                    idx = range(int(start), int(start) + int(n_inputs))
                rid = jobs.create_job(cfg, idx, store, name=name or None)
                ensure_worker(store)
                st.success(f"Run {rid} queued; a worker process certifies it in the background.")
            except SemsmoothError as e:
                show_error(e)


# --------------------------------------------------------------------------- progress
def _fmt_eta(s):
    if s is None:
        return "—"
    s = int(max(0.0, s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


@st.fragment(run_every=2.0)
def progress_panel() -> None:
    store.reap()
    runs = [r for r in store.list_runs() if r["kind"] == "run"]
    active = [r for r in runs if r["status"] in ACTIVE]
    if any(r["status"] == "queued" for r in active) and jobs.live_worker(store) is None:
        ensure_worker(store)  # e.g. a worker that ended just before the last run was queued
    was_active = st.session_state.get("results_active", set())
    st.session_state["results_active"] = {r["id"] for r in active}
    if was_active - st.session_state["results_active"]:
        st.rerun()  # a run ended: redraw the whole page so that the charts below include all its rows
    stopped = [r for r in runs if r["status"] in ("cancelled", "failed") and r["done"] < r["total"]][:5]
    if not active and not stopped:
        st.caption("No run in progress.")
        return
    for r in active + stopped:
        p = progress_info(r)
        c1, c2 = st.columns([5, 1])
        rate = "—" if p["forward_per_second"] is None else f"{p['forward_per_second']:,.0f}"
        c1.progress(p["fraction"], text=f"**{r['id']}: {r['name']}** — {r['status']}, {p['done']:,}/{p['total']:,} "
                                        f"inputs, {rate} forward passes/s, ETA {_fmt_eta(p['eta_seconds'])}")
        if r.get("error"):
            c1.caption(f"Error: {r['error']}")
        if r["status"] in ACTIVE:
            if c2.button("Cancel", key=f"cancel_{r['id']}", disabled=r["cancel"]):
                store.request_cancel(r["id"])
                st.rerun()
        elif c2.button("Resume", key=f"resume_{r['id']}"):
            try:
                store.reap()
                store.requeue(r["id"])
                ensure_worker(store)
            except SemsmoothError as e:
                show_error(e)
            st.rerun()


st.subheader("Runs in progress")
progress_panel()
attack_curves()  # empirical robust accuracy beside certified accuracy (benchmarks/attack_table.py)

# --------------------------------------------------------------------------- pick runs / import
st.subheader("Compare runs and logs")
up = st.file_uploader("Import a certify log (Cohen-format TSV: idx label predict radius correct time; "
                      f"{limit_text('log')}, 100,000 rows)",
                      type=["tsv", "txt", "csv"], key="results_upload")
unit_in = st.text_input("Radius unit of the imported log", "l2 (pixel scale [0,1])", key="results_unit")
if up is not None:
    digest = hashlib.sha256(up.getvalue()).hexdigest()[:16]
    done_imports = st.session_state.setdefault("results_imported", {})
    if digest not in done_imports:
        try:
            bar = st.progress(0.0, text="Reading the log")
            done_imports[digest] = import_tsv(
                store, up.getvalue(), name=up.name, radius_unit=unit_in,
                progress=lambda d, t: bar.progress(min(1.0, d / max(t, 1)), text=f"Reading the log: {d / max(t, 1):.0%}"))
            bar.empty()
            st.success(f"Imported {up.name} as run {done_imports[digest]}.")
        except SemsmoothError as e:
            show_error(e)

runs = store.list_runs()
usable = [r for r in runs if r["done"] > 0]
if not usable:
    st.info("No results yet: start a run above, run `python -m semsmooth_core runs start ...`, or import a log.")
    st.stop()
with st.expander(f"All runs in the store ({len(runs)})"):
    st.dataframe(pd.DataFrame([{k: r[k] for k in ("id", "name", "kind", "status", "done", "total", "error")}
                               for r in runs]), hide_index=True, width="stretch")
# labels without the status: a label that says "running, 14/30" goes stale when the run ends
labels = {r["id"]: f"{r['id']}: {r['name']} ({'imported log' if r['kind'] == 'import' else 'run'})" for r in usable}
status = {r["id"]: r for r in usable}


@st.cache_data(ttl=2.0, show_spinner=False)
def _rows(db: str, run_id: int, done: int) -> list[dict]:
    return Store(db).rows(run_id)


def _rows_of(rid: int) -> list[dict]:
    return _rows(str(store.path), rid, status[rid]["done"])


def _unit(rid: int) -> str:
    return next((x.get("radius_unit") for x in _rows_of(rid) if x.get("radius_unit")), "unit unknown")


ours = [r["id"] for r in usable if r["kind"] == "run"]
if "results_pick" not in st.session_state:
    # first visit: the newest run of ours, and the newest imported log if its radii are in the same unit
    default = ours[:1] or [r["id"] for r in usable][:1]
    newest_import = next((r["id"] for r in usable if r["kind"] == "import"), None)
    if newest_import is not None and newest_import not in default and (
            not default or _unit(newest_import) == _unit(default[0])):
        default.append(newest_import)
    picks = default
else:
    picks = [i for i in st.session_state.get("results_pick") or [] if i in labels]
    last_seen = st.session_state.get("results_last_id")
    if last_seen is not None:  # a run that got its first rows since the last redraw (e.g. started on Certify)
        picks += [i for i in ours if i > last_seen and i not in picks][:1]
wanted = st.session_state.get("results_run")
if wanted in labels:
    st.session_state.pop("results_run")
    picks = [wanted] + [i for i in picks if i != wanted]
elif wanted is not None:
    st.caption(f"Run {wanted} is selected as soon as its first input is certified.")
st.session_state["results_last_id"] = max(labels)
st.session_state["results_pick"] = picks
picked = st.multiselect("Runs to show", list(labels), format_func=labels.get, key="results_pick")
if not picked:
    st.stop()
st.caption("  \n".join(f"**{labels[i]}** — {status[i]['status']}, {status[i]['done']:,}/{status[i]['total']:,} "
                       "inputs done" for i in picked))

data = {rid: _rows_of(rid) for rid in picked}
meta = {rid: store.get_run(rid) for rid in picked}
units = {rid: _unit(rid) for rid in picked}
unit_label = "; ".join(sorted(set(units.values())))
groups = {u: [rid for rid in picked if units[rid] == u] for u in dict.fromkeys(units[rid] for rid in picked)}
if len(groups) > 1:
    st.info(f"The selected runs certify radii in different units ({unit_label}): one chart per unit.")

# --------------------------------------------------------------------------- curves
curve_figs = []
for unit, rids in groups.items():
    fig_curve = go.Figure()
    for k, rid in enumerate(rids):
        rows = data[rid]
        grid = radius_grid(rows, 300)
        color = px.colors.qualitative.Plotly[k % len(px.colors.qualitative.Plotly)]
        fig_curve.add_trace(go.Scatter(x=grid, y=accuracy_curve(rows, grid), mode="lines", line_shape="hv",
                                       name=labels[rid], line=dict(color=color)))
        cap = n_ceiling(meta[rid]["params"]) if meta[rid]["kind"] == "run" else None
        if cap is not None and cap > 0:
            fig_curve.add_vline(x=cap, line_dash="dot", line_color=color,
                                annotation_text=f"n-ceiling {fmt(cap, 3)} (run {rid})", annotation_position="top left")
    fig_curve.update_layout(title=f"Certified accuracy vs radius ({unit})", xaxis_title=f"radius r ({unit})",
                            yaxis_title="certified accuracy (fraction of all inputs)", yaxis_range=[0, 1.02],
                            height=420, margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.2))
    st.plotly_chart(fig_curve, width="stretch")
    curve_figs.append(fig_curve)
if any(meta[rid]["kind"] == "run" for rid in picked):
    st.caption("Dotted line: the n-ceiling, the largest radius the run's n and α allow for any input (all votes "
               "for one class); radii piling up there mean a larger n would certify more.", help=hint("n_cap"))
fig_curve = curve_figs[0]

# --------------------------------------------------------------------------- table 2
st.markdown("**Summary in the form of Fischer et al., Table 2** (f: base classifier on clean inputs, "
            "g: smoothed classifier; radius percentiles over certified-correct inputs)")
table = pd.DataFrame([{"run": labels[rid].split(" (")[0], "unit": units[rid]} | table_row(rows, meta[rid]["params"])
                      for rid, rows in data.items()])
st.dataframe(table, hide_index=True, width="stretch")

# --------------------------------------------------------------------------- histograms
first = picked[0]
hist_unit = units[first]  # one radius axis: the runs in the first run's unit
hist = pd.DataFrame([{"run": labels[rid].split(" (")[0], "radius": x["radius"], "class": str(x["label"])}
                     for rid in groups[hist_unit] for x in data[rid] if x["correct"] and x["prediction"] != -1])
h1, h2 = st.columns(2)
fig_hist = px.histogram(hist, x="radius", color="run", barmode="overlay", nbins=40, opacity=0.6) if len(hist) else go.Figure()
fig_hist.update_layout(title=f"Radius of certified (correct) inputs ({hist_unit})", xaxis_title=f"radius ({hist_unit})",
                       yaxis_title="inputs", height=380, legend=dict(orientation="h", y=-0.3))
h1.plotly_chart(fig_hist, width="stretch")
per_class = hist[hist["run"] == labels[first].split(" (")[0]] if len(hist) else hist
fig_cls = (px.histogram(per_class, x="radius", color="class", nbins=30,
                        category_orders={"class": sorted(per_class["class"].unique(), key=int)})
           if len(per_class) else go.Figure())
if len(per_class) and float(per_class["radius"].max()) > 0:
    # one set of 30 bins from 0 for every class, the largest radius inside the last one (radii often
    # pile up at the largest that n can certify)
    top = float(per_class["radius"].max())
    fig_cls.update_traces(xbins=dict(start=0.0, end=top * 31 / 30, size=top / 30))
    fig_cls.update_xaxes(range=[0.0, top * 31 / 30])
fig_cls.update_layout(title=f"Per true class — {labels[first].split(' (')[0]}", xaxis_title=f"radius ({units[first]})",
                      yaxis_title="inputs", height=380, legend=dict(orientation="h", y=-0.3))
h2.plotly_chart(fig_cls, width="stretch")


# --------------------------------------------------------------------------- per-input table
@st.cache_data(show_spinner=False, max_entries=4)
def _thumbs(dataset: str, split: str, root: str | None, indices: tuple[int, ...]) -> dict[int, str]:
    try:
        xs, _ = cached_dataset(dataset, split, root or "")
    except SemsmoothError:
        return {}
    out = {}
    for i in indices:
        if 0 <= i < len(xs):
            buf = io.BytesIO()
            Image.fromarray(tensor_to_image(xs[i], 56)).save(buf, format="PNG")
            out[i] = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    return out


st.subheader("Per input")
if st.session_state.get("results_one") not in picked:
    st.session_state.pop("results_one", None)
one = st.selectbox("Run", picked, format_func=labels.get, key="results_one")
df = pd.DataFrame(data[one])
params = meta[one]["params"]
if meta[one]["kind"] == "run" and params.get("dataset"):
    th = _thumbs(params["dataset"], params.get("split") or "heldout", params.get("root"),
                 tuple(int(i) for i in df["index"].head(THUMBS)))
    df.insert(0, "image", df["index"].map(th))
event = st.dataframe(df, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                     key="results_table", column_config={"image": st.column_config.ImageColumn("input", width="small")})
sel = getattr(getattr(event, "selection", None), "rows", None) or []
if sel:
    idx = int(df.iloc[sel[0]]["index"])
    if meta[one]["kind"] != "run":
        st.info(f"Input {idx} belongs to an imported log; its images are not available here.")
    elif Path(CERTIFY_PAGE).exists():
        st.session_state["certify_index"], st.session_state["certify_run"] = idx, one
        st.switch_page(CERTIFY_PAGE)
    else:
        st.info("The Certify page is not available in this version.")

# --------------------------------------------------------------------------- downloads
st.subheader("Downloads")
d1, d2, d3, d4 = st.columns(4)
rows_one = data[one]
d1.download_button("Rows (CSV)", pd.DataFrame(rows_one).to_csv(index=False), f"run_{one}.csv", "text/csv")
d2.download_button("Rows (Cohen TSV)", export_tsv(rows_one), f"run_{one}.tsv", "text/tab-separated-values")
d3.download_button("Summary (JSON)", pd.Series(summarize(rows_one, radius_unit=units[one])).to_json(),
                   f"run_{one}_summary.json", "application/json")
d4.download_button("Curves (HTML)", fig_curve.to_html(include_plotlyjs="cdn"), "certified_accuracy.html", "text/html")
if importlib.util.find_spec("kaleido") is not None:
    if st.button("Render the curves as PNG"):
        try:
            st.download_button("Curves (PNG)", fig_curve.to_image(format="png"), "certified_accuracy.png", "image/png")
        except Exception as e:  # kaleido needs a browser; say why it failed
            show_error(f"PNG export failed: {e}")
else:
    st.caption("PNG export needs the optional package `kaleido` (and a Chromium), which is not installed; "
               "every chart's camera button (top right) saves a PNG in the browser. The HTML figure loads "
               "plotly.js from its CDN when opened.")
