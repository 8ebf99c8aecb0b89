"""Certify: one input against a semantic transformation — double smoothing (Fischer §6.2, Lemma 4.3),
plain parameter smoothing (Thm 4.2) or Gaussian noise — with the planner's preview, a progress bar
with stages, a result card, the guarantee in words, a gallery of sampled inputs and the outer counts.

Session-state keys: reads ``"certify_run"`` and ``"certify_index"`` (set by the Results page when a
row is clicked) and opens that input with that run's parameters, model, dataset and seed. The
random draws come from ``pipeline.input_generator(seed, index)``, as in dataset runs, so the same
settings reproduce the run's row."""

from __future__ import annotations

import time

import streamlit as st

from pages import _guarantee as gu
from pages._shared import (BYO, SIDEBAR_PREFILL, StageProgress, certify_widget_values, checked_data_root,
                           current_model, data_options, ensure_worker, image_classifiers, model_ref, sample_picker,
                           seed, show_error, take_run_request)
from semsmooth_core import explain, presets, smoothing, transforms
from semsmooth_core import progress as stages
from semsmooth_core.glossary import help_text
from semsmooth_core.models import cards
from semsmooth_core.runs import config as run_config
from semsmooth_core.runs import jobs, pipeline
from pages._attack_panel import attack_panel
from semsmooth_core.preprocess import Preprocess
from semsmooth_core.validation import SemsmoothError

GALLERY = 8
FIX_WIDGET = {"n_eps": "cf_ne", "n_gamma": "cf_ng", "sigma_eps": "cf_se"}  # a failure's fix -> the widget
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
    st.session_state["cf_E_src_next"] = f"from run #{req['run']}"
    p = req["params"]
    side = {"dataset": p["dataset"], "seed": int(p["seed"])}
    if p.get("model") in image_classifiers():
        side["model_name"] = st.session_state["cf_model"] = p["model"]  # (keeps the run's σ_ε, preprocessing)
    elif p.get("model"):
        notes.append(f"the run used model `{p['model']}`; pick or upload it in the sidebar")
    if any(st.session_state.get(k) != v for k, v in side.items()):
        st.session_state[SIDEBAR_PREFILL] = side
        st.rerun()

for k, v in st.session_state.pop("cf_pending", {}).items():  # values a button asked for (before the widgets)
    st.session_state[k] = v


def _set(**values):  # button callbacks: widget values change before the next run draws them
    st.session_state.update(values)


def _apply_preset(p: presets.Preset):
    c = pipeline.with_defaults(p.config())
    values, _ = certify_widget_values(c, int(st.session_state.get("cf_index", 0)), image_tf)
    pp = c["preprocess"] if c["preprocess"] not in (None, "auto") else "none"
    st.session_state.update(values | {"cf_pp": pp, "cf_se": float(c["sigma_eps"]), "cf_C": values.get("cf_C", 0.0)})
    for k in ("cf_result", "cf_E_est", "cf_long_ok"):
        st.session_state.pop(k, None)
    if c["smoothing"] == "double":
        st.session_state["cf_E_src_next"] = f"preset “{p.label}”: {c['E_source']}"
    if c.get("model") in image_classifiers():  # no card reset of σ_ε / preprocessing for the preset's model
        st.session_state["model_name"] = st.session_state["cf_model"] = c["model"]
    st.session_state["dataset"] = c["dataset"]


def _tf_changed():  # another transformation: its own σ_γ and C (in its unit), not the old numbers
    d = presets.transform_defaults(st.session_state["cf_tf"])
    st.session_state["cf_sg"], st.session_state["cf_C"] = d["sigma_gamma"], d["C"]


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
            + "".join(f"  \nNote: {n}" for n in opened["notes"]), icon=":material/link:")
st.markdown(
    "Certify that the **smoothed** classifier keeps its prediction for a whole range of rotations, "
    "translations, scalings or brightness changes — with interpolation and 8-bit rounding taken into "
    "account. **Double smoothing** (Fischer et al. §6.2) samples parameters β ~ N(0, σ_γ²); at each "
    "β an inner Gaussian smoothing (σ_ε) must certify an l2 radius ≥ E, the bound on the "
    "interpolation error; Lemma 4.3 turns the count of such β into a radius in the "
    "transformation's units, corrected by ρ = α_ε + (1 − q̲_E) + α_E. Hover over any ? for the symbol in words.")
gu.preset_buttons("certify", _apply_preset, "cf_preset")
st.caption("Audio ±3 dB and GSmooth zoom blur presets are on the Audio volume and GSmooth pages.")

loaded = current_model()
model, card = loaded if loaded is not None else (None, None)
pp_default = cards.preprocess(card) or "none"                          # as run_config.resolve reads them
se_default = float(cards.sigma_eps(card) or run_config.SIGMA_EPS_FALLBACK)
model_sigma = cards.sigma_eps(card)
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
st.session_state.setdefault("cf_tf", "rotation" if "rotation" in image_tf else image_tf[0])
for k, v in (("cf_E", 0.3), ("cf_q", 0.97)):
    st.session_state.setdefault(k, v)
for k, v in (("cf_sg", "sigma_gamma"), ("cf_C", "C")):
    st.session_state.setdefault(k, presets.transform_defaults(st.session_state["cf_tf"])[v])

left, right = st.columns([1, 1.6], gap="large")
with left:
    x, label, caption = sample_picker("cf_index")
    kind = st.radio("Smoothing", ["double", "transform", "noise"], horizontal=True, key="cf_kind",
                    help="double: realistic transforms (interpolation, rounding); transform: Thm 4.2 for "
                         "ideal composable transforms; noise: plain Gaussian l2 smoothing.")
    tname = st.selectbox("Transformation", image_tf, key="cf_tf", disabled=kind == "noise", on_change=_tf_changed)
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
    sigma_gamma = c1.number_input(f"σ_γ ({t.unit})", min_value=0.0, format="%.3f", key="cf_sg",
                                  disabled=kind == "noise", help=help_text("sigma_gamma"))
    sigma_eps = c2.number_input("σ_ε (pixel scale)", min_value=0.0, format="%.3f", key="cf_se",
                                help=help_text("sigma_eps", "Default: the model's training noise."),
                                disabled=kind == "transform")
    crange = c3.number_input(f"Attacker range C: ± ({t.unit})", min_value=0.0, format="%.3f", key="cf_C",
                             disabled=kind == "noise", help=help_text("C"))
    e1, e2, e3 = st.columns(3)
    E = e1.number_input("E (l2 bound on ε)", min_value=0.0, format="%.4f", key="cf_E",
                        disabled=kind != "double", help=help_text("E"))
    q_E = e2.number_input("q̲_E (lower bound)", min_value=0.0, max_value=1.0, format="%.4f",
                          key="cf_q", disabled=kind != "double", help=help_text("q_E_lower"))
    with e3:
        st.write("")
        est = st.button("Estimate E here", key="cf_est", disabled=kind != "double",
                        help=f"E at the q = {D['q']:g} quantile of ‖ε‖ ({D['E_samples']:,} samples on the "
                             "training split; q̲_E: its lower bound at 1 − α_E)")
    n1, n2, n3, n4 = st.columns(4)
    n0 = n1.number_input("n0", value=D["n0"], min_value=1, step=10, key="cf_n0", help=help_text("n0"))
    n_gamma = n2.number_input("n_γ", value=D["n_gamma"], min_value=1, step=10, key="cf_ng", disabled=kind == "noise", help=help_text("n_gamma"))
    n_eps = n3.number_input("n_ε (noise: n)", value=D["n_eps"], min_value=1, step=10, key="cf_ne",
                            disabled=kind == "transform", help=help_text("n_eps"))
    bs = n4.number_input("batch", value=D["batch_size"], min_value=1, step=100, key="cf_bs")
    a1, a2, a3 = st.columns(3)
    a_g = a1.number_input("α_γ (noise, transform: α)", value=D["alpha_gamma"], min_value=0.0, max_value=1.0,
                          format="%.4f", key="cf_ag", help=help_text("alpha_gamma"))
    a_e = a2.number_input("α_ε", value=D["alpha_eps"], min_value=0.0, max_value=1.0, format="%.4f", key="cf_ae",
                          disabled=kind != "double", help=help_text("alpha_eps"))
    a_E = a3.number_input("α_E", value=D["alpha_E"], min_value=0.0, max_value=1.0, format="%.4f", key="cf_aE",
                          disabled=kind != "double", help=help_text("alpha_E"))
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
st.session_state["cf_config"] = config

# ---- E is tied to the settings it was set for; any change makes it stale (no certificate with it)
fp = explain.E_fingerprint(config)
bound = st.session_state.get("cf_E_bound")
if bound is None or (bound["E"], bound["q"]) != (E, q_E) or "cf_E_src_next" in st.session_state:
    bound = st.session_state["cf_E_bound"] = {"fp": fp, "E": E, "q": q_E,
                                              "source": st.session_state.pop("cf_E_src_next", "typed in")}
stale = explain.E_changes(bound["fp"], fp) if kind == "double" else []
if stale:
    st.warning(f"E = {E:g} (q̲_E = {q_E:g}, {bound['source']}) belongs to other settings: since it was set, "
               + "; ".join(stale) + ". Certify is off until E matches these settings.")
    r1, r2 = st.columns(2)
    est = r1.button("Re-estimate E for these settings", key="cf_reest", type="primary") or est
    r2.button("Keep this E for these settings (I know it holds)", key="cf_keepE", on_click=_set,
              kwargs={"cf_E_bound": {**bound, "fp": fp, "source": "kept by you for these settings"}})
else:
    st.caption(f"E = {E:g}, q̲_E = {q_E:g}: {bound['source']}; made for {tname}, {interp}, σ_γ {sigma_gamma:g}, "
               f"C ±{crange:g} {t.unit}, preprocessing {pp_spec or 'none'}." if kind == "double" else "")

if est:
    bar = StageProgress(st.progress(0.0, text="E estimate"), STAGES["double"])
    bar.stage("E estimate", unit="error samples")
    try:
        got = pipeline.estimate_E(pipeline.with_defaults({**config, "E_samples": 2000, "q": 0.95}), pp_spec,
                                  progress=bar)
        st.session_state["cf_E_est"] = got | {"fp": fp}
        if stale:  # one click: estimate and use it
            st.session_state["cf_pending"] = {"cf_E": round(float(got["E"]), 4), "cf_q": round(float(got["q_E_lower"]), 4)}
            st.session_state["cf_E_src_next"] = f"estimated here on the training split ({got['n']} samples)"
            st.rerun()
    except SemsmoothError as e:
        show_error(e)
if st.session_state.get("cf_E_est") and kind == "double":
    g = st.session_state["cf_E_est"]
    old = g.get("fp") != fp
    i1, i2 = st.columns([4, 1])
    i1.info(f"Estimated E = {g['E']:.4f} (l2, pixel scale) with q̲_E = {g['q_E_lower']:.4f} "
            f"(q̂_E = {g['q_E']:.4f}, {g['n']} samples of ‖ε‖ on the training split)"
            + (" — for earlier settings, not these." if old else "."))
    i2.button("Use these values", key="cf_use_E", on_click=_set, disabled=old,
              kwargs={"cf_E": round(float(g["E"]), 4), "cf_q": round(float(g["q_E_lower"]), 4),
                      "cf_E_src_next": f"estimated here on the training split ({g['n']} samples)"})

# ---- planner preview: what these settings can give at best; failures in words, with their fix
found = explain.diagnose_settings(config, model_sigma) if kind != "transform" else []
gu.failures(found, FIX_WIDGET, "cf_pre")
try:
    # the one config (as the CLI resolves it): widget values left at their defaults keep their source
    cfg, sources = run_config.resolve_form(config, card, need_model=False)
    c = cfg.to_dict()
    with st.expander("Resolved configuration (where each value comes from: set here, model card, default)"):
        st.dataframe([{"setting": r["name"], "value": str(r["value"]), "from": r["source"]}
                      for r in cfg.describe(sources) if r["value"] is not None],
                     hide_index=True, width="stretch")
    gu.planner_preview(c, t.unit, t.dim, {"n_gamma": "cf_ng", "n_eps": "cf_ne", "alpha_gamma": "cf_ag",
                                               "alpha_eps": "cf_ae"}, "cf_plan")
    ok = True
except SemsmoothError as e:
    if not any(f.kind == "dead_end" for f in found):  # already said in words above
        show_error(e)
    ok = False

# ---- time guard: forward passes x measured seconds per pass on this device; ask above a few minutes
spf = None
if model is not None:
    sk = (ref and ref[0], int(bs), tuple(x.shape))
    if st.session_state.get("cf_spf", (None,))[0] != sk:
        st.session_state["cf_spf"] = (sk, explain.seconds_per_forward(model, x, int(bs)))
    spf = st.session_state["cf_spf"][1]
go_ok = gu.time_guard(explain.forward_passes(config), spf, "cf_long_ok",
                      "; transforming the sampled β adds to it" if kind == "double" else "")
run = st.button("Certify", type="primary", disabled=not ok or model is None or bool(stale) or not go_ok, key="cf_run")
if run:
    stop_slot = st.empty()
    stop_slot.button("Stop", key="cf_stop", help="Interrupts the certification (nothing is certified).")
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
        stop_slot.empty()
        st.session_state["cf_result"] = (cert, label, tname, interp, pp_spec,
                                         {"config": config, "index": idx, "model": ref and ref[0]})
    except SemsmoothError as e:
        show_error(e)
elif st.session_state.get("cf_stop"):
    st.info("Stopped: the certification was interrupted before it finished; nothing was certified.")
with st.expander("Run these settings on many inputs in the background (results in the Results page)"):
    b1, b2, b3 = st.columns([1, 1, 2])
    many = b1.number_input("Inputs", 1, 100000, 100, key="cf_many")
    first = b2.number_input("First index", 0, 10**7, 0, key="cf_first")
    if b3.button("Queue the run", key="cf_queue", disabled=not ok or model_ref() is None or bool(stale)):
        ref = model_ref()
        try:
            from semsmooth_core.runs import Store

            store = Store()
            if st.session_state.get("model_name") == BYO and ref[1]:
                raise SemsmoothError("background runs need a semsmooth checkpoint or TorchScript file, "
                                     "not a plain state_dict")
            queued, _ = run_config.resolve_form({**config, "split": "heldout", "root": checked_data_root(),
                                                 **data_options()}, card)
            rid = jobs.create_job(queued, range(int(first), int(first) + int(many)), store)
            ensure_worker(store)
            st.success(f"Run {rid} queued; follow it on the Results page.")
        except SemsmoothError as e:
            show_error(e)

res = st.session_state.get("cf_result")
if res:
    cert, true_label, tn, ip, pps = res[:5]
    made = res[5] if len(res) > 5 else {"config": config, "index": st.session_state.get("cf_index"), "model": ref and ref[0]}
    changed = explain.config_changes(made["config"], config)
    if changed or made["index"] != st.session_state.get("cf_index") or made["model"] != (ref and ref[0]):
        st.info("The last result was made with other settings or another input (" +
                (", ".join(changed) or "input or model") + "): press Certify for a result with these.")
    else:
        st.subheader("Result")
        gu.guarantee_card(cert)
        gu.failures(explain.diagnose_result(cert, true_label, model_sigma), FIX_WIDGET, "cf_post")
        st.caption("In one sentence: " + smoothing.explain_certificate(cert))
        if cert.extra.get("smoothing") in ("double", "transform"):
            pic = gu.attacker_picture(cert, key="cf_picture")
            try:
                params = [p for p, _ in pic["strip"]]
                imgs = smoothing.transformed_inputs(x, tn, params, ip, Preprocess.parse(pps) or None)
                gu.strip(imgs, params, [ok_ for _, ok_ in pic["strip"]], pic["unit"])
            except SemsmoothError as e:
                show_error(e)
        if cert.extra.get("smoothing") == "double":
            gu.double_details(cert, x, tn, ip, Preprocess.parse(pps) or None, t.unit, GALLERY)
        elif cert.counts:
            gu.vote_bars(cert.counts)
attack_panel("cf_attack", x, label, model, tname, crange, interpolation=interp, preprocess=pp_spec,
             smoothed={"smoothing": kind, "sigma_gamma": sigma_gamma, "sigma_eps": sigma_eps, "n_eps": 20})
