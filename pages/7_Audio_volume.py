"""Audio volume: hear a spoken word at another volume, see its waveform and MFCC, the rounding error E of int16 volume changes, and certify a word classifier (or Silero VAD) against volume changes in dB."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from pages import _guarantee as gu
from pages._shared import cached_model, end_work, hint, progress_callback, show_error, start_work, stopped_notice
from pages._attack_panel import attack_panel
from semsmooth_core import audio, errors, explain, transforms
from semsmooth_core.data.speech import WORDS, embedded_speech
from semsmooth_core.data.uploads import limit_text
from semsmooth_core.models import list_models
from semsmooth_core.paths import REPO_ROOT
from semsmooth_core.smoothing import ABSTAIN, certify_double
from semsmooth_core.validation import SemsmoothError

UNIT = "dB"
SR = audio.SAMPLE_RATE

st.title("Audio volume")
st.markdown(
    "A volume change by β dB multiplies the waveform by 10^(β/20) (Fischer et al. §5.1); a real "
    "attacker stores the result as **16-bit integers**, so two volume changes in a row differ from "
    "one combined change by a rounding error ε (§5.2). Double smoothing (§6.2) smooths over β "
    "(outer, in dB) and, at each β, adds Gaussian noise **to the waveform** (inner) to cover ‖ε‖₂ ≤ E. "
    "E and the inner noise live in the same space, the waveform in [-1, 1] units; the MFCC "
    "features are computed inside the model.")


def _apply_preset(p):
    c = p.config()
    st.session_state.update({"av_model": c["model"], "av_sigma_g": c["sigma_gamma"], "av_C": c["attacker_range"],
                             "av_q": c["q"], "av_nerr": c["E_samples"], "av_sigma_eps": c["sigma_eps"],
                             "av_n0": c["n0"], "av_ngamma": c["n_gamma"], "av_neps": c["n_eps"],
                             "av_alpha": c["alpha_gamma"]})
    st.session_state.pop("av_cert", None)


gu.preset_buttons("audio", _apply_preset, "av_preset")

# --------------------------------------------------------------------------- model
audio_models = {k: v for k, v in list_models().items() if v.get("modality") == "audio"}
if not audio_models:
    st.info("No audio model in assets/models/ — train one with `python -m scripts.train_speech`.")
    st.stop()
names = sorted(audio_models, key=lambda k: k != "speech_cnn")      # the word classifier first
model_name = st.selectbox("Model", names, key="av_model",
                          format_func=lambda k: f"{k} — {audio_models[k].get('summary', '')}")
try:
    model, card = cached_model(model_name)
except SemsmoothError as e:
    show_error(e)
    st.stop()
classes = list(card.get("classes") or WORDS)


@st.cache_data(show_spinner="Loading the held-out clips…")
def heldout():
    x, y, meta = embedded_speech("heldout")
    return x, y, {k: [str(v) for v in vals] for k, vals in meta.items()}


x_all, y_all, meta = heldout()

# --------------------------------------------------------------------------- clip
left, right = st.columns([1, 2], gap="large")
with left:
    st.subheader("Clip")
    source = st.radio("Source", ["Embedded held-out clip", "Upload WAV / FLAC / OGG"], key="av_source")
    label = None
    if source.startswith("Embedded"):
        idx = int(st.number_input(f"Clip index (0–{len(x_all) - 1})", 0, len(x_all) - 1, 7, key="av_idx"))
        clip = x_all[idx]
        label = int(y_all[idx])
        st.caption(f"word **{WORDS[label]}**, voice {meta['speaker'][idx]} ({meta['accent'][idx]}), "
                   f"peak {meta['peak_db'][idx]} dBFS — espeak-ng, a voice never used for training")
    else:
        up = st.file_uploader(f"Audio file (≤ 30 s, {limit_text('audio')}; 1 s is used)", type=["wav", "flac", "ogg"], key="av_upload")
        if up is None:
            st.info("Upload a clip to continue.")
            st.stop()
        try:
            dec = audio.decode_audio(up.getvalue(), up.name)
        except SemsmoothError as e:
            show_error(e)
            st.stop()
        for note in dec.notices:
            st.info(note)
        clip = torch.from_numpy(dec.clip)
        if model_name != "silero_vad":
            lab = st.selectbox("True word (for 'correct')", ["unknown", *WORDS], key="av_true")
            label = WORDS.index(lab) if lab != "unknown" else None
    beta = st.slider("Volume change β (dB)", -20.0, 20.0, 0.0, 0.5, key="av_beta",
                     help=hint("factor", "Here: the change you hear and see on the right."))

vol = transforms.get("volume")
louder = vol(clip[None], beta)[0]
with torch.no_grad():
    logits = model(louder[None].to(next(iter(model.parameters()), torch.zeros(0)).device))[0].cpu()
pred = int(logits.argmax())

with right:
    st.subheader(f"At {beta:+.1f} dB (int16)")
    c1, c2 = st.columns(2)
    c1.caption("original")
    c1.audio(audio.encode_wav(clip.numpy()), format="audio/wav")
    c2.caption(f"{beta:+.1f} dB")
    c2.audio(audio.encode_wav(louder.numpy()), format="audio/wav")
    clipped = int((louder.abs() >= audio.INT16_MAX).sum())
    st.markdown(f"Base classifier on this clip: **{classes[pred]}**"
                + (f" (true: {WORDS[label]})" if label is not None and model_name != "silero_vad" else "")
                + (f" — {clipped} samples clipped at full scale" if clipped else ""))
    t = np.arange(len(clip)) / SR
    step = 4
    fig = go.Figure()
    fig.add_scatter(x=t[::step], y=clip.numpy()[::step], name="original", line=dict(width=1))
    fig.add_scatter(x=t[::step], y=louder.numpy()[::step], name=f"{beta:+.1f} dB", line=dict(width=1), opacity=0.7)
    fig.update_layout(height=250, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="time (s)",
                      yaxis_title="amplitude ([-1,1] = int16/32768)", title="Waveform")
    st.plotly_chart(fig, width="stretch")
    mf = audio.MFCC()(louder[None])[0].numpy()
    fig = go.Figure(go.Heatmap(z=mf[1:], y=np.arange(1, mf.shape[0]), x=np.arange(mf.shape[1]) * 0.01,
                               colorscale="Viridis", colorbar=dict(title="coef.")))
    fig.update_layout(height=250, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="time (s)",
                      yaxis_title="MFCC index", title=f"MFCC 1–{mf.shape[0] - 1} (c0, the log energy, "
                      f"mean {mf[0].mean():.0f}, not shown; before standardisation)")
    st.plotly_chart(fig, width="stretch")

# --------------------------------------------------------------------------- E
st.subheader("Rounding error of volume changes")
e1, e2, e3, e4 = st.columns(4)
sigma_g = e1.number_input("σ_γ — outer smoothing (dB)", 0.1, 20.0, 3.0, 0.5, key="av_sigma_g",
                          help=hint("sigma_gamma"))
c_half = e2.number_input("attacker range C = ±… dB", 0.0, 20.0, 3.0, 0.5, key="av_C", help=hint("C"))
q = e3.number_input("q (target q̲_E)", 0.5, 0.999, 0.95, 0.01, key="av_q", help=hint("q_target"))
n_err = int(e4.number_input("error samples", 100, 20000, 500, 100, key="av_nerr",
                            help="How many rounding errors ε are sampled to find E (more: a tighter q̲_E)."))


@st.cache_data(show_spinner="Sampling rounding errors ε on the held-out clips…", max_entries=16)
def error_sample(sigma_g: float, c_half: float, n: int, seed: int):
    x, _, _ = embedded_speech("heldout")
    return audio.volume_error_norms(x, n, sigma_g, (-c_half, c_half), seed)


try:
    smp = error_sample(float(sigma_g), float(c_half), n_err, int(st.session_state.get("seed", 0)))
    est = errors.E_for_q(smp["norms"], float(q), 0.001)
except SemsmoothError as e:
    show_error(e)
    st.stop()
E_val, qE_low = est["E"], est["q_E_lower"]
h = errors.histogram(smp["norms"], bins=50)
fig = go.Figure(go.Bar(x=h["edges"][:-1], y=h["counts"], width=np.diff(h["edges"]), name="‖ε‖₂"))
if np.isfinite(E_val):
    fig.add_vline(x=E_val, line_dash="dash", annotation_text=f"E = {E_val:.5f}")
fig.update_layout(height=260, margin=dict(l=10, r=10, t=30, b=10),
                  xaxis_title="‖ε(β,γ,x)‖₂ (waveform, [-1,1] units)", yaxis_title="samples",
                  title=f"ε = Q(ψ_β(Q(ψ_γ x))) − Q(ψ_β+γ x), β ~ N(0, {sigma_g:g}² dB²), γ ~ U[±{c_half:g}] dB")
st.plotly_chart(fig, width="stretch")
st.caption(f"E = {E_val:.5f} with q̲_E = {qE_low:.4f} (α_E = 0.001, {est['n']} samples). One int16 "
           f"rounding of a 1 s clip has ‖e‖₂ ≈ √(T/12)/32768 = {audio.rounding_error_l2(audio.CLIP_SAMPLES):.5f}.")

# --------------------------------------------------------------------------- certify
st.subheader("Certify this clip against volume changes")
k1, k2, k3, k4, k5 = st.columns(5)
sigma_eps = k1.number_input("σ_ε — inner noise (waveform)", 0.001, 0.2, float(card.get("sigma_eps", 0.01)),
                            0.001, format="%.3f", key="av_sigma_eps",
                            help=hint("sigma_eps", "Here: noise on the waveform, in [-1, 1] units."))
n0 = int(k2.number_input("n0", 1, 1000, 10, key="av_n0", help=hint("n0")))
n_gamma = int(k3.number_input("n_γ", 1, 10**6, 50, key="av_ngamma", help=hint("n_gamma")))
n_eps = int(k4.number_input("n_ε", 1, 10**6, 50, key="av_neps", help=hint("n_eps")))
alpha = k5.number_input("α_γ = α_ε", 1e-6, 0.1, 0.001, format="%.4f", key="av_alpha",
                        help=hint("alpha_gamma", "The page uses the same value for α_ε."))
made_with = (model_name, source, label, float(clip.sum()), sigma_g, c_half, q, n_err, sigma_eps, n0, n_gamma, n_eps, alpha,
             int(st.session_state.get("seed", 0)))
pre = explain.diagnose_settings({"smoothing": "double", "E": E_val, "q_E_lower": qE_low, "sigma_eps": sigma_eps,
                                 "n_eps": n_eps, "alpha_eps": alpha, "alpha_E": 0.001, "n_gamma": n_gamma,
                                 "alpha_gamma": alpha}, card.get("sigma_eps"))
gu.failures(pre, {"n_gamma": "av_ngamma", "n_eps": "av_neps", "sigma_eps": "av_sigma_eps"}, "av_pre")
stopped_notice("av_certify")
if st.button("Certify", key="av_certify", type="primary", disabled=any(f.kind in gu.BLOCKING for f in pre)):
    stop = start_work("av_certify", "the certification")
    bar = st.progress(0.0, text="Sampling")
    try:
        g = torch.Generator().manual_seed(int(st.session_state.get("seed", 0)))
        cert = certify_double(model, clip, "volume", float(sigma_g), float(sigma_eps), E_val, qE_low, n0,
                              n_gamma, n_eps, float(alpha), float(alpha), 0.001, batch_size=250, generator=g,
                              progress=progress_callback(bar), attacker_range=float(c_half))
    except SemsmoothError as e:
        show_error(e)
    else:
        bar.progress(1.0, text="done")
        st.session_state["av_cert"] = (cert, made_with)
    end_work("av_certify", stop)
if st.session_state.get("av_cert"):
    cert, made = st.session_state["av_cert"]
    if made != made_with:
        st.info("The last certificate was made with other settings or another clip: press Certify for these.")
    else:
        gu.guarantee_card(cert, classes[cert.label] if cert.label != ABSTAIN else None)
        gu.failures(explain.diagnose_result(cert, label, card.get("sigma_eps")),
                    {"n_gamma": "av_ngamma", "n_eps": "av_neps", "sigma_eps": "av_sigma_eps"}, "av_post")
        pic = gu.attacker_picture(cert, key="av_picture", title="Attacker range C vs the certified volume changes (dB)")
        cols = st.columns(len(pic["strip"]))
        for col, (p, ok) in zip(cols, pic["strip"]):
            col.caption(f"{'Certified' if ok else 'Not covered'}: {p[0]:+.1f} dB")
            col.audio(audio.encode_wav(vol(clip[None], p[0])[0].numpy()), format="audio/wav")
        with st.expander("The certificate as data"):
            st.json({"label": cert.label, "class": classes[cert.label] if cert.label != ABSTAIN else "abstain",
                     "radius": cert.radius, "radius_unit": cert.radius_unit, "p_lower": cert.p_lower, "rho": cert.rho,
                     "outer_successes": cert.extra["outer_successes"], "n_forward": cert.n_forward,
                     "seconds": round(cert.seconds, 2)})

attack_panel("av_attack", clip, label if model_name != "silero_vad" else None, model, "volume", float(c_half), classes=classes, budget=200,
             smoothed={"smoothing": "double", "sigma_gamma": float(sigma_g), "sigma_eps": float(sigma_eps), "n_eps": 20})

# --------------------------------------------------------------------------- table
st.subheader("Over the held-out clips")
results = sorted((REPO_ROOT / "benchmarks" / "results").glob(f"audio_{model_name}*.json"))
for res in results:
    data = json.loads(res.read_text())
    c = data.get("config", {})
    st.markdown(f"**{res.name}** — σ_γ = {c.get('sigma_gamma')} dB, C = ±{c.get('attacker_range')} dB, "
                f"σ_ε = {c.get('sigma_eps')}, E = {c.get('E', 0):.5f} (q̲_E = {c.get('q_E_lower', 0):.4f}), "
                f"n_γ = {c.get('n_gamma')}, n_ε = {c.get('n_eps')}")
    st.dataframe(data.get("table", []), width="stretch")
    st.caption(f"`{data.get('command', '')}` — radius in dB (clipped to C, where E holds).")
if not results:
    st.caption(f"No results yet: run `python -m benchmarks.audio_volume --model {model_name}`.")
n_clips = int(st.number_input("clips for a quick table (evenly spaced)", 2, 50, 5, key="av_nclips"))


@st.cache_data(show_spinner=False, max_entries=8)
def quick_table(model_name: str, n_clips: int, sigma_g: float, sigma_eps: float, E: float, qE: float, c_half: float,
                seed: int):
    from semsmooth_core.runs import pipeline, summary

    step = max(1, len(x_all) // n_clips)
    cfg = {"dataset": "speech-words", "model": model_name, "transform": "volume", "sigma_gamma": sigma_g,
           "sigma_eps": sigma_eps, "E": E, "q_E_lower": qE, "n0": 10, "n_gamma": 50, "n_eps": 50,
           "attacker_range": c_half, "batch_size": 250, "seed": seed}
    rows = []
    if model_name == "silero_vad":
        return None
    pipeline.certify_inputs(cfg, list(range(0, len(x_all), step))[:n_clips], rows.append)
    return summary.table_row(rows, cfg) | {"radius unit": UNIT}


if st.button("Compute quick table", key="av_table", type="primary"):
    with st.spinner("Certifying…"):
        try:
            row = quick_table(model_name, n_clips, float(sigma_g), float(sigma_eps), E_val, qE_low, float(c_half),
                              int(st.session_state.get("seed", 0)))
        except SemsmoothError as e:
            show_error(e)
            row = None
    if row is None:
        st.info("The quick table is for word classifiers (every held-out clip is speech).")
    else:
        st.dataframe([row], width="stretch")
