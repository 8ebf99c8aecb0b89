"""Home: what semsmooth does, one picture made from real data and the shipped model, where to go."""

from __future__ import annotations

from pathlib import Path

import ast

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from pages._shared import cached_dataset, current_model, generator, show_error, tensor_to_image
from semsmooth_core.smoothing import count_votes, gaussian_batch_maker, model_device
from semsmooth_core.validation import SemsmoothError

SIGMA = 0.25  # noise level of the picture (pixel scale [0,1])
N_SHOW = 5    # noisy copies drawn
N_VOTES = 200  # votes counted for the picture

st.title("semsmooth")
st.markdown(
    "**Certified robustness against semantic perturbations by randomized smoothing.**  \n"
    "A classifier is *smoothed*: instead of trusting one prediction, we classify many randomly "
    "perturbed copies of an input (Gaussian pixel noise, random rotations, shifts, zooms, blur, "
    "brightness, volume) and take the majority vote. A statistical test on the vote counts "
    "then *proves*, with failure probability at most α, that no perturbation up to a radius "
    "(in l2 pixel units, degrees, pixels, dB, …) can change that vote. "
    "Everything runs on your machine, on the embedded MNIST digits and shipped models, or on "
    "your own model and data (sidebar).")


@st.cache_data(show_spinner=False, max_entries=4)
def _picture_data(model_key: str, seed: int):
    xs, ys = cached_dataset("mnist", "heldout")
    x, y = xs[0], int(ys[0])
    g = generator()
    noisy = gaussian_batch_maker(x, SIGMA, "cpu", g)(N_SHOW)
    counts = None
    loaded = current_model(quiet=True)
    if loaded is not None:
        model = loaded[0]
        make = gaussian_batch_maker(x, SIGMA, model_device(model), g)
        counts = count_votes(model, make, N_VOTES, batch_size=N_VOTES).tolist()
    return x, y, noisy, counts


def _images_figure(x, y, noisy) -> go.Figure:
    titles = [f"input (label {y})"] + [f"+ noise #{i + 1}" for i in range(N_SHOW)]
    fig = make_subplots(rows=1, cols=1 + N_SHOW, subplot_titles=titles, horizontal_spacing=0.02)
    for i, img in enumerate([x] + list(noisy)):
        a = tensor_to_image(img, 28)
        fig.add_trace(go.Image(z=np.stack([a] * 3, axis=-1), hoverinfo="skip"), row=1, col=i + 1)
        fig.update_xaxes(visible=False, row=1, col=i + 1)
        fig.update_yaxes(visible=False, row=1, col=i + 1)
    fig.update_layout(height=230, margin=dict(l=0, r=0, t=40, b=0), showlegend=False)
    return fig


def _votes_figure(counts) -> go.Figure:
    top = max(range(len(counts)), key=counts.__getitem__)
    fig = go.Figure(go.Bar(x=list(range(len(counts))), y=counts,
                           marker_color=["#d62728" if c == top else "#9aa5b1" for c in range(len(counts))],
                           hovertemplate="class %{x}: %{y} votes<extra></extra>"))
    fig.update_layout(title=dict(text=f"votes of {N_VOTES} noisy copies", font=dict(size=14)),
                      xaxis_title="class", yaxis_title="votes (count)", height=230,
                      margin=dict(l=0, r=0, t=40, b=0))
    fig.update_xaxes(dtick=1)
    return fig


try:
    x, y, noisy, counts = _picture_data(f"{st.session_state.get('model_name')}|{st.session_state.get('model_path')}",
                                        int(st.session_state.get("seed", 0) or 0))
    c_img, c_votes = st.columns([3.2, 1.3], gap="medium")
    c_img.plotly_chart(_images_figure(x, y, noisy), width="stretch")
    if counts is not None:
        c_votes.plotly_chart(_votes_figure(counts), width="stretch")
    cap = (f"A held-out digit, copies with Gaussian noise σ = {SIGMA} (pixel scale [0,1]), and "
           "how the selected model votes on them: the smoothed classifier returns the majority.")
    if counts is None:
        cap += " (No model available yet — the vote chart appears once one is shipped or uploaded.)"
    st.caption(cap)
except SemsmoothError as e:
    show_error(e)
except Exception as e:  # a model that does not take these images: say so, keep the page up
    show_error(f"the selected model cannot classify MNIST digits ({type(e).__name__}: {str(e)[:120]})")

st.subheader("Where to go")


def _summary(path: Path) -> str:
    """First line of a page's module docstring (its one-line description)."""
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    except (OSError, SyntaxError):
        return ""
    first = " ".join(doc.strip().split("\n\n")[0].split()) if doc.strip() else ""
    head, sep, rest = first.partition(":")  # "Title: what it does" -> "what it does"
    text = rest.strip() if sep and len(head) < 40 else first
    return text if len(text) <= 240 else text[:237].rsplit(" ", 1)[0] + " …"


for p in sorted(Path(__file__).resolve().parent.glob("*.py")):
    if p.name.startswith("_") or p.name == Path(__file__).name:
        continue
    c1, c2 = st.columns([1, 3], vertical_alignment="center")
    with c1:
        try:
            st.page_link(f"pages/{p.name}")
        except Exception:  # a page not registered in the navigation (e.g. run outside app.py)
            st.write(p.stem)
    c2.caption(_summary(p))
st.caption("The sidebar (all pages) picks the dataset, the model (shipped or your own) and the "
           "random seed; it also shows where computations run (CPU or GPU).")
