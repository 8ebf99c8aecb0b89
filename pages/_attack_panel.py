"""The "Attack" panel shared by the Certify, Audio volume, GSmooth and Transform explorer pages, and
the empirical-robustness curves of the Results page. Widgets in, ``semsmooth_core.attacks`` out,
pictures drawn; no math here.

- :func:`attack_panel`: search the real transformation (interpolated and rounded as stored) inside
  the attacker range C for the parameter that hurts the base classifier most (and, when the page
  has a smoothed classifier, the one that hurts the smoothed classifier most, answered by PREDICT
  at a stated α); show the worst parameter, the attacked input beside the original and the
  base/smoothed predictions there.
- :func:`attack_curves`: empirical robust accuracy over the attack range beside certified accuracy
  over the radius, from ``benchmarks/results/attack_table.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from pages._shared import cached_model, hint, show_error, tensor_to_image
from semsmooth_core import transforms
from semsmooth_core.attacks import ATTACK_DEFAULTS, Region, Target, attack_input, attack_range, make_target
from semsmooth_core.smoothing import ABSTAIN
from semsmooth_core.validation import SemsmoothError

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "attack_table.json"


def _name(c, classes):
    if c is None:
        return "—"
    if c == ABSTAIN:
        return "abstain"
    return str(classes[c]) if classes is not None and 0 <= c < len(classes) else str(c)


def _show_input(col, t, xa, caption):
    if t.modality == "audio":
        col.audio(xa.detach().cpu().numpy().astype(np.float32), sample_rate=16000)
        col.caption(caption)
    else:
        col.image(tensor_to_image(xa, 140), caption=caption)


def attack_panel(key: str, x: torch.Tensor, label: int | None, model, transform: str, attacker_range=None, *,
                 interpolation: str = "bilinear", preprocess=None, smoothed: dict | None = None,
                 classes=None, models: dict | None = None, title: str = "Attack", budget: int = 400) -> None:
    """Draw the panel. ``smoothed``: the page's smoothed classifier as an attack config
    (``smoothing`` noise | transform | double | gsmooth and its σ's, surrogate); ``models``: offer
    these shipped models (True: the shipped image classifiers) instead of ``model`` (Transform explorer); ``label``: the true class (None:
    the clean prediction is the reference)."""
    t = transforms.get(transform)
    if isinstance(preprocess, str):
        from semsmooth_core.preprocess import Preprocess

        try:
            preprocess = Preprocess.parse(preprocess) or None
        except SemsmoothError as e:
            show_error(e)
            return
    st.subheader(title)
    st.caption("Searches the **real** transformation — interpolated and rounded as the attacker stores it — "
               "inside the attacker range C (dense grid, random draws, then a local refinement: along the "
               "gradient where the transformation is differentiable) for the parameter that hurts the "
               "classifier most. An attack only shows what one search found; a certificate is a proof.")
    cols = st.columns(4)
    if models:
        if models is True:
            from pages._shared import image_classifiers

            models = image_classifiers()
        names = list(models)
        mname = cols[0].selectbox("Model", names, key=f"{key}_model")
        try:
            model, card = cached_model(mname)
        except SemsmoothError as e:
            show_error(e)
            return
        shape = (card or {}).get("input_shape")
        if shape and list(x.shape) != list(shape):
            st.info(f"{mname} takes inputs of shape {tuple(shape)}; this input is {tuple(x.shape)} "
                    "(pick an embedded MNIST digit).")
            return
        pp_spec = (card or {}).get("preprocess") or ((card or {}).get("augmentation") or {}).get("preprocess")
        if pp_spec:
            from semsmooth_core.preprocess import Preprocess

            preprocess = Preprocess.parse(pp_spec) or None
    if model is None:
        st.info("Pick a model to attack.")
        return
    try:
        rng = attack_range(t, attacker_range)
    except SemsmoothError as e:
        show_error(e)
        return
    bud = int(cols[1].number_input("Budget (forward passes)", 20, 100000, budget, 50, key=f"{key}_budget",
                                   help="How many model forward passes the search may spend on this input."))
    n_pred = int(cols[2].number_input("PREDICT n", 10, 100000, 100, 50, key=f"{key}_npred",
                                      disabled=smoothed is None,
                                      help=hint("n", "Here: the votes PREDICT draws at each attacked parameter.")))
    alpha = float(cols[3].number_input("PREDICT α", 1e-6, 0.5, 0.001, format="%.4f", key=f"{key}_alpha",
                                       disabled=smoothed is None,
                                       help=hint("alpha", "Here: PREDICT abstains unless its binomial test passes at α.")))
    rs = " × ".join(f"[{lo:g}, {hi:g}]" for lo, hi in rng)
    if st.button(f"Find the worst parameter in C = {rs} {t.unit}", key=f"{key}_go"):
        try:
            gen = torch.Generator().manual_seed(int(st.session_state.get("seed", 0)))
            with torch.no_grad():
                base = Target(model, preprocess)
                y = int(label) if label is not None else int(base.predict(x)["label"])
            region = Region.box(rng)
            with st.spinner("Searching…"):
                res = {"base": attack_input(base, t, x, y, region, bud, generator=gen, interpolation=interpolation,
                                            stop_when_broken=False)}
                sm_target = None
                if smoothed is not None:
                    cfg = {**ATTACK_DEFAULTS, **smoothed, "transform": t.name, "interpolation": interpolation,
                           "n_predict": n_pred, "n_eps": int(smoothed.get("n_eps", 20)), "alpha": alpha,
                           "n_probe": 16}
                    sm_target = make_target(cfg, model, None, preprocess)
                    sb = max(bud, 2 * sm_target.predict_cost + 12 * sm_target.cost)
                    res["smoothed"] = attack_input(sm_target, t, x, y, region, sb, generator=gen,
                                                   interpolation=interpolation)
                for k, a in res.items():
                    if a.get("worst_param") is None:
                        continue
                    xa = t(x.unsqueeze(0), torch.tensor([a["worst_param"]]), interpolation=interpolation)[0]
                    a["base_at_worst"] = int(base.predict(xa)["label"])
                    if sm_target is not None:
                        a["smoothed_at_worst"] = int(sm_target.predict(xa, gen)["label"])
            st.session_state[f"{key}_result"] = {"res": res, "y": y, "transform": t.name, "range": rng,
                                                 "interp": interpolation, "alpha": alpha, "n": n_pred,
                                                 "smoothed": smoothed is not None}
        except SemsmoothError as e:
            show_error(e)
        except RuntimeError as e:  # e.g. an input the model cannot take: one line, the page stays up
            show_error(f"the attack failed: {str(e).splitlines()[0][:160]}")
    got = st.session_state.get(f"{key}_result")
    if not got or got["transform"] != t.name:
        return
    y = got["y"]
    units = ", ".join(t.units)
    rs = " × ".join(f"[{lo:g}, {hi:g}]" for lo, hi in got["range"])
    ncols = 1 + len(got["res"])
    cols = st.columns(ncols)
    _show_input(cols[0], t, x, f"original (class {_name(y, classes)})")
    for col, (k, a) in zip(cols[1:], got["res"].items()):
        who = "base classifier" if k == "base" else "smoothed classifier"
        if a.get("worst_param") is None:
            col.write(f"No admissible parameter for the {who}.")
            continue
        p = ", ".join(f"{v:.4g}" for v in a["worst_param"])
        xa = t(x.unsqueeze(0), torch.tensor([a["worst_param"]]), interpolation=got["interp"])[0]
        verdict = "**broken**" if a["broken"] else "not broken"
        _show_input(col, t, xa, f"worst for the {who}: γ = {p} {units}")
        line = f"{verdict} — base predicts **{_name(a.get('base_at_worst'), classes)}**"
        if "smoothed_at_worst" in a:
            line += f", smoothed (PREDICT) **{_name(a['smoothed_at_worst'], classes)}**"
        col.markdown(line)
        col.caption(f"margin {a['margin']:.3g} ({'logit' if k == 'base' else 'smoothed probability, EoT'}); "
                    f"{a['n_forward']:,} forward passes" + (f" + {a['n_backward']:,} backward" if a.get("n_backward") else ""))
    if got["smoothed"]:
        st.caption(f"C = {rs} {t.unit}. Smoothed predictions are Cohen et al.'s PREDICT with n = {got['n']} "
                   f"(outer) at α = {got['alpha']:g}: a class other than the smoothed classifier's own answer "
                   "comes with probability ≤ α; 'abstain' means the votes were too close to call.")


def attack_curves() -> None:
    """Results page: empirical robust accuracy (attack over C = [−r, r]) beside certified accuracy at r."""
    import plotly.graph_objects as go

    st.subheader("Empirical robustness beside certificates")
    if not RESULTS.exists():
        st.caption("No attack results yet: run `python benchmarks/attack_table.py`.")
        return
    try:
        data = json.loads(RESULTS.read_text())
    except (OSError, json.JSONDecodeError) as e:
        show_error(f"{RESULTS.name} could not be read ({type(e).__name__})")
        return
    entries = [e for e in data.get("entries", []) if e.get("curve")]
    if not entries:
        st.caption("The attack results hold no curves.")
        return
    label = {i: f"{e['name']} ({e['model']})" for i, e in enumerate(entries)}
    pick = st.selectbox("Setting", list(label), format_func=label.get, key="res_attack_pick")
    e = entries[pick]
    cv = e["curve"]
    fig = go.Figure()
    for k, name, dash in (("certified", "certified accuracy (radius ≥ r)", "solid"),
                          ("empirical_base", "empirical robust accuracy, base (attack in [−r, r])", "dot"),
                          ("empirical_smoothed", "empirical robust accuracy, smoothed (attack in [−r, r])", "dash")):
        if cv.get(k) is not None:
            fig.add_trace(go.Scatter(x=cv["r"], y=cv[k], name=name, mode="lines+markers", line=dict(dash=dash)))
    fig.update_layout(xaxis_title=f"r ({e.get('unit', '')})", yaxis_title="accuracy", yaxis_range=[0, 1.02],
                      height=340, margin=dict(t=20, b=10), legend=dict(orientation="h", y=-0.25))
    st.plotly_chart(fig, width="stretch")
    st.caption(f"{e.get('n')} held-out inputs; `{e.get('command', data.get('command', ''))}`. Empirical robust "
               "accuracy is an upper estimate of true robustness (a stronger attack can only lower it); certified "
               "accuracy is a lower bound with failure probability α per certificate.")
