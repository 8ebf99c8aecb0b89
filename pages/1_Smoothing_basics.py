"""Smoothing basics: Gaussian noise smoothing on one digit — noisy copies, votes, a certified l2 radius, and how it depends on p_A, n and alpha."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from pages._shared import (current_model, end_work, fmt, generator, hint, progress_callback, sample_picker,
                           show_error, start_work, stopped_notice, tensor_to_image)
from semsmooth_core import stats
from semsmooth_core.smoothing import ABSTAIN, certify_noise, count_votes, gaussian_batch_maker, model_device
from semsmooth_core.timing import estimate_seconds, format_duration, measure_seconds_per_forward
from semsmooth_core.validation import SemsmoothError, check_alpha, check_n0_n, check_sigma

UNIT = "l2, pixel scale [0,1]"
N_GRID = 8      # noisy copies shown
N_VOTES = 200   # votes in the bar chart
CONFIRM_ABOVE_S = 180.0  # a certification estimated to take longer asks for a confirmation

st.title("Smoothing basics")
st.markdown(
    "The **smoothed classifier** g(x) returns the class that the base classifier f predicts most "
    "often on x + ε with ε ~ N(0, σ²I). Cohen et al.'s CERTIFY (Fischer et al., Thm 3.1, Alg. 1) "
    "picks the top class on n0 noisy copies, counts how often f still predicts it on n fresh "
    "copies, bounds p_A from below with a one-sided Clopper-Pearson interval at level α and "
    "certifies the l2 radius **R = σ Φ⁻¹(p̲_A)**: no perturbation with ‖δ‖₂ < R changes g's "
    "prediction (with probability ≥ 1 − α over the sampling).")

loaded = current_model()
model, card = loaded if loaded is not None else (None, None)

left, right = st.columns([1, 2.2], gap="large")
with left:
    st.subheader("Input and noise")
    x, label, caption = sample_picker("sb_index")
    sigma_in = st.number_input("σ — noise standard deviation (pixel scale [0,1])", value=0.25,
                               step=0.05, format="%.3f", key="sb_sigma",
                               help=hint("sigma", "Larger σ: larger possible radii, but noisier votes. "
                                                  "Pixels live in [0, 1], so σ above 1 drowns the image."))

try:
    sigma = check_sigma(sigma_in, "σ")
except SemsmoothError as e:
    show_error(e)
    st.stop()
if sigma > 1.0:
    st.warning(f"σ = {fmt(sigma)} is larger than the whole pixel range [0, 1]: every noisy copy is "
               "essentially pure noise, so the votes say little about this image and the model "
               "(trained with much smaller noise) mostly guesses. Typical values: 0.12–1.")
train_sigma = (card or {}).get("sigma_eps", (card or {}).get("sigma"))
if isinstance(train_sigma, (int, float)) and not isinstance(train_sigma, bool) and \
        not 0.5 * train_sigma <= sigma <= 2 * train_sigma:
    st.caption(f"The model was trained with noise σ = {fmt(train_sigma)}; far from that σ its votes "
               "under noise are less reliable (the certificate stays valid, it is just smaller or abstains).")


@st.cache_data(show_spinner=False, max_entries=32)
def _noisy_and_votes(_x, x_key: str, sigma: float, seed: int, _model, model_key: str):
    g = generator()
    noisy = gaussian_batch_maker(_x, sigma, "cpu", g)(N_GRID)
    counts = None
    if _model is not None:
        make = gaussian_batch_maker(_x, sigma, model_device(_model), g)
        counts = count_votes(_model, make, N_VOTES, batch_size=N_VOTES).tolist()
    return noisy, counts


with right:
    st.subheader(f"{N_GRID} noisy copies x + N(0, σ²I), σ = {fmt(sigma)}")
    try:
        noisy, counts = _noisy_and_votes(x, caption, sigma, int(st.session_state.get("seed", 0)),
                                         model, f"{st.session_state.get('model_name')}|{card and card.get('sha256')}")
    except Exception as e:  # noqa: BLE001 -- any model failure: one line, page stays up
        show_error(f"the model cannot classify this input ({type(e).__name__}: {str(e).strip()[:160]})")
        st.stop()
    for i, (col, v) in enumerate(zip(st.columns(N_GRID, gap="small"), noisy)):
        col.image(tensor_to_image(v, 112), caption=f"copy {i + 1}", width="stretch")
    if counts is not None:
        top = int(np.argmax(counts))
        fig = go.Figure(go.Bar(x=list(range(len(counts))), y=counts,
                               marker_color=["#d62728" if c == top else "#9aa5b1" for c in range(len(counts))],
                               hovertemplate="class %{x}: %{y} votes<extra></extra>"))
        fig.update_layout(title=f"Base classifier's votes on {N_VOTES} noisy copies (true label {label})",
                          xaxis_title="class", yaxis_title="votes (count)", height=300,
                          margin=dict(l=10, r=10, t=50, b=10))
        fig.update_xaxes(dtick=1)
        st.plotly_chart(fig, width="stretch")

# --------------------------------------------------------------------------- certify
st.divider()
st.subheader("Certify")
c1, c2, c3, c4 = st.columns(4)
n0_in = c1.number_input("n0 — selection samples", min_value=1, value=100, step=50, key="sb_n0",
                        help=hint("n0"))
n_in = c2.number_input("n — estimation samples", min_value=1, value=1000, step=500, key="sb_n",
                       help=hint("n", "More samples raise the ceiling and tighten p̲_A, but only when most votes "
                                      "already go to one class."))
alpha_in = c3.number_input("α — failure probability", value=0.001, step=0.001, format="%.4f",
                           key="sb_alpha", help=hint("alpha"))
batch_in = c4.number_input("batch size", min_value=1, value=500, step=100, key="sb_batch",
                           help="Noisy copies per forward pass (memory vs speed).")

try:
    n0, n = check_n0_n(n0_in, n_in)
    alpha = check_alpha(alpha_in, "α")
except SemsmoothError as e:
    show_error(e)
    st.stop()



@st.cache_resource(show_spinner="Timing the model on this device…", max_entries=16)
def _seconds_per_forward(_model, model_key: str, shape: tuple, batch: int) -> float:
    """Seconds per forward pass from a short timed warm-up (semsmooth_core.timing)."""
    return measure_seconds_per_forward(_model, torch.zeros(shape), batch)


params = dict(index=caption, label=label, sigma=sigma, n0=n0, n=n, alpha=alpha,
              seed=int(st.session_state.get("seed", 0)), model=str(st.session_state.get("model_name")))
confirmed = True
if model is not None:
    try:
        spf = _seconds_per_forward(model, f"{params['model']}|{card and card.get('sha256')}", tuple(x.shape),
                                   int(batch_in))
        est = estimate_seconds(n0 + n, spf)
        st.caption(f"Estimated time: about **{format_duration(est)}** for n0 + n = {n0 + n:,} forward passes "
                   f"(measured {1 / max(spf, 1e-12):,.0f} forward passes per second on this device).",
                   help=hint("n_forward"))
        if est > CONFIRM_ABOVE_S:
            confirmed = st.checkbox(f"Yes, run it although it takes about {format_duration(est)}", key="sb_confirm",
                                    help="A Stop button appears while it runs.")
    except Exception:  # noqa: BLE001 -- no estimate is no reason to stop the page; Certify reports errors
        pass
stopped_notice("sb_certify")
if st.button("Certify", type="primary", key="sb_certify", disabled=model is None or not confirmed):
    stop = start_work("sb_certify", "the certification")
    bar = st.progress(0.0, text="Sampling…")
    try:
        cert = certify_noise(model, x, sigma, n0, n, alpha, batch_size=int(batch_in),
                             generator=generator(), progress=progress_callback(bar, "Certifying"))
        st.session_state["sb_result"] = (params, cert)
    except SemsmoothError as e:
        show_error(e)
    except Exception as e:  # noqa: BLE001 (Stop's rerun is a BaseException: not caught here)
        show_error(f"certification failed ({type(e).__name__}: {str(e).strip()[:160]})")
    end_work("sb_certify", stop)
    bar.empty()

result = st.session_state.get("sb_result")
cert = None
if result is not None:
    old_params, cert = result
    with st.container(border=True):
        if old_params != params:
            st.caption("Result of an earlier run (inputs have changed since; press Certify again).")
        m = st.columns([0.9, 2.0, 1.0, 1.0, 0.8])
        m[0].metric("Prediction", "abstain" if cert.label == ABSTAIN else f"class {cert.label}")
        m[1].metric(f"Certified radius ({UNIT})", f"{cert.radius:.3f}",
                    help=hint("radius", "Here: the l2 norm of the largest certified change, pixel values in [0,1]."))
        m[2].metric("p̲_A lower bound", f"{cert.p_lower:.4f}",
                    help=hint("p_lower", "One-sided Clopper-Pearson bound at confidence 1 − α."))
        m[3].metric("Forward passes", f"{cert.n_forward:,}", help=hint("n_forward"))
        m[4].metric("Time", f"{cert.seconds:.2f} s", help="wall-clock seconds for the certification")
        s, a, n_old = old_params["sigma"], old_params["alpha"], old_params["n"]
        cap = stats.max_radius(s, n_old, a)
        top_frac = max(cert.counts) / n_old if cert.counts else float("nan")
        if cert.label == ABSTAIN:
            if top_frac <= 0.5:
                st.markdown(f"**Abstained.** No class got more than half of the {n_old:,} votes (the most: "
                            f"{top_frac:.1%}), so p̲_A = {cert.p_lower:.4f} ≤ 1/2. **A larger n cannot help**: "
                            "it only pins the fraction down more tightly, and it stays at or below 1/2. Use a "
                            f"smaller σ than {fmt(s)} (or a model trained with noise σ = {fmt(s)}).")
            else:
                st.markdown(f"**Abstained.** The top class got {top_frac:.1%} of the {n_old:,} votes, but with "
                            f"only n = {n_old:,} samples its lower bound p̲_A = {cert.p_lower:.4f} does not exceed "
                            "1/2. A larger n can help here (the bound gets closer to the observed fraction), "
                            "and so can a smaller σ.")
            top_cls = int(np.argmax(cert.counts)) if cert.counts else None
            if top_cls is not None and old_params.get("label") is not None and top_cls != old_params["label"]:
                st.warning(f"Most votes went to class {top_cls}, not to the true label {old_params['label']}: at "
                           f"σ = {fmt(s)} the noise hides this digit from the model. More samples would only make "
                           "a wrong answer surer; a smaller σ is the fix.")
        else:
            votes = (f"The model voted for it on {cert.counts[cert.label]:,} of {old_params['n']:,} "
                     "estimation copies. ") if cert.counts else ""
            st.markdown(
                f"**What is guaranteed.** With probability at least 1 − α = {1 - a:.2%} over the "
                f"random noise drawn here, the smoothed classifier (majority vote of the model under "
                f"N(0, {s:g}²I) noise) predicts **class {cert.label}** for this input *and* for every "
                f"input within l2 distance **{cert.radius:.3f}** of it (pixel scale [0,1]), whatever "
                f"the change. {votes}It says nothing about the base model itself, nor about larger "
                "changes.")
            if old_params.get("label") is not None and cert.label != old_params["label"]:
                st.warning(f"The certified class {cert.label} is **not** the true label "
                           f"({old_params['label']}): the smoothed classifier is wrong on "
                           "this input, and robustly so. A larger n cannot change that; a smaller σ or a model "
                           "trained with this noise can.")
            if cert.radius >= cap * (1 - 1e-9):
                st.info(f"**This radius is the n-ceiling.** All {n_old:,} estimation copies voted for class "
                        f"{cert.label}, and with n = {n_old:,} at α = {fmt(a)} no input can certify more than "
                        f"σ Φ⁻¹(α^(1/n)) = {cap:.3f}. A larger n raises the ceiling (n = {10 * n_old:,}: "
                        f"{stats.max_radius(s, 10 * n_old, a):.3f}).", icon=":material/vertical_align_top:")
            else:
                st.caption(f"The n-ceiling at n = {n_old:,}, α = {fmt(a)}: {cap:.3f} (the largest radius these "
                           "settings can give any input).", help=hint("n_cap"))

# --------------------------------------------------------------------------- curves
SIGMAS = (0.125, 0.25, 0.5)  # comparison curves besides the chosen σ


@st.cache_data(show_spinner=False, max_entries=64)
def _radius_vs_p(sigma: float) -> tuple[np.ndarray, list[float]]:
    """stats.radius at each point of a grid of p̲_A (denser near 1, where R grows fast)."""
    p = np.unique(np.concatenate([np.linspace(0.5, 0.99, 50), 1 - np.logspace(-2, -6, 30)]))
    return p, [stats.radius(sigma, float(v)) for v in p]


@st.cache_data(show_spinner=False, max_entries=64)
def _cp_vs_n(frac: float, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    n = np.unique(np.round(np.logspace(1, 6, 60)).astype(int))
    return n, stats.cp_lower(np.round(frac * n).astype(int), n, alpha)


@st.cache_data(show_spinner=False, max_entries=64)
def _max_radius_vs_n(sigma: float, alpha: float) -> tuple[np.ndarray, list[float]]:
    n = np.unique(np.round(np.logspace(1, 6, 40)).astype(int))
    return n, [stats.max_radius(sigma, int(m_), alpha) for m_ in n]


st.divider()
st.subheader("How the radius depends on p_A, n and α")
t1, t2, t3 = st.tabs(["Radius vs p̲_A", "Clopper-Pearson bound vs n", "Largest radius vs n"])

with t1:
    fig = go.Figure()
    for s in sorted({*SIGMAS, sigma}):
        p_grid, r = _radius_vs_p(s)
        fig.add_trace(go.Scatter(x=p_grid, y=r, mode="lines", name=f"σ = {fmt(s)}",
                                 line=dict(width=3 if s == sigma else 1.5),
                                 hovertemplate="p̲_A = %{x:.4f}<br>R = %{y:.3f}<extra></extra>"))
    if cert is not None and cert.label != ABSTAIN and result[0]["sigma"] == sigma:
        fig.add_trace(go.Scatter(x=[cert.p_lower], y=[cert.radius], mode="markers", name="your certificate",
                                 marker=dict(size=12, color="#d62728", symbol="star")))
    fig.update_layout(xaxis_title="p̲_A (lower confidence bound on the top-class probability)",
                      yaxis_title=f"certified radius R ({UNIT})", height=380,
                      margin=dict(l=10, r=10, t=30, b=10))
    st.plotly_chart(fig, width="stretch")
    st.caption("R = σ Φ⁻¹(p̲_A) grows without bound as p̲_A → 1 and is 0 at p̲_A ≤ 1/2 (abstain).")

with t2:
    frac = st.slider("Observed fraction of votes for the top class (n_A / n)", 0.50, 1.00, 0.99, 0.005,
                     key="sb_frac", help="n_A: how many of the n estimation copies voted for the top class. "
                                         + hint("p_lower"))
    n_grid, lo = _cp_vs_n(frac, alpha)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=n_grid, y=lo, mode="lines", name=f"p̲_A at α = {fmt(alpha)}",
                             hovertemplate="n = %{x:,}<br>p̲_A = %{y:.4f}<extra></extra>"))
    fig.add_hline(y=frac, line_dash="dot", annotation_text=f"observed n_A/n = {frac:g}")
    fig.add_hline(y=0.5, line_color="#999", annotation_text="1/2: abstain below")
    fig.update_layout(xaxis_title="n (estimation samples, log scale)", yaxis_title="p̲_A (probability)",
                      xaxis_type="log", height=380, margin=dict(l=10, r=10, t=30, b=10))
    st.plotly_chart(fig, width="stretch")
    st.caption("One-sided Clopper-Pearson lower bound at confidence 1 − α: the gap to the observed "
               "fraction shrinks roughly like 1/√n.")

with t3:
    fig = go.Figure()
    for s in sorted({*SIGMAS, sigma}):
        n_grid, r = _max_radius_vs_n(s, alpha)
        fig.add_trace(go.Scatter(x=n_grid, y=r, mode="lines", name=f"σ = {fmt(s)}",
                                 line=dict(width=3 if s == sigma else 1.5),
                                 hovertemplate="n = %{x:,}<br>R_max = %{y:.3f}<extra></extra>"))
    fig.update_layout(xaxis_title="n (estimation samples, log scale)",
                      yaxis_title=f"largest certifiable radius ({UNIT})", xaxis_type="log", height=380,
                      margin=dict(l=10, r=10, t=30, b=10))
    st.plotly_chart(fig, width="stretch")
    st.caption(f"Even if all n copies vote for the top class, p̲_A = α^(1/n) < 1, so the radius is "
               f"capped: σ Φ⁻¹(α^(1/n)) at α = {fmt(alpha)} (Fischer et al., App. C.2).")
