"""Transform explorer: what interpolation and rounding do to a transformed input — x, ψ_γ(x), ψ_β(ψ_γ(x)) next to ψ_{β+γ}(x), and the error ε as a heat map, with and without vignetting / low-pass (Fischer Fig. 5)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from pages._shared import fmt, hint, image_from_upload, sample_picker, show_error, tensor_to_image
from pages._attack_panel import attack_panel
from semsmooth_core import errors, transforms
from semsmooth_core.data import embedded_photos
from semsmooth_core.data.uploads import decode_image, limit_text
from semsmooth_core.preprocess import build
from semsmooth_core.validation import SemsmoothError

st.title("Transform explorer")
st.markdown(
    "A realistic attacker stores images as integers: after every transformation the pixels are "
    "interpolated (nearest / bilinear / bicubic), cut off at the border (zero fill) and rounded to "
    "k/255. So two consecutive transformations ψ_β(ψ_γ(x)) differ from one transformation "
    "ψ_{β+γ}(x) by the **interpolation error** ε(β, γ, x) (Fischer et al. §5.2). The classifier "
    "sees the input after preprocessing P, so ε is measured as P(ψ_β(ψ_γ x)) − P(ψ_{β+γ} x). "
    "Vignetting and a low-pass filter (§6.1, Fig. 5) make it smaller.")


def _slider_range(t, i: int) -> tuple[float, float, float]:
    """(lo, hi, step) of the parameter slider for dimension i, in the transform's units."""
    lo, hi = t.bounds[i]
    if t.units[i] == "degrees":
        return max(lo, -180.0), min(hi, 180.0), 0.5
    r = max(abs(v) for v in t.default_range[i]) * 3
    return max(lo, -r), min(hi, r), round(r / 200, 4) or 0.001


@st.cache_data(show_spinner=False, max_entries=16)
def _photo(name: str, gray: bool, size: int) -> torch.Tensor:
    """An embedded photo, centre-cropped to a square and resized to size×size."""
    from PIL import Image
    p = embedded_photos()[name]
    img = Image.open(p)
    s = min(img.size)
    left, top = (img.width - s) // 2, (img.height - s) // 2
    img = img.crop((left, top, left + s, top + s))
    import io
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return decode_image(buf.getvalue(), grayscale=gray, size=(size, size))


comp = [n for n in transforms.names()
        if transforms.get(n).modality == "image" and transforms.get(n).composable]

left, right = st.columns([1, 2.3], gap="large")
with left:
    st.subheader("Input")
    source = st.radio("Sample from", ["Embedded MNIST", "Embedded photo", "Upload"], horizontal=True,
                      key="te_source")
    x = None
    if source == "Embedded MNIST":
        x, _, caption = sample_picker("te_index", dataset="mnist")
    elif source == "Embedded photo":
        photos = sorted(embedded_photos())
        if not photos:
            show_error("no embedded photos found in assets/photos")
        else:
            name = st.selectbox("Photo", photos, key="te_photo")
            size = st.select_slider("Working size (pixels)", [32, 64, 128, 256, 512], value=128, key="te_size",
                                    help="Fischer Fig. 6: larger images have smaller relative interpolation error.")
            gray = st.checkbox("Greyscale", value=False, key="te_gray")
            x = _photo(name, gray, size)
            caption = f"{name}, {size}×{size}"
    else:
        up = st.file_uploader(f"An image (PNG, JPEG, TIFF, …; {limit_text('image')})", type=None, key="te_upload")
        gray = st.checkbox("Greyscale", value=True, key="te_up_gray")
        x = image_from_upload(up, grayscale=gray)
        if x is not None and max(x.shape[-2:]) > 1024:
            x = torch.nn.functional.interpolate(x[None], scale_factor=1024 / max(x.shape[-2:]), mode="area")[0]
        caption = "upload"
    if x is None:
        st.info("Pick or upload an image to start.")
        st.stop()

    st.subheader("Transformation")
    tname = st.selectbox("Transformation ψ", comp, index=comp.index("rotation") if "rotation" in comp else 0,
                         key="te_transform", format_func=lambda n: transforms.get(n).label or n,
                         help=hint("psi"))
    t = transforms.get(tname)
    ip = st.selectbox("Interpolation", list(t.interpolations), index=list(t.interpolations).index("bilinear")
                      if "bilinear" in t.interpolations else 0, key="te_interp",
                      disabled=not t.uses_interpolation,
                      help=None if t.uses_interpolation else "this transformation moves no pixels")
    quant = st.checkbox("Round to k/255 after each step (realistic attacker)", value=True, key="te_quant")
    gamma, beta = [], []
    for i, (pn, unit) in enumerate(zip(t.param_names, t.units)):
        lo, hi, step = _slider_range(t, i)
        dg = float(np.clip(t.default_range[i][1] * 0.6, lo, hi))
        gamma.append(st.slider(f"γ {pn} — attacker ({unit})", lo, hi, round(dg / step) * step, step,
                               key=f"te_g_{tname}_{i}", help=hint("gamma")))
        db = float(np.clip(t.default_sigma[i] * 0.4, lo, hi))
        beta.append(st.slider(f"β {pn} — smoothing ({unit})", lo, hi, round(db / step) * step, step,
                              key=f"te_b_{tname}_{i}", help=hint("beta")))

    st.subheader("Preprocessing P", help=hint("P"))
    vig = st.checkbox("Vignette (inscribed circle)", value=True, key="te_vig")
    margin = st.number_input("Vignette margin (pixels)", 0.0, 100.0, 0.0, 1.0, key="te_margin", disabled=not vig)
    lp = st.checkbox("FFT low-pass", value=False, key="te_lp")
    band = st.number_input("Bandwidth B (keep |k_x|, |k_y| ≤ B)", 1.0, 512.0, 8.0, 1.0, key="te_band",
                           disabled=not lp, help=hint("B", "The smallest B here is 1: B = 0 would erase the image."))
    ga = st.checkbox("Gaussian filter", value=False, key="te_ga")
    gk = st.select_slider("Kernel size (pixels)", [3, 5, 7, 9, 11], value=5, key="te_gk", disabled=not ga)
    gs = st.number_input("Kernel std (pixels)", 0.1, 20.0, 1.0, 0.1, key="te_gs", disabled=not ga)

try:
    pre = build(vig, margin, band if lp else None, f"{gk}:{gs}" if ga else None)
    setup = errors.ErrorSetup(tname, ip, t.default_sigma, None, pre, quantize=quant)
    raw_setup = errors.ErrorSetup(tname, ip, t.default_sigma, None, None, quantize=quant)
    xb = x[None].float()
    g = torch.tensor([gamma], dtype=torch.float32)
    b = torch.tensor([beta], dtype=torch.float32)
    with torch.no_grad():
        psi_g = t(xb, g, ip, quantize=quant)
        two_raw, one_raw = errors.eps_terms(raw_setup, xb, b, g)
        two, one = errors.eps_terms(setup, xb, b, g)
except SemsmoothError as e:
    show_error(e)
    st.stop()

e_raw, e_pre = two_raw - one_raw, two - one
uq = lambda v: ", ".join(f"{a:g} {u}" for a, u in zip(v, t.units))  # noqa: E731

with right:
    st.subheader("The two paths")
    size = 150

    def _row(images, captions):
        """Images side by side, one column each, all drawn at the column's width (an image's own
        size or a long caption would otherwise make one larger than the others)."""
        for col, img, cap in zip(st.columns(4, gap="small"), images, captions):
            col.image(tensor_to_image(img, size), caption=cap, width="stretch")

    _row([xb, psi_g, two_raw, one_raw],
         ["x", f"ψ_γ(x), γ = {uq(gamma)}", "ψ_β(ψ_γ(x)) — two steps",
          f"ψ_(β+γ)(x) — one step, β+γ = {uq([a + c for a, c in zip(beta, gamma)])}"])
    if not pre.is_identity:
        _row([two, one], [f"P(ψ_β(ψ_γ(x))), P = {pre}", f"P(ψ_(β+γ)(x)), P = {pre}"])
    # how much of the image P keeps: a filter that erases the image makes ε small trivially
    # (the filters only: vignetting removes the corners on purpose, Fischer §6.1)
    filters = build(False, 0.0, band if lp else None, f"{gk}:{gs}" if ga else None)
    with torch.no_grad():
        px = filters(xb) if not filters.is_identity else xb
    detail = (xb - xb.mean(dim=(-2, -1), keepdim=True)).double()  # the image without its mean brightness
    lost = float((px - xb).double().norm() / max(float(detail.norm()), 1e-12))
    erased = lost > 0.5
    if erased:
        st.warning(f"The filters in P change the image itself by {lost:.0%} of its detail (l2, relative to the image "
                   "without its mean brightness): it erases most of what the "
                   "classifier would see, so the smaller ε below is **not** an improvement — a classifier "
                   "on these inputs has little left to recognise.")

    def _norms(e):
        return float(e.double().norm()), float(e.abs().max())

    n2r, nir = _norms(e_raw)
    n2p, nip = _norms(e_pre)
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("‖ε‖₂ without P", f"{n2r:.4f}", help=hint("eps", "l2 norm over the whole input."))
    m2.metric("‖ε‖∞ without P", f"{nir:.4f}", help=hint("eps", f"Largest single pixel error = {nir * 255:.1f}/255."))
    def dcol(d):  # a filter that erases the image earns no green arrow, and no change no red one
        return "off" if erased or abs(d) < 5e-5 else "inverse"

    m3.metric("‖ε‖₂ with P", f"{n2p:.4f}", delta=f"{n2p - n2r:+.4f}", delta_color=dcol(n2p - n2r),
              help=hint("eps", f"After preprocessing P = {pre}; the arrow compares with the value without P."))
    m4.metric("‖ε‖∞ with P", f"{nip:.4f}", delta=f"{nip - nir:+.4f}", delta_color=dcol(nip - nir),
              help=hint("eps", f"After preprocessing P = {pre}."))

    def _map(e):
        return e[0].mean(0).double().numpy() if e.shape[1] > 1 else e[0, 0].double().numpy()

    # one colour scale for both maps, so equal colours mean equal errors
    lim = float(max(np.abs(_map(e_raw)).max(), np.abs(_map(e_pre)).max(), 1e-6))

    def _heat(e, title):
        a = _map(e)
        # RdBu reversed: red = positive, blue = negative (as the caption says)
        fig = go.Figure(go.Heatmap(z=a, colorscale="RdBu_r", zmin=-lim, zmax=lim, colorbar=dict(title="ε"),
                                   hovertemplate="x=%{x}, y=%{y}: ε=%{z:.4f}<extra></extra>"))
        fig.update_layout(title=title, height=340, margin=dict(l=10, r=10, t=40, b=10))
        fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False)
        fig.update_xaxes(showticklabels=False)
        return fig

    h1, h2 = st.columns(2)
    chan = " (mean over channels)" if xb.shape[1] > 1 else ""
    h1.plotly_chart(_heat(e_raw, f"ε without preprocessing{chan}"), width="stretch")
    h2.plotly_chart(_heat(e_pre, f"ε with P = {pre}{chan}"), width="stretch")
    st.caption(f"ε = P(ψ_β(ψ_γ x)) − P(ψ_(β+γ) x) in pixel scale [0,1]; red: positive, blue: negative, white: 0; "
               f"both maps use the same scale ±{fmt(lim, 3)}. "
               "Multiples of 90° (square images) and integer shifts compose exactly: ε = 0 there.")
attack_panel("te_attack", x, None, None, tname, None, interpolation=ip, models=True, title="Find the worst parameter")
