"""Certify: one input against a semantic transformation — double smoothing (Fischer §6.2, Lemma 4.3),
plain parameter smoothing (Thm 4.2) or Gaussian noise — with the planner's preview, a progress bar
with stages, a result card, the guarantee in words, a gallery of sampled inputs and the outer counts."""

from __future__ import annotations

import time

import plotly.graph_objects as go
import streamlit as st

from pages._shared import (current_model, generator, progress_callback, sample_picker, show_error,
                           tensor_to_image)
from semsmooth_core import pipeline, planner, smoothing, transforms
from semsmooth_core.preprocess import Preprocess
from semsmooth_core.validation import SemsmoothError

GALLERY = 8
st.title("Certify")
st.markdown(
    "Certify that the **smoothed** classifier keeps its prediction for a whole range of rotations, "
    "translations, scalings or brightness changes — with interpolation and 8-bit rounding taken into "
    "account. **Double smoothing** (Fischer et al. §6.2) samples parameters β ~ N(0, σ_γ²); at each "
    "β an inner Gaussian smoothing (σ_ε) must certify an l2 radius ≥ E, the bound on the "
    "interpolation error; Lemma 4.3 turns the count of such β into a radius in the "
    "transformation's units, corrected by ρ = α_ε + (1 − q̲_E) + α_E.")

loaded = current_model()
model, card = loaded if loaded is not None else (None, None)
image_tf = [n for n in transforms.names() if transforms.get(n).modality == "image"
            and transforms.get(n).composable]

left, right = st.columns([1, 1.6], gap="large")
with left:
    x, label, caption = sample_picker("cf_index")
    kind = st.radio("Smoothing", ["double", "transform", "noise"], horizontal=True, key="cf_kind",
                    help="double: realistic transforms (interpolation, rounding); transform: Thm 4.2 for "
                         "ideal composable transforms; noise: plain Gaussian l2 smoothing.")
    tname = st.selectbox("Transformation", image_tf, index=image_tf.index("rotation") if "rotation" in image_tf else 0,
                         key="cf_tf", disabled=kind == "noise")
    t = transforms.get(tname)
    interp = st.selectbox("Interpolation", list(t.interpolations),
                          index=list(t.interpolations).index("bilinear") if "bilinear" in t.interpolations else 0,
                          key="cf_interp", disabled=not t.uses_interpolation or kind == "noise")
    pp_default = (card or {}).get("preprocess") or ((card or {}).get("augmentation") or {}).get("preprocess") or "none"
    pp_spec = st.text_input("Preprocessing (as the model was trained)", value=str(pp_default), key="cf_pp",
                            help="e.g. vignette+gauss:5:1 or vignette+lowpass:8; E must be measured with the same.")

with right:
    c1, c2, c3 = st.columns(3)
    sigma_gamma = c1.number_input(f"σ_γ ({t.unit})", value=float(t.default_sigma[0]), min_value=0.0,
                                  format="%.3f", key="cf_sg")
    sigma_eps = c2.number_input("σ_ε (pixel scale)", value=0.25, min_value=0.0, format="%.3f", key="cf_se")
    crange = c3.number_input(f"Attacker range C: ± ({t.unit})", value=float(abs(t.default_range[0][1])),
                             min_value=0.0, format="%.3f", key="cf_C")
    e1, e2, e3 = st.columns(3)
    E = e1.number_input("E (l2 bound on ε)", value=0.3, min_value=0.0, format="%.4f", key="cf_E",
                        disabled=kind != "double")
    q_E = e2.number_input("q̲_E (lower bound)", value=0.97, min_value=0.0, max_value=1.0, format="%.4f",
                          key="cf_q", disabled=kind != "double")
    with e3:
        st.write("")
        est = st.button("Estimate E here", key="cf_est", disabled=kind != "double",
                        help="q = 0.98 quantile of ‖ε‖ on 500 training digits (errors module)")
    n1, n2, n3, n4 = st.columns(4)
    n0 = n1.number_input("n0", value=50, min_value=1, step=10, key="cf_n0")
    n_gamma = n2.number_input("n_γ", value=100, min_value=1, step=10, key="cf_ng")
    n_eps = n3.number_input("n_ε", value=200, min_value=1, step=10, key="cf_ne")
    bs = n4.number_input("batch", value=1000, min_value=1, step=100, key="cf_bs")
    a1, a2, a3 = st.columns(3)
    a_g = a1.number_input("α_γ", value=0.001, min_value=0.0, max_value=1.0, format="%.4f", key="cf_ag")
    a_e = a2.number_input("α_ε", value=0.001, min_value=0.0, max_value=1.0, format="%.4f", key="cf_ae")
    a_E = a3.number_input("α_E", value=0.001, min_value=0.0, max_value=1.0, format="%.4f", key="cf_aE")
    sequential = st.checkbox("Sequential inner tests (sound early stopping)", value=True, key="cf_seq")

config = {"model": "page", "smoothing": kind, "transform": tname, "interpolation": interp,
          "sigma_gamma": sigma_gamma if t.dim == 1 else [sigma_gamma] * t.dim, "sigma_eps": sigma_eps,
          "E": E, "q_E_lower": q_E, "n0": int(n0), "n_gamma": int(n_gamma), "n_eps": int(n_eps),
          "alpha_gamma": a_g, "alpha_eps": a_e, "alpha_E": a_E, "attacker_range": [[-crange, crange]] * t.dim,
          "sequential": "looks" if sequential else None, "batch_size": int(bs), "preprocess": pp_spec}

if est:
    with st.spinner("Sampling interpolation errors…"):
        try:
            got = pipeline.estimate_E(pipeline.with_defaults({**config, "E_samples": 500, "q": 0.98,
                                                              "alpha_E": a_E}), pp_spec)
            st.session_state["cf_E_est"] = got
        except SemsmoothError as e:
            show_error(e)
if st.session_state.get("cf_E_est"):
    g = st.session_state["cf_E_est"]
    st.info(f"Estimated E = {g['E']:.4f} with q̲_E = {g['q_E_lower']:.4f} (q̂_E = {g['q_E']:.4f}, "
            f"{g['n']} samples). Enter these values above to use them.")

# ---- planner preview
try:
    c = pipeline.validate_config({**config, "model": "preview"})
    if kind == "double":
        pre = planner.summary_before_run(float(sigma_gamma), sigma_eps, E, q_E, int(n_gamma), int(n_eps), a_g,
                                         a_e, a_E, attacker_max=crange * (t.dim ** 0.5), n0=int(n0))
        p1, p2, p3, p4 = st.columns(4)
        p1.metric("Max certifiable radius", f"{pre['max_radius']:.3g} {t.unit}")
        p2.metric("ρ", f"{pre['rho']:.4f}")
        p3.metric("Inner threshold Φ(E/σ_ε)", f"{pre['inner_threshold']:.4f}")
        p4.metric("Forward passes (max)", f"{pre['forward_passes_max']:,}")
        best = planner.plan_double(int(n_gamma) * int(n_eps), float(sigma_gamma), sigma_eps, [(E, q_E)],
                                   alpha_total=a_g + a_e, alpha_E=a_E, attacker_max=crange * (t.dim ** 0.5))[0]
        st.caption(f"Planner's suggestion for the same budget: n_γ = {best.n_gamma}, n_ε = {best.n_eps}, "
                   f"α_γ = {best.alpha_gamma:.2g}, α_ε = {best.alpha_eps:.2g} (expected radius "
                   f"{best.expected_radius:.3g} {t.unit} under a 99 %-accurate base model).")
    ok = True
except SemsmoothError as e:
    show_error(e)
    ok = False

run = st.button("Certify", type="primary", disabled=not ok or model is None, key="cf_run")
if run:
    bar = st.progress(0.0, text="Starting…")
    stage = {"cb": progress_callback(bar, "Outer selection")}

    def on_stage(name):  # stages: outer selection, transforming the sampled β, inner smoothing
        stage["cb"] = progress_callback(bar, name[:1].upper() + name[1:])

    def progress(done, total):
        stage["cb"](done, total)

    try:
        pp = Preprocess.parse(pp_spec)
        t0 = time.perf_counter()
        cert = pipeline.certify_one(c, x, model, pp if pp else None, generator(1000 + int(st.session_state.get("cf_index", 0))),
                                    progress, on_stage)
        bar.progress(1.0, text=f"Done: {cert.n_forward:,} forward passes in {time.perf_counter() - t0:.1f} s")
        st.session_state["cf_result"] = (cert, label, tname, interp, pp_spec)
    except SemsmoothError as e:
        show_error(e)

res = st.session_state.get("cf_result")
if res:
    cert, true_label, tn, ip, pps = res
    st.subheader("Result")
    m1, m2, m3, m4, m5 = st.columns(5)
    m1.metric("Class", "abstain" if cert.abstained else str(cert.label),
              delta=None if cert.abstained else ("correct" if cert.label == true_label else "wrong"))
    m2.metric("Radius", f"{cert.radius:.3g}", help=cert.radius_unit)
    m2.caption(cert.radius_unit + (" (clipped to C)" if cert.extra.get("clipped") else ""))
    m3.metric("p̲_A", f"{cert.p_lower:.4f}")
    m4.metric("ρ", f"{cert.rho:.4f}")
    m5.metric("Forward passes", f"{cert.n_forward:,}", delta=f"{cert.seconds:.1f} s", delta_color="off")
    st.success(smoothing.explain_certificate(cert))
    ex = cert.extra
    if ex.get("smoothing") == "double":
        g1, g2 = st.columns([1.6, 1])
        with g1:
            st.markdown("**Sampled transformed inputs** (what the inner smoothing saw) and its verdict")
            betas = ex["betas"][:GALLERY]
            try:
                imgs = smoothing.transformed_inputs(x, tn, betas, ip, Preprocess.parse(pps) or None)
                cols = st.columns(4)
                for i, (b, im) in enumerate(zip(betas, imgs)):
                    hits, nn = ex["inner_hits"][i], ex["inner_n"][i]
                    cols[i % 4].image(tensor_to_image(im, 96),
                                      caption=f"β = {', '.join(f'{v:.1f}' for v in b)}: {ex['inner_verdict'][i]} "
                                              f"({hits}/{nn})")
            except SemsmoothError as e:
                show_error(e)
        with g2:
            s = ex["outer_successes"]
            fig = go.Figure(go.Bar(x=["inner certified (≥ E)", "not certified / not run"],
                                   y=[s, ex["n_gamma"] - s], marker_color=["#2ca02c", "#d62728"]))
            fig.update_layout(title="Outer counts over sampled β", height=300, margin=dict(t=40, b=10))
            st.plotly_chart(fig, width="stretch")
            tot = ex["inner_class_totals"]
            fig2 = go.Figure(go.Bar(x=[str(i) for i in range(len(tot))], y=tot))
            fig2.update_layout(title="Inner votes by class (all noisy samples)", height=250,
                               margin=dict(t=40, b=10))
            st.plotly_chart(fig2, width="stretch")
        if ex.get("sequential"):
            st.caption(f"Sequential looks at n_ε ∈ {ex['sequential']['looks']} (α spent "
                       f"{[round(a, 6) for a in ex['sequential']['alphas']]}); "
                       f"{cert.n_forward:,} of {ex['n0'] + ex['n_gamma'] * ex['n_eps']:,} forward passes used"
                       + (f"; stopped early: {ex['stopped_early']}" if ex.get("stopped_early") else ""))
    elif cert.counts:
        fig = go.Figure(go.Bar(x=[str(i) for i in range(len(cert.counts))], y=cert.counts))
        fig.update_layout(title="Votes by class (estimation samples)", height=280, margin=dict(t=40, b=10))
        st.plotly_chart(fig, width="stretch")
