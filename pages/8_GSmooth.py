"""GSmooth: certify blur and pixelate — transformations without a closed form — through a surrogate network with augmented noise (Hao et al.)."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st
import torch

from pages import _guarantee as gu
from pages._attack_panel import attack_panel
from pages._shared import (cached_dataset, cached_model, end_work, generator, progress_callback, sample_picker,
                           show_error, hint, start_work, stopped_notice, tensor_to_image)
from semsmooth_core.gsmooth.certify import NON_RESOLVABLE, certify_gsmooth, estimate_M, gsmooth_batch_maker
from semsmooth_core.gsmooth.experiments import sigma_grid
from semsmooth_core.gsmooth.surrogate import load_surrogate
from semsmooth_core.paths import models_dir
from semsmooth_core.smoothing import certify_transform
from semsmooth_core.explain import diagnose_result
from semsmooth_core.transforms import get
from semsmooth_core.smoothing import box_halfwidth
from semsmooth_core.validation import SemsmoothError, check_alpha, check_n0_n, check_sigma

N_SHOW = 6

st.title("GSmooth")
st.markdown(
    "Blur and pixelate have no closed-form composition, so the parameter smoothing of Fischer et al. "
    "does not apply. **GSmooth** (Hao et al.) trains a surrogate **τ(θ, x) = H(A₁θ + b₁ + F₂(x))** "
    "(Eq. 8, F₁ linear as in Cor. 1, F₂ = zero padding of x, H a small U-Net) to imitate the real "
    "transformation, and smooths with noise θ ~ N(0, σ₁²) on the parameter **and** augmented noise "
    "θ' ~ N(0, σ₂² I) in the semantic layer (Eq. 9–12). The certified radius is "
    "**R = Φ⁻¹(p̲_A) / M** with **M = max_ξ ‖Σ^{-1/2} ∂F₂(τ(ξ,x))/∂ξ‖**, Σ = σ₁²A₁A₁ᵀ + σ₂²I "
    "(Cor. 1 / Eq. 18 as derived in docs/theory.md); the surrogate's error ε shrinks it to "
    "**R_r = R(1 − Aε)** (Thm 3) — an estimate (`radius_surrogate`), since M and ε are taken on grids. "
    "The certificate's radius is the sound **radius_real**: the largest ξ for which the real, k/255-rounded "
    "image ψ_ξ(x) provably stays within latent distance ‖Σ^{-1/2}[ψ_ξ(x) − x; 0]‖ < Φ⁻¹(p̲_A) for every "
    "severity up to it (exact values on a grid plus a proven bound between grid points).")


def _apply_preset(p):
    c = p.config()
    st.session_state.update({"gs_transform": c["transform"], "gs_sigma1": c["sigma_gamma"], "gs_sigma2": c["sigma2"],
                             "gs_n0": c["n0"], "gs_n": c["n_gamma"], "gs_alpha": c["alpha_gamma"]})
    st.session_state.pop("gs_cert", None)


gu.preset_buttons("gsmooth", _apply_preset, "gs_preset")


@st.cache_resource(show_spinner=False)
def _surrogate(name: str):
    return load_surrogate(name)


available = [t for t in NON_RESOLVABLE if (models_dir() / f"surrogate_{t}.pt").exists()]
if not available:
    show_error("no GSmooth surrogate is shipped: run python -m semsmooth_core train-surrogate --transform zoom_blur")
    st.stop()

left, right = st.columns([1, 2.2], gap="large")
with left:
    name = st.selectbox("Transformation", available, format_func=lambda n: get(n).label, key="gs_transform")
    t = get(name)
    try:
        sur, sur_card = _surrogate(name)
    except SemsmoothError as e:
        show_error(e)
        st.stop()
    xi_max = float(sur.config["theta_scale"])
    unit = t.units[0]
    sev = st.slider(f"Severity ξ ({unit})", 0.0, xi_max, xi_max / 2, key="gs_sev",
                    help=hint("xi", "Here: the severity of the example shown (real vs surrogate)."))
    x, label, caption = sample_picker("gs_index")
    sigma1_in = st.number_input(f"σ₁ — parameter noise ({unit})", value=float(t.default_sigma[0]),
                                format="%.3f", key="gs_sigma1", help=hint("sigma1"))
    sigma2_in = st.number_input("σ₂ — augmented noise (pixel scale [0,1])", value=0.5, format="%.3f",
                                key="gs_sigma2", help=hint("sigma2"))
try:
    sigma1, sigma2 = check_sigma(sigma1_in, "σ₁"), check_sigma(sigma2_in, "σ₂")
except SemsmoothError as e:
    show_error(e)
    st.stop()

with right:
    st.subheader("Real transformation vs surrogate")
    with torch.no_grad():
        th = torch.tensor([[sev]])
        real = t(x[None], th)[0]
        fake = sur(th, x[None])[0]
    diff = (real - fake).abs()
    c1, c2, c3 = st.columns(3)
    # width="stretch": the three fill equal columns (at "content" a long caption widens its image)
    c1.image(tensor_to_image(real, 140), caption=f"real {t.label}, ξ = {sev:.3g} {unit}", width="stretch")
    c2.image(tensor_to_image(fake, 140), caption="surrogate τ(ξ, x)", width="stretch")
    c3.image(tensor_to_image(diff / max(float(diff.max()), 1e-6), 140),
             caption=f"|difference| (scaled), ‖·‖₂ = {float((real - fake).norm()):.3f}", width="stretch")
    err = sur_card.get("approximation_error_heldout", {})
    if err:
        st.caption(f"Held-out approximation error of this surrogate (card): mean ε = {err['eps_mean']:.3f}, "
                   f"95% quantile {err['eps_q95']:.3f}, max {err['eps_max']:.3f} (l2, pixel scale, max over a "
                   f"grid of ξ ∈ [0, {xi_max:g}] {unit}); mean L1 per pixel {err['l1_mean']:.4f}.")

    st.subheader("Augmented noise vs plain Gaussian noise (Fig. 4)")
    g = generator(7)
    with torch.no_grad():
        aug = gsmooth_batch_maker(sur, x, sigma1, sigma2, "cpu", g)(N_SHOW)
        plain = (x[None] + sigma2 * torch.randn((N_SHOW, *x.shape), generator=g))
    cols = st.columns(N_SHOW)
    for i in range(N_SHOW):
        cols[i].image(tensor_to_image(aug[i], 84), caption="augmented" if i == 0 else None)
    cols = st.columns(N_SHOW)
    for i in range(N_SHOW):
        cols[i].image(tensor_to_image(plain[i], 84), caption=f"x + N(0, {sigma2:g}²)" if i == 0 else None)


@st.cache_data(show_spinner=False, max_entries=16)
def _M(name: str, x_key: str, _x, sigma1: float, sigma2: float, xi_max: float):
    return estimate_M(_surrogate(name)[0], _x, sigma1, sigma2, xi_max, grid=17)


st.subheader("The coefficient M (Eq. 18)")
Mi = _M(name, caption, x, sigma1, sigma2, xi_max)
m1, m2 = st.columns(2)
m1.metric("M (per unit of ξ)", f"{Mi['M']:.3f}", help=hint("M"))
m2.metric(f"reached at ξ ({unit})", f"{Mi['xi_at_M']:.3g}", help=hint("xi", "Here: the severity where M is largest."))
fig = go.Figure(go.Scatter(x=Mi["xi"], y=Mi["norm"], mode="lines+markers", name="‖Σ^{-1/2} J(ξ)‖"))
fig.add_vline(x=Mi["xi_at_M"], line_dash="dash")
fig.update_layout(xaxis_title=f"ξ ({unit})", yaxis_title="‖Σ^{-1/2} J(ξ)‖", height=280,
                  margin=dict(l=10, r=10, t=10, b=10))
st.plotly_chart(fig, width="stretch")

st.subheader("Certify")
base_name = f"gsmooth_{name}_cnn"
if not (models_dir() / f"{base_name}.pt").exists():
    show_error(f"no base classifier {base_name}: python -m semsmooth_core train-gsmooth-classifier --transform {name}")
    st.stop()
a, b, c = st.columns(3)
n0_in = a.number_input("n0 (selection)", value=50, step=10, key="gs_n0", help=hint("n0"))
n_in = b.number_input("n (estimation)", value=500, step=100, key="gs_n", help=hint("n"))
alpha_in = c.number_input("α", value=0.001, format="%.4f", key="gs_alpha", help=hint("alpha"))
st.caption(f"Base classifier: {base_name} (trained on GSmooth samples of {t.label}).")
stopped_notice("gs_certify")
if st.button("Certify", key="gs_certify", type="primary"):
    stop = start_work("gs_certify", "the certification")
    try:
        n0, n = check_n0_n(n0_in, n_in)
        alpha = check_alpha(alpha_in)
        model, _card = cached_model(base_name)
        bar = st.progress(0.0, text="Sampling")
        cert = certify_gsmooth(model, sur, t, x, sigma1, sigma2, n0, n, alpha, generator=generator(11),
                               progress=progress_callback(bar))
        st.session_state["gs_cert"] = (caption, name, cert)
    except SemsmoothError as e:
        show_error(e)
    end_work("gs_certify", stop)
if "gs_cert" in st.session_state:
    cap, cname, cert = st.session_state["gs_cert"]
    e = cert.extra
    st.caption(f"{cap}, {get(cname).label}, σ₁ = {e['sigma1']:g}, σ₂ = {e['sigma2']:g}, n = {e['n']}")
    k1, k2, k3, k4 = st.columns(4)
    k1.metric("prediction", "abstain" if cert.abstained else str(cert.label))
    k2.metric("p̲_A", f"{cert.p_lower:.4f}")
    if not cert.abstained:
        sound_txt = "sound" if e.get("sound") else "estimate"
        k3.metric(f"radius_real ({cert.radius_unit}) — {sound_txt}",
                  f"{e['radius_real']:.4g}" if "radius_real" in e else "–")
        k4.metric(f"radius_surrogate ({cert.radius_unit}) — estimate", f"{e['radius_surrogate']:.4g}")
        b = e.get("radius_real_bound")
        if b:
            st.markdown(
                f"**radius_real** (the certificate's radius, sound): sup over ξ ∈ [0, R] of the latent distance "
                f"d(ξ) = ‖Σ^(-1/2)[q(ψ_ξ(x)) − x; 0]‖ of the REAL rounded image stays below Φ⁻¹(p̲_A) = "
                f"{b['threshold']:.3f}: largest d on the grid {b['d_max_grid']:.3f}, largest proven cell bound "
                f"{b['bound_max']:.3f} ({b['cells']} cells, {b['points']} grid points, between-point term "
                f"≤ {b['between_term']:.3f}).")
        st.markdown(
            f"**radius_surrogate** (an estimate: {e.get('radius_surrogate_reason', 'M and ε are grid estimates')}): "
            f"M = {e['M']:.3f} at ξ = {e['xi_at_M']:.3g}; ε = ε₀ + ε_path = {e['eps0']:.3f} + {e['eps_path']:.3f}; "
            f"A = {e['A']:.3f}; R(1 − Aε) = {e['radius_corrected_uniform']:.4g} (Thm 3, uniform ε), "
            f"path-wise ε and M: {e['radius_corrected_path']:.4g}. Radii are capped at ξ_max = {e['xi_max']:g} "
            f"{cert.radius_unit}.")
    if e.get("statement"):
        st.info(f"{'Sound' if e.get('sound') else 'Not sound (estimate)'} · attacker: {e.get('attacker', '–')} · "
                f"{e['statement']}")

if "gs_cert" in st.session_state:  # the guarantee card and the attacker picture, below the result block
    cap, cname, cert = st.session_state["gs_cert"]
    if cap != caption or cname != name:
        st.info("The certificate above is for another input or transformation: press Certify for this one.")
    else:
        gu.guarantee_card(cert)
        gu.failures(diagnose_result(cert), {"n_gamma": "gs_n"}, "gs_post")
        pic = gu.attacker_picture(cert, key="gs_picture", title=f"Severities: attacker range [0, ξ_max] vs certified "
                                                                 f"[0, R) ({cert.radius_unit})")
        with torch.no_grad():
            sev_imgs = t(x[None].expand(len(pic["strip"]), *x.shape), torch.tensor([p for p, _ in pic["strip"]]))
        gu.strip(sev_imgs, [p for p, _ in pic["strip"]], [ok for _, ok in pic["strip"]], cert.radius_unit)

attack_panel("gs_attack", x, label, cached_model(base_name)[0], name, xi_max,
             smoothed={"smoothing": "gsmooth", "sigma_gamma": sigma1, "sigma2": sigma2}, budget=200)

st.subheader("σ₁ × σ₂ grid (Table 3 form)")
g1, g2, g3 = st.columns(3)
grid_k = g1.number_input("images", value=4, min_value=1, max_value=50, key="gs_grid_k")
grid_n = g2.number_input("n per certificate", value=100, step=50, key="gs_grid_n", help=hint("n"))
grid_r = g3.number_input(f"radius ({unit})", value=0.0, format="%.3f", key="gs_grid_r",
                         help=hint("severity_unit", "Here: the radius at which certified accuracy is read off."))


stopped_notice("gs_grid")
if st.button("Compute grid", key="gs_grid_go", type="primary"):
    stop = start_work("gs_grid", "the grid")
    s1s = tuple(round(sigma1 * f, 4) for f in (0.5, 1.0, 2.0))
    s2s = (0.25, 0.5, 0.75)
    key = (name, int(grid_k), int(grid_n), float(grid_r), s1s, s2s, int(st.session_state.get("seed", 0)))
    cache = st.session_state.setdefault("gs_grid_cache", {})
    try:
        if key not in cache:
            xs, ys = cached_dataset("mnist", "heldout")
            model, _card = cached_model(base_name)
            bar = st.progress(0.0, text="grid")
            cache[key] = sigma_grid(model, sur, t, xs[:key[1]], ys[:key[1]], list(s1s), list(s2s), key[3],
                                    max(1, key[2] // 10), key[2], 0.001, generator=generator(13),
                                    progress=lambda d, tot: bar.progress(d / tot, text=f"grid: {d}/{tot} certificates"))
        st.session_state["gs_grid"] = (name, key[3], cache[key])
    except SemsmoothError as e:
        show_error(e)
    end_work("gs_grid", stop)
if "gs_grid" in st.session_state:
    gname, gr, cells = st.session_state["gs_grid"]
    s1s = sorted({c["sigma1"] for c in cells})
    s2s = sorted({c["sigma2"] for c in cells})
    z = [[next(c["certified_accuracy"] for c in cells if c["sigma1"] == a and c["sigma2"] == b) * 100
          for b in s2s] for a in s1s]
    hm = go.Figure(go.Heatmap(z=z, x=[f"σ₂={b:g}" for b in s2s], y=[f"σ₁={a:g}" for a in s1s],
                              text=[[f"{v:.0f}%" for v in row] for row in z], texttemplate="%{text}",
                              colorscale="Blues", zmin=0, zmax=100))
    hm.update_layout(height=260, margin=dict(l=10, r=10, t=30, b=10),
                     title=f"{get(gname).label}: certified accuracy at radius {gr:g} {get(gname).units[0]}")
    st.plotly_chart(hm, width="stretch")
    st.caption("Small n and few images: a demonstration of the trade-off (larger σ₂ lowers M but also the "
               "accuracy of the base classifier), not a benchmark — see benchmarks/gsmooth_tables.py.")

st.subheader("Resolvable: brightness + contrast (closed-form radius)")
st.markdown(
    "ψ_{c,b}(x) = m(x) + e^c (x − m(x)) + b (c: log-contrast, b: offset in pixel scale, m: the image mean) "
    "composes additively, so no surrogate is needed: parameter smoothing with β ~ N(0, diag(σ_c², σ_b²)) "
    "certifies the ellipse **(c/σ_c)² + (b/σ_b)² < Φ⁻¹(p̲_A)²** exactly (Fischer Thm 4.2 / App. B; GSmooth "
    "Thm 1 with M = I) for the ideal transform; the largest box |c|, |b| ≤ a inside it is GSmooth's ‖α‖_∞ "
    "radius. Clamping and 8-bit rounding are not covered here (double smoothing's E covers them).")
r1, r2, r3, r4 = st.columns(4)
bc_sc = r1.number_input("σ_c (log-factor)", value=0.5, format="%.3f", key="gs_bc_sc", help=hint("sigma_c"))
bc_sb = r2.number_input("σ_b (pixel scale)", value=0.3, format="%.3f", key="gs_bc_sb", help=hint("sigma_b"))
bc_n = r3.number_input("n (estimation)", value=500, step=100, key="gs_bc_n", help=hint("n"))
bc_model = r4.text_input("model", value="mnist_cnn_noise025", key="gs_bc_model")
stopped_notice("gs_bc")
if st.button("Certify brightness + contrast", key="gs_bc_go", type="primary"):
    stop = start_work("gs_bc", "the certification")
    try:
        sig = [check_sigma(bc_sc, "σ_c"), check_sigma(bc_sb, "σ_b")]
        n0, n = check_n0_n(max(1, int(bc_n) // 10), bc_n)
        model, _card = cached_model(bc_model)
        bar = st.progress(0.0, text="Sampling")
        cert = certify_transform(model, x, "brightness_contrast", sig, n0, n, 0.001, generator=generator(17),
                                 progress=progress_callback(bar), quantize=False)
        st.session_state["gs_bc"] = (caption, sig, cert, box_halfwidth(cert.radius, sig))
    except SemsmoothError as e:
        show_error(e)
    end_work("gs_bc", stop)
if "gs_bc" in st.session_state:
    cap, sig, cert, box_a = st.session_state["gs_bc"]
    b1, b2, b3, b4 = st.columns(4)
    b1.metric("prediction", "abstain" if cert.abstained else str(cert.label))
    b2.metric("p̲_A", f"{cert.p_lower:.4f}")
    axes = cert.extra.get("axis_radii", [cert.radius, cert.radius])
    b3.metric("ellipse semi-axes (c, b)", f"{axes[0]:.3g}, {axes[1]:.3g}")
    b4.metric("box ‖(c, b)‖_∞ <", f"{box_a:.3g}")
    st.caption(f"{cap}; σ = ({sig[0]:g}, {sig[1]:g}), n = {cert.extra['n']}, α = 0.001, "
               f"Mahalanobis radius {cert.radius:.3g}.")
    if not cert.abstained:
        ang = torch.linspace(0, 2 * torch.pi, 181)
        ell = go.Figure(go.Scatter(x=(axes[0] * torch.cos(ang)).tolist(), y=(axes[1] * torch.sin(ang)).tolist(),
                                   fill="toself", name="certified ellipse"))
        ell.add_shape(type="rect", x0=-box_a, y0=-box_a, x1=box_a, y1=box_a, line=dict(dash="dash"))
        ell.update_layout(xaxis_title="c (log-factor)", yaxis_title="b (pixel scale)", height=300,
                          margin=dict(l=10, r=10, t=10, b=10), yaxis_scaleanchor="x")
        st.plotly_chart(ell, width="stretch")
        bc = get("brightness_contrast")
        corners = torch.tensor([[box_a, box_a], [box_a, -box_a], [-box_a, box_a], [-box_a, -box_a]])
        imgs = bc(x[None].expand(4, *x.shape), corners)
        cols = st.columns(4)
        for i in range(4):
            cols[i].image(tensor_to_image(imgs[i], 96), caption=f"c={corners[i, 0]:+.2f}, b={corners[i, 1]:+.2f}")
