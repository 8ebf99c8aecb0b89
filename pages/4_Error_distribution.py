"""Error distribution: sample ‖ε(β, γ, x)‖₂ over β ~ N(0, σ²), γ ~ U(C), x from a dataset; histogram with E marked, q_E and its Clopper-Pearson lower bound, quantiles; overlay two settings (Fischer §6, Fig. 6, Tables 1 and 4)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from pages._shared import (cached_dataset, end_work, fmt, fmt_units, hint, progress_callback, seed, show_error,
                           start_work, stopped_notice)
from semsmooth_core import errors, transforms
from semsmooth_core.data import embedded_photos
from semsmooth_core.data.uploads import decode_image
from semsmooth_core.preprocess import Preprocess, build
from semsmooth_core.timing import format_duration
from semsmooth_core.validation import SemsmoothError

st.title("Error distribution")
st.markdown(
    "The inner certificate of double smoothing must cover ‖ε(β, γ, x)‖₂ ≤ E. Here ε is sampled "
    "with β ~ N(0, σ²) (the smoothing), γ ~ U(C) (a random attacker in the range C) and x from a "
    "dataset (Fischer et al. §6). **q_E** = P(‖ε‖₂ < E) is estimated with a one-sided "
    "Clopper-Pearson lower bound **q̲_E** at confidence 1 − α_E; 1 − q̲_E enters ρ of Lemma 4.3. "
    "Preprocessing (vignette, low-pass, Gaussian filter) is applied to both terms of ε, as the "
    "classifier sees it.")

COMP = [n for n in transforms.names() if transforms.get(n).modality == "image" and transforms.get(n).composable]


@st.cache_data(show_spinner="Loading photos…", max_entries=8)
def _photos(size: int, gray: bool) -> torch.Tensor:
    """All embedded photos, centre-cropped square and resized to size×size: ``[N,C,size,size]``."""
    from PIL import Image
    out = []
    for p in embedded_photos().values():
        img = Image.open(p)
        s = min(img.size)
        img = img.crop(((img.width - s) // 2, (img.height - s) // 2, (img.width + s) // 2, (img.height + s) // 2))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        out.append(decode_image(buf.getvalue(), grayscale=gray, size=(size, size)))
    if not out:
        raise SemsmoothError("no embedded photos found in assets/photos")
    return torch.stack(out)


def _data(source: str, size: int, gray: bool) -> torch.Tensor:
    if source == "Embedded MNIST (held-out)":
        return cached_dataset("mnist", "heldout")[0]
    return _photos(size, gray)


left, right = st.columns([1, 2.3], gap="large")
with left:
    st.subheader("Setting A")
    source = st.radio("Data", ["Embedded MNIST (held-out)", "Embedded photos"], key="ed_source")
    size, gray = 28, True
    if source == "Embedded photos":
        size = st.select_slider("Photo size (pixels)", [32, 64, 128, 256, 512], value=64, key="ed_size")
        gray = st.checkbox("Greyscale", value=True, key="ed_gray")
    tname = st.selectbox("Transformation ψ", COMP, index=COMP.index("rotation") if "rotation" in COMP else 0,
                         key="ed_transform", format_func=lambda n: transforms.get(n).label or n, help=hint("psi"))
    t = transforms.get(tname)
    ip = st.selectbox("Interpolation", list(t.interpolations), index=1 if len(t.interpolations) > 1 else 0,
                      key="ed_interp", disabled=not t.uses_interpolation)
    sig, rng = [], []
    for i, (pn, unit) in enumerate(zip(t.param_names, t.units)):
        c1, c2 = st.columns(2)
        sig.append(c1.number_input(f"σ_γ {pn} ({unit})", value=float(t.default_sigma[i]), key=f"ed_s_{tname}_{i}",
                                   format="%.3f", help=hint("sigma_gamma", "β is drawn from N(0, σ_γ²).")))
        rng.append(c2.number_input(f"C = ±R, R {pn} ({unit})", value=float(t.default_range[i][1]),
                                   key=f"ed_r_{tname}_{i}", format="%.3f",
                                   help=hint("C", "γ is drawn uniformly from [−R, R].")))
    vig = st.checkbox("Vignette", value=False, key="ed_vig")
    lp = st.checkbox("FFT low-pass", value=False, key="ed_lp")
    band = st.number_input("Bandwidth B", 1.0, 512.0, 8.0, 1.0, key="ed_band", disabled=not lp, help=hint("B"))
    ga = st.checkbox("Gaussian filter", value=False, key="ed_ga")
    gk = st.select_slider("Kernel size", [3, 5, 7, 9], value=5, key="ed_gk", disabled=not ga)
    gs = st.number_input("Kernel std (pixels)", 0.1, 10.0, 1.0, 0.1, key="ed_gs", disabled=not ga)
    norm = st.selectbox("Norm over", list(errors.NORMS), key="ed_norm",
                        help=hint("k_parts", "whole: one E for the whole input. A sample is covered when "
                                             "every part is below E."))
    quant = st.checkbox("Round to k/255 (realistic attacker)", value=True, key="ed_quant")
    n = int(st.number_input("Samples", 10, 200000, 2000 if source.startswith("Embedded MNIST") else 200, 500,
                            key="ed_n", help="How many triples (β, γ, x) are drawn; more samples give a "
                                             "tighter q̲_E but take longer (sampling starts on the button)."))
    st.subheader("Bound")
    E_in = st.number_input("E (ℓ2, pixel scale) — 0: use the E that reaches q", 0.0, 1000.0, 0.0, 0.05,
                           key="ed_E", format="%.3f", help=hint("E"))
    q = st.number_input("Target q for q̲_E", 0.5, 0.9999, 0.95, 0.01, key="ed_q", format="%.4f",
                        help=hint("q_target"))
    alpha = st.number_input("α_E", 1e-6, 0.5, 0.001, format="%.4f", key="ed_alpha", help=hint("alpha_E"))
    st.subheader("Overlay setting B")
    vary = st.selectbox("Compare with", ["nothing", "another interpolation", "another preprocessing",
                                         "another image size (photos)"], key="ed_vary")
    ip_b, pre_b, size_b = ip, None, size
    if vary == "another interpolation":
        ip_b = st.selectbox("Interpolation B", list(t.interpolations), key="ed_interp_b",
                            index=len(t.interpolations) - 1, help="The interpolation of setting B (red).")
    elif vary == "another preprocessing":
        pre_b = st.text_input("Preprocessing B (e.g. none, vignette+lowpass:8, gauss:5:1)", "none", key="ed_pre_b",
                              help=hint("P", "Here: the preprocessing of setting B (red)."))
    elif vary == "another image size (photos)":
        size_b = st.select_slider("Photo size B", [32, 64, 128, 256, 512], value=256, key="ed_size_b",
                                  help="The photo size of setting B (red), in pixels.")

try:
    pre_a = build(vig, 0.0, band if lp else None, f"{gk}:{gs}" if ga else None)
    setup_a = errors.ErrorSetup(tname, ip, sig, [(-r, r) for r in rng], pre_a, quant, norm)
    settings = [("A", setup_a, size)]
    if vary != "nothing":
        pb = Preprocess.parse(pre_b) if pre_b is not None else pre_a
        if vary == "another image size (photos)" and source != "Embedded photos":
            raise SemsmoothError("comparing image sizes needs the embedded photos as data")
        settings.append(("B", errors.ErrorSetup(tname, ip_b, sig, [(-r, r) for r in rng], pb, quant, norm), size_b))
    if any(r < 0 for r in rng):
        raise SemsmoothError("the range R must be >= 0")
except SemsmoothError as e:
    show_error(e)
    st.stop()

cache = st.session_state.setdefault("ed_cache", {})
rates = st.session_state.setdefault("ed_rates", {})  # samples per second by (source, size), from earlier runs
keys = [(label, str(setup.describe()), source, sz, gray, n, seed()) for label, setup, sz in settings]
missing = [k for k in keys if k not in cache]
results = []
with right:
    stopped_notice("ed_sample")
    if missing:
        # sampling takes minutes on large photos: it starts on a button, not on every widget change
        rate = next((rates[(source, k[3])] for k in missing if (source, k[3]) in rates), None)
        est = f" — about {format_duration(len(missing) * n / rate)} at the last measured rate" if rate else ""
        go_slot = st.empty()
        go_clicked = go_slot.button(f"Sample ε ({len(missing) * n:,} samples{est})", type="primary", key="ed_go",
                               help="Draws the samples for the settings on the left. E, q and α_E update "
                                    "without sampling again.")
        if not go_clicked:
            st.info("Settings changed (or nothing sampled yet): press **Sample ε** to draw the samples. "
                    "A Stop button appears while it runs.")
            st.stop()
        go_slot.empty()
        stop = start_work("ed_sample", "the sampling of ε")
        bar = st.progress(0.0, text="Sampling ε")
        for (label, setup, sz), key in zip(settings, keys):
            if key in cache:
                continue
            try:
                data = _data(source, sz, gray)
                cache[key] = errors.sample_errors(setup, data, n, seed=seed(), batch_size=256 if sz > 64 else 1000,
                                                  progress=progress_callback(bar, f"Sampling ε ({label})"))
                rates[(source, sz)] = cache[key].n / max(cache[key].seconds, 1e-9)
            except SemsmoothError as e:
                end_work("ed_sample", stop)
                show_error(e)
                st.stop()
            if len(cache) > 24:
                cache.pop(next(iter(cache)))
        end_work("ed_sample", stop)
        bar.empty()
    for (label, setup, sz), key in zip(settings, keys):
        results.append((label, setup, sz, cache[key]))

    def _desc(setup, sz):
        return f"{setup.interpolation}, P = {setup.preprocess}" + (f", {sz}px" if source == "Embedded photos" else "")

    targets = [errors.E_for_q(s.norms, q, alpha) for _, _, _, s in results]
    E_show = E_in if E_in > 0 else targets[0]["E"]
    if not np.isfinite(E_show):
        st.warning(f"{n} samples cannot show q̲_E ≥ {q:g} at α_E = {alpha:g}: take more samples or set E.")
    allv = np.concatenate([s.worst for *_, s in results])
    hi = float(np.quantile(allv, 0.999)) * 1.05 if len(allv) else 1.0
    if np.isfinite(E_show):
        hi = max(hi, E_show * 1.05)
    fig = go.Figure()
    for (label, setup, sz, s), color in zip(results, ["#1f77b4", "#d62728"]):
        h = errors.histogram(s.norms, bins=60, range_=(0.0, hi))
        ctr = (np.array(h["edges"][1:]) + np.array(h["edges"][:-1])) / 2
        fig.add_bar(x=ctr, y=h["counts"], name=f"{label}: {_desc(setup, sz)}", marker_color=color, opacity=0.6,
                    hovertemplate="‖ε‖₂ ≈ %{x:.3f}: %{y} samples<extra></extra>")
    if np.isfinite(E_show):
        fig.add_vline(x=E_show, line_dash="dash", line_color="black",
                      annotation_text=f"E = {E_show:.3f}", annotation_position="top right")
    part = "" if norm == "whole" else f" (max over {norm} parts)"
    fig.update_layout(barmode="overlay", title=f"‖ε‖₂{part}, {t.label or tname}, σ_γ = {fmt_units(sig, t.units)}, "
                                               f"C = ±{fmt_units(rng, t.units)}, {n:,} samples",
                      xaxis_title="‖ε‖₂ (pixel scale [0,1])", yaxis_title="samples (count)", height=420,
                      legend=dict(orientation="h", y=-0.25), margin=dict(l=10, r=10, t=50, b=10))
    st.plotly_chart(fig, width="stretch")

    rows = []
    for (label, setup, sz, s), tg in zip(results, targets):
        at = errors.q_E(s.norms, E_show, alpha) if np.isfinite(E_show) else {"q_E": float("nan"),
                                                                             "q_E_lower": float("nan")}
        qs = errors.quantiles(s.norms)
        rows.append({"setting": f"{label}: {_desc(setup, sz)}", "n": s.n, "E": E_show, "q_E": at["q_E"],
                     "q_E_lower": at["q_E_lower"], "E_for_q": tg["E"], "q50": qs["q50"], "q90": qs["q90"],
                     "q95": qs["q95"], "q99": qs["q99"], "max": qs["max"],
                     "samples/s": s.n / max(s.seconds, 1e-9)})
    a = rows[0]
    m1, m2, m3 = st.columns(3)
    m1.metric("q_E at E (setting A)", f"{a['q_E']:.4f}", help=hint("q_E", "Here: the fraction of samples with ‖ε‖₂ < E."))
    m2.metric("q̲_E lower bound (A)", f"{a['q_E_lower']:.4f}",
              help=hint("q_E_lower", f"One-sided Clopper-Pearson at confidence 1 − {fmt(alpha)}."))
    m3.metric(f"E reaching q̲_E ≥ {fmt(q)} (A)", f"{a['E_for_q']:.4f}",
              help=hint("E", f"The smallest E whose lower bound q̲_E reaches q = {fmt(q)}."))
    # plain-text row names (a combining underline, as in q̲_E, does not render in the table)
    names = {"n": "n — samples", "E": "E — bound used (l2, pixel scale)",
             "q_E": "q_E — fraction of samples with ‖ε‖₂ < E",
             "q_E_lower": f"lower bound of q_E (Clopper-Pearson, α_E = {fmt(alpha)})",
             "E_for_q": f"E whose lower bound reaches q = {fmt(q)}",
             "q50": "median of ‖ε‖₂", "q90": "90th percentile of ‖ε‖₂", "q95": "95th percentile of ‖ε‖₂",
             "q99": "99th percentile of ‖ε‖₂", "max": "largest ‖ε‖₂ sampled", "samples/s": "samples per second"}
    table = pd.DataFrame(rows).set_index("setting").T.rename(index=names).map(
        lambda v: f"{int(v):,}" if float(v).is_integer() and abs(v) >= 1 else fmt(v, 5))
    table.insert(0, "quantity", table.index)
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"quantity": st.column_config.TextColumn("quantity", width="large")})
    st.caption(f"Same command line: python -m semsmooth_core estimate-error --transform {tname} "
               f"--interpolation {ip} --sigma {' '.join(f'{v:g}' for v in sig)} --range "
               f"{' '.join(f'{v:g}' for v in rng)} --samples {n} --preprocess {pre_a} --norm {norm} "
               f"--alpha-E {alpha:g} --q {q:g} --seed {seed()}" + ("" if quant else " --no-quantize")
               + (" (MNIST only)" if source != "Embedded MNIST (held-out)" else ""))
