"""Certify: one input against a semantic transformation — double smoothing (Fischer §6.2, Lemma 4.3),
plain parameter smoothing (Thm 4.2) or Gaussian noise — with the planner's preview, a progress bar
with stages, a result card, the guarantee in words, a gallery of sampled inputs and the outer counts.

Session-state keys: reads ``"certify_run"`` and ``"certify_index"`` (set by the Results page when a
row is clicked) and opens that input with that run's parameters, model, dataset and seed. The
random draws come from ``pipeline.input_generator(seed, index)``, as in dataset runs, so the same
settings reproduce the run's row."""

from __future__ import annotations

import time

import plotly.graph_objects as go
import streamlit as st

from pages._shared import (BYO, SIDEBAR_PREFILL, StageProgress, certify_widget_values, current_model,
                           ensure_worker, image_classifiers, model_ref, sample_picker, seed, show_error,
                           take_run_request, tensor_to_image)
from semsmooth_core import planner, progress as stages, smoothing, stats, transforms
from semsmooth_core.models import cards
from semsmooth_core.runs import config as run_config
from semsmooth_core.runs import jobs, pipeline
from semsmooth_core.preprocess import Preprocess
from semsmooth_core.validation import SemsmoothError

GALLERY = 8
STAGES = {"double": ["E estimate", "Outer selection", "Outer estimation"],
          "transform": ["Selection", "Estimation"], "noise": ["Selection", "Estimation"]}
D = run_config.DEFAULTS  # every default of a certification (the CLI's too)
image_tf = [n for n in transforms.names() if transforms.get(n).modality == "image" and transforms.get(n).composable]

# ---- opened from a run of the Results page: prefill the widgets before they are drawn
req = take_run_request()
if req is not None:
    values, notes = certify_widget_values(req["params"], req["index"], image_tf)
    st.session_state.update(values)
    st.session_state.pop("cf_result", None)
    st.session_state["cf_opened"] = req | {"notes": notes}
    p = req["params"]
    side = {"dataset": p["dataset"], "seed": int(p["seed"])}
    if p.get("model") in image_classifiers():
        side["model_name"] = st.session_state["cf_model"] = p["model"]  # (keeps the run's σ_ε, preprocessing)
    elif p.get("model"):
        notes.append(f"the run used model `{p['model']}`; pick or upload it in the sidebar")
    if any(st.session_state.get(k) != v for k, v in side.items()):
        st.session_state[SIDEBAR_PREFILL] = side
        st.rerun()

st.title("Certify")
opened = st.session_state.get("cf_opened")
if opened is not None and st.session_state.get("cf_index") != opened["index"]:
    opened = st.session_state.pop("cf_opened") and None  # another input, or the page was left
if opened is not None:
    row = opened["row"]
    stored = (f" Its stored row: prediction {'abstain' if row['prediction'] == -1 else row['prediction']}, "
              f"radius {row['radius']:.4g} {row.get('radius_unit') or ''} — press Certify to reproduce it "
              "(same seed, same per-input random stream)." if row else " The run has no row for it yet.")
    st.info(f"**Opened from run #{opened['run']} ({opened['name']}), input {opened['index']}**: the run's "
            f"parameters, model, dataset and seed are filled in.{stored}"
            + "".join(f"  \n⚠️ {n}" for n in opened["notes"]), icon="🔗")
st.markdown(
    "Certify that the **smoothed** classifier keeps its prediction for a whole range of rotations, "
    "translations, scalings or brightness changes — with interpolation and 8-bit rounding taken into "
    "account. **Double smoothing** (Fischer et al. §6.2) samples parameters β ~ N(0, σ_γ²); at each "
    "β an inner Gaussian smoothing (σ_ε) must certify an l2 radius ≥ E, the bound on the "
    "interpolation error; Lemma 4.3 turns the count of such β into a radius in the "
    "transformation's units, corrected by ρ = α_ε + (1 − q̲_E) + α_E.")

loaded = current_model()
model, card = loaded if loaded is not None else (None, None)
pp_default = cards.preprocess(card) or "none"                          # as run_config.resolve reads them
se_default = float(cards.sigma_eps(card) or run_config.SIGMA_EPS_FALLBACK)
ref = model_ref()
if st.session_state.get("cf_model", ref and ref[0]) != (ref and ref[0]):
    # Another model: its card's preprocessing and σ_ε, no stale results. Assigned, not deleted:
    # only an assignment makes the browser show the new value of a widget it already has.
    st.session_state["cf_pp"], st.session_state["cf_se"] = pp_default, se_default
    for k in ("cf_E_est", "cf_result"):
        st.session_state.pop(k, None)
st.session_state["cf_model"] = ref and ref[0]
st.session_state.setdefault("cf_pp", pp_default)  # the widgets take their values from here (no value=:
st.session_state.setdefault("cf_se", se_default)  # a widget given both warns)

left, right = st.columns([1, 1.6], gap="large")
with left:
    x, label, caption = sample_picker("cf_index")
    kind = st.radio("Smoothing", ["double", "transform", "noise"], horizontal=True, key="cf_kind",
                    help="double: realistic transforms (interpolation, rounding); transform: Thm 4.2 for "
                         "ideal composable transforms; noise: plain Gaussian l2 smoothing.")
    tname = st.selectbox("Transformation", image_tf, index=image_tf.index("rotation") if "rotation" in image_tf else 0,
                         key="cf_tf", disabled=kind == "noise")
    t = transforms.get(tname)
    if st.session_state.get("cf_interp") not in t.interpolations:
        st.session_state.pop("cf_interp", None)  # e.g. after switching to a transform without it
    interp = st.selectbox("Interpolation", list(t.interpolations),
                          index=list(t.interpolations).index("bilinear") if "bilinear" in t.interpolations else 0,
                          key="cf_interp", disabled=not t.uses_interpolation or kind == "noise")
    pp_spec = st.text_input("Preprocessing (as the model was trained)", key="cf_pp",
                            help="e.g. vignette+gauss:5:1 or vignette+lowpass:8; E must be measured with the same.")

with right:
    c1, c2, c3 = st.columns(3)
    sigma_gamma = c1.number_input(f"σ_γ ({t.unit})", value=float(t.default_sigma[0]), min_value=0.0,
                                  format="%.3f", key="cf_sg", disabled=kind == "noise")
    sigma_eps = c2.number_input("σ_ε (pixel scale)", min_value=0.0, format="%.3f", key="cf_se", help="default: the model's training noise",
                                disabled=kind == "transform")
    crange = c3.number_input(f"Attacker range C: ± ({t.unit})", value=float(abs(t.default_range[0][1])),
                             min_value=0.0, format="%.3f", key="cf_C", disabled=kind == "noise")
    e1, e2, e3 = st.columns(3)
    E = e1.number_input("E (l2 bound on ε)", value=0.3, min_value=0.0, format="%.4f", key="cf_E",
                        disabled=kind != "double")
    q_E = e2.number_input("q̲_E (lower bound)", value=0.97, min_value=0.0, max_value=1.0, format="%.4f",
                          key="cf_q", disabled=kind != "double")
    with e3:
        st.write("")
        est = st.button("Estimate E here", key="cf_est", disabled=kind != "double",
                        help=f"E at the q = {D['q']:g} quantile of ‖ε‖ ({D['E_samples']:,} samples on the "
                             "training split; q̲_E: its lower bound at 1 − α_E)")
    n1, n2, n3, n4 = st.columns(4)
    n0 = n1.number_input("n0", value=D["n0"], min_value=1, step=10, key="cf_n0")
    n_gamma = n2.number_input("n_γ", value=D["n_gamma"], min_value=1, step=10, key="cf_ng", disabled=kind == "noise")
    n_eps = n3.number_input("n_ε (noise: n)", value=D["n_eps"], min_value=1, step=10, key="cf_ne",
                            disabled=kind == "transform")
    bs = n4.number_input("batch", value=D["batch_size"], min_value=1, step=100, key="cf_bs")
    a1, a2, a3 = st.columns(3)
    a_g = a1.number_input("α_γ (noise, transform: α)", value=D["alpha_gamma"], min_value=0.0, max_value=1.0,
                          format="%.4f", key="cf_ag")
    a_e = a2.number_input("α_ε", value=D["alpha_eps"], min_value=0.0, max_value=1.0, format="%.4f", key="cf_ae",
                          disabled=kind != "double")
    a_E = a3.number_input("α_E", value=D["alpha_E"], min_value=0.0, max_value=1.0, format="%.4f", key="cf_aE",
                          disabled=kind != "double")
    sequential = st.checkbox("Sequential inner tests (sound early stopping)", value=True, key="cf_seq",
                             disabled=kind != "double")

config = {"model": ref and ref[0], "smoothing": kind, "transform": tname, "interpolation": interp,
          "sigma_gamma": sigma_gamma if t.dim == 1 else [sigma_gamma] * t.dim, "sigma_eps": sigma_eps,
          "E": E, "q_E_lower": q_E, "n0": int(n0), "n_gamma": int(n_gamma), "n_eps": int(n_eps),
          "alpha_gamma": a_g, "alpha_eps": a_e, "alpha_E": a_E, "attacker_range": [[-crange, crange]] * t.dim,
          "sequential": "looks" if sequential else None, "batch_size": int(bs), "preprocess": pp_spec,
          "seed": seed(), "dataset": st.session_state.get("dataset", D["dataset"])}
if kind == "noise":  # noise smoothing's own n and α
    config |= {"n": int(n_eps), "alpha": a_g}


def _set(**values):  # button callbacks: widget values change before the next run draws them
    st.session_state.update(values)


if est:
    bar = StageProgress(st.progress(0.0, text="E estimate"), STAGES["double"])
    bar.stage("E estimate", unit="error samples")
    try:
        got = pipeline.estimate_E(pipeline.with_defaults(config), pp_spec, progress=bar)
        st.session_state["cf_E_est"] = got
    except SemsmoothError as e:
        show_error(e)
if st.session_state.get("cf_E_est") and kind == "double":
    g = st.session_state["cf_E_est"]
    i1, i2 = st.columns([4, 1])
    i1.info(f"Estimated E = {g['E']:.4f} (l2, pixel scale) with q̲_E = {g['q_E_lower']:.4f} "
            f"(q̂_E = {g['q_E']:.4f}, {g['n']} samples of ‖ε‖ on the training split).")
    i2.button("Use these values", key="cf_use_E", on_click=_set,
              kwargs={"cf_E": round(float(g["E"]), 4), "cf_q": round(float(g["q_E_lower"]), 4)})

# ---- planner preview: what these settings can give at best, dead ends before a run
try:
    # the one config (as the CLI resolves it): widget values left at their defaults keep their source
    cfg, sources = run_config.resolve_form(config, card, need_model=False)
    c = cfg.to_dict()
    with st.expander("Resolved configuration (where each value comes from: set here, model card, default)"):
        st.dataframe([{"setting": r["name"], "value": str(r["value"]), "from": r["source"]}
                      for r in cfg.describe(sources) if r["value"] is not None],
                     hide_index=True, width="stretch")
    p1, p2, p3, p4 = st.columns(4)
    if kind == "double":
        pre = planner.summary_before_run(float(sigma_gamma), sigma_eps, E, q_E, int(n_gamma), int(n_eps), a_g,
                                         a_e, a_E, attacker_max=cfg.range_norm_max, n0=int(n0))
        p1.metric(f"Max certifiable radius ({t.unit})", f"{pre['max_radius']:.3g}")
        p2.metric("ρ", f"{pre['rho']:.4f}")
        p3.metric("Inner threshold Φ(E/σ_ε)", f"{pre['inner_threshold']:.4f}",
                  help=f"smallest n_ε that can certify E: {pre['inner_min_n'] or '—'}")
        p4.metric("Forward passes (max)", f"{pre['forward_passes_max']:,}")
        if pre["dead_end"]:
            st.warning(f"Dead end: {pre['dead_end']}")
        best = planner.plan_double(int(n_gamma) * int(n_eps), float(sigma_gamma), sigma_eps, [(E, q_E)],
                                   alpha_total=a_g + a_e, alpha_E=a_E, attacker_max=cfg.range_norm_max)[0]
        s1, s2 = st.columns([4, 1])
        s1.caption(f"Planner's suggestion for the same budget: n_γ = {best.n_gamma}, n_ε = {best.n_eps}, "
                   f"α_γ = {best.alpha_gamma:.2g}, α_ε = {best.alpha_eps:.2g} (expected radius "
                   f"{best.expected_radius:.3g} {t.unit} under a 99 %-accurate base model)"
                   + (f" — still a dead end: {best.dead_end}" if best.dead_end else "."))
        s2.button("Use the suggestion", key="cf_plan", disabled=bool(best.dead_end), on_click=_set,
                  kwargs={"cf_ng": best.n_gamma, "cf_ne": best.n_eps, "cf_ag": round(best.alpha_gamma, 6),
                          "cf_ae": round(best.alpha_eps, 6)})
    else:
        sig, n_est = (sigma_eps, int(n_eps)) if kind == "noise" else (float(sigma_gamma), int(n_gamma))
        unit = "l2 (pixel scale [0,1])" if kind == "noise" else t.unit
        p1.metric(f"Max certifiable radius ({unit})", f"{stats.max_radius(sig, n_est, a_g):.3g}",
                  help="all n estimation samples vote for the top class")
        p2.metric("Forward passes", f"{int(n0) + n_est:,}")
        p3.metric("Failure probability α", f"{a_g:g}")
    ok = True
except SemsmoothError as e:
    show_error(e)
    ok = False

run = st.button("Certify", type="primary", disabled=not ok or model is None, key="cf_run")
if run:
    sp = StageProgress(st.progress(0.0, text="Starting…"), STAGES[kind])
    sp.stage(STAGES[kind][1] if kind == "double" else "Selection")

    def on_stage(stage):
        sp.stage(stages.label(stage))

    def progress(done, total):
        if kind != "double" and done > int(n0) and sp.name == "Selection":
            sp.stage("Estimation")
        sp(done, total)

    try:
        pp = Preprocess.parse(pp_spec)
        idx = int(st.session_state.get("cf_index", 0))
        t0 = time.perf_counter()
        cert = pipeline.certify_one(c, x, model, pp if pp else None, pipeline.input_generator(seed(), idx),
                                    progress, on_stage)
        secs = time.perf_counter() - t0
        sp.bar.progress(1.0, text=f"Done: {cert.n_forward:,} forward passes in {secs:.1f} s "
                                  f"({cert.n_forward / max(secs, 1e-9):,.0f} per second)")
        st.session_state["cf_result"] = (cert, label, tname, interp, pp_spec)
    except SemsmoothError as e:
        show_error(e)

with st.expander("Run these settings on many inputs in the background (results in the Results page)"):
    b1, b2, b3 = st.columns([1, 1, 2])
    many = b1.number_input("Inputs", 1, 100000, 100, key="cf_many")
    first = b2.number_input("First index", 0, 10**7, 0, key="cf_first")
    if b3.button("Queue the run", key="cf_queue", disabled=not ok or model_ref() is None):
        ref = model_ref()
        try:
            from semsmooth_core.runs import Store

            store = Store()
            if st.session_state.get("model_name") == BYO and ref[1]:
                raise SemsmoothError("background runs need a semsmooth checkpoint or TorchScript file, "
                                     "not a plain state_dict")
            queued, _ = run_config.resolve_form({**config, "split": "heldout",
                                                 "root": st.session_state.get("data_root") or None}, card)
            rid = jobs.create_job(queued, range(int(first), int(first) + int(many)), store)
            ensure_worker(store)
            st.success(f"Run {rid} queued; follow it on the Results page.")
        except SemsmoothError as e:
            show_error(e)

res = st.session_state.get("cf_result")
if res:
    cert, true_label, tn, ip, pps = res
    st.subheader("Result")
    m1, m2, m3, m4, m5 = st.columns(5)
    m1.metric("Class", "abstain" if cert.abstained else str(cert.label),
              delta=None if cert.abstained else ("correct" if cert.label == true_label else "wrong"))
    m2.metric("Radius", f"{cert.radius:.4g}", help=cert.radius_unit)
    m2.caption(cert.radius_unit + (" (clipped to C)" if cert.extra.get("clipped") else ""))
    m3.metric("p̲_A (lower bound)", f"{cert.p_lower:.4f}")
    m4.metric("ρ", f"{cert.rho:.4f}")
    m5.metric("Forward passes", f"{cert.n_forward:,}", delta=f"{cert.seconds:.1f} s", delta_color="off")
    st.success("**What is guaranteed.** " + smoothing.explain_certificate(cert))
    ex = cert.extra
    if ex.get("smoothing") == "double":
        g1, g2 = st.columns([1.6, 1])
        with g1:
            st.markdown("**Sampled transformed inputs** (what the inner smoothing saw) and its verdict")
            fails = [i for i, v in enumerate(ex["inner_verdict"]) if v != "certified"]
            oks = [i for i, v in enumerate(ex["inner_verdict"]) if v == "certified"]
            k = max(GALLERY - len(oks), min(len(fails), GALLERY // 2))  # failures too, when there are
            pick = sorted(fails[:k] + oks[:GALLERY - k])
            try:
                betas = [ex["betas"][i] for i in pick]
                imgs = smoothing.transformed_inputs(x, tn, betas, ip, Preprocess.parse(pps) or None)
                cols = st.columns(4)
                for k, (i, b, im) in enumerate(zip(pick, betas, imgs)):
                    mark = {"certified": "✅", "not certified": "❌"}.get(ex["inner_verdict"][i], "⏸")
                    cols[k % 4].image(tensor_to_image(im, 96),
                                      caption=f"{mark} β = {', '.join(f'{v:.1f}' for v in b)} {t.unit}: "
                                              f"{ex['inner_verdict'][i]} ({ex['inner_hits'][i]}/{ex['inner_n'][i]})")
            except SemsmoothError as e:
                show_error(e)
        with g2:
            s = ex["outer_successes"]
            fig = go.Figure(go.Bar(x=["inner certified (≥ E)", "not certified / not run"],
                                   y=[s, ex["n_gamma"] - s], marker_color=["#2ca02c", "#d62728"]))
            fig.update_layout(title=f"Outer counts over n_γ = {ex['n_gamma']} sampled β", height=300,
                              margin=dict(t=40, b=10), yaxis_title="sampled β")
            st.plotly_chart(fig, width="stretch")
            tot = ex["inner_class_totals"]
            fig2 = go.Figure(go.Bar(x=[str(i) for i in range(len(tot))], y=tot))
            fig2.update_layout(title="Inner votes by class (all noisy samples)", height=250,
                               margin=dict(t=40, b=10), xaxis_title="class", yaxis_title="votes")
            st.plotly_chart(fig2, width="stretch")
        if ex.get("sequential"):
            st.caption(f"Sequential looks at n_ε ∈ {ex['sequential']['looks']} (α spent "
                       f"{[round(a, 6) for a in ex['sequential']['alphas']]}); "
                       f"{cert.n_forward:,} of {ex['n0'] + ex['n_gamma'] * ex['n_eps']:,} forward passes used"
                       + (f"; stopped early: {ex['stopped_early']}" if ex.get("stopped_early") else ""))
    elif cert.counts:
        fig = go.Figure(go.Bar(x=[str(i) for i in range(len(cert.counts))], y=cert.counts))
        fig.update_layout(title="Votes by class (estimation samples)", height=280, margin=dict(t=40, b=10),
                          xaxis_title="class", yaxis_title="votes")
        st.plotly_chart(fig, width="stretch")
