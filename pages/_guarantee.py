"""Classroom building blocks shared by Certify, Audio volume and GSmooth (issue 15): the guarantee
card, the attacker-vs-certificate picture, failures with a fix button, preset buttons, the time
guard. No math here: every number and sentence comes from ``semsmooth_core.explain`` /
``semsmooth_core.presets``; this module only draws. Labels are words ("Certified",
"Not covered"), never emoji (Debian's Chromium has no emoji font).

Functions: :func:`guarantee_card`, :func:`attacker_picture`, :func:`strip`, :func:`failures`,
:func:`preset_buttons`, :func:`time_guard`, :func:`double_details`.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from semsmooth_core import explain, presets
from semsmooth_core.glossary import help_text

OK, BAD, GREY, CEIL = "#2ca02c", "#d62728", "#9e9e9e", "#1f77b4"
BLOCKING = ("dead_end", "rho_too_large")
STATUS = {"certified": ("Certified", "green"), "abstained": ("Not certified: abstained", "orange")}


def _fmt(v, nd=4) -> str:
    return "—" if v is None else f"{v:.{nd}g}"


# --------------------------------------------------------------------------- card
def guarantee_card(cert, class_name: str | None = None, container=None) -> dict:
    """The guarantee card of one certificate (any kind). Returns the fields it drew."""
    c = container or st
    g = explain.guarantee_fields(cert, class_name)
    with c.container(border=True):
        label, color = STATUS[g["status"]]
        st.badge(label, color=color)
        st.markdown(f"**{g['method']}**")
        m = st.columns(6)
        m[0].metric("Class", g["class"])
        m[1].metric(f"Radius ({g['unit']})", _fmt(g["radius"]), help=help_text("radius"))
        top = "clipped to C" if g["clipped"] else ("at the n-ceiling" if g["at_ceiling"] else "below the n-ceiling")
        m[2].metric(f"n-ceiling ({g['unit']})", _fmt(g["ceiling"]), delta=top if g["ceiling"] is not None else None,
                    delta_color="off",
                    help=help_text("n", "The largest radius these n samples could ever certify."))
        m[3].metric("p̲_A", f"{g['p_lower']:.4f}", help=help_text("p_lower"))
        m[4].metric("ρ", f"{g['rho']:.4f}", help=help_text("rho"))
        m[5].metric("α", f"{g['alpha']:.4g}", help=help_text("alpha"))
        st.markdown(f"**Attacker:** {g['attacker_words']}.  \n**E:** {g['E_words']}.  \n"
                    f"**Proof or estimate:** {g['sound_words']}.")
        a, b = st.columns(2)
        a.markdown("**Covered**\n" + "".join(f"\n- {s}" for s in g["covered"] or ["nothing"]))
        b.markdown("**Not covered**\n" + "".join(f"\n- {s}" for s in g["not_covered"] or ["—"]))
    return g


# --------------------------------------------------------------------------- picture
def attacker_picture(cert, key: str, title: str | None = None) -> dict:
    """Attacker range C beside the certified interval (1-D) or ball/ellipse with its box (2-D),
    the n-ceiling and the sampled β with their verdicts, in the transformation's units."""
    p = explain.picture(cert)
    u = p["unit"]
    fig = go.Figure()
    if p["dim"] == 1:
        (lo, hi), r = p["C"][0], p["radius"]
        fig.add_trace(go.Scatter(x=[lo, hi], y=[1, 1], mode="lines", line=dict(color=GREY, width=14),
                                 name=f"attacker range C = [{lo:g}, {hi:g}]"))
        cl, ch = (0.0, r) if p["one_sided"] else (-r, r)
        fig.add_trace(go.Scatter(x=[cl, ch], y=[0, 0], mode="lines", line=dict(color=OK, width=14),
                                 name=f"certified: {'0 ≤ ' if p['one_sided'] else '|γ| < '}"
                                      f"{'ξ < ' if p['one_sided'] else ''}{r:.3g}"))
        if p["ceiling"] is not None:
            for v in ([p["ceiling"]] if p["one_sided"] else [-p["ceiling"], p["ceiling"]]):
                fig.add_vline(x=v, line_dash="dash", line_color=CEIL)
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=dict(dash="dash", color=CEIL),
                                     name=f"n-ceiling {p['ceiling']:.3g}"))
        if p["betas"]:
            bs = [b[0] for b in p["betas"]]
            col = [OK if v == "certified" else BAD for v in p["verdicts"]]
            fig.add_trace(go.Scatter(x=bs, y=[-1] * len(bs), mode="markers", marker=dict(color=col, size=7),
                                     name="sampled β (green: inner test passed)"))
        if p["betas"]:
            fig.update_yaxes(tickvals=[-1, 0, 1], ticktext=["sampled β", "certified", "attacker C"], range=[-1.6, 1.6])
        else:
            fig.update_yaxes(tickvals=[0, 1], ticktext=["certified", "attacker C"], range=[-0.6, 1.6])
        fig.update_xaxes(title=u)
        fig.update_layout(height=240)
    else:
        (x0, x1), (y0, y1) = p["C"]
        fig.add_shape(type="rect", x0=x0, x1=x1, y0=y0, y1=y1, line=dict(color=GREY, width=2),
                      fillcolor="rgba(158,158,158,0.15)")
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=dict(color=GREY),
                                 name=f"attacker range C = [{x0:g}, {x1:g}] × [{y0:g}, {y1:g}]"))
        import math

        ax = p["axes"] or [p["radius"], p["radius"]]
        t = [2 * math.pi * i / 120 for i in range(121)]
        fig.add_trace(go.Scatter(x=[ax[0] * math.cos(v) for v in t], y=[ax[1] * math.sin(v) for v in t],
                                 fill="toself", line=dict(color=OK), name="certified " +
                                 ("ellipse" if p["axes"] else f"ball ‖γ‖ < {p['radius']:.3g}")))
        if p["box"]:
            a = p["box"]
            fig.add_shape(type="rect", x0=-a, x1=a, y0=-a, y1=a, line=dict(color=OK, dash="dot"))
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=dict(color=OK, dash="dot"),
                                     name=f"certified box |γ₁|, |γ₂| < {a:.3g}"))
        if p["ceiling"] is not None and not p["axes"]:
            c = p["ceiling"]
            fig.add_trace(go.Scatter(x=[c * math.cos(v) for v in t], y=[c * math.sin(v) for v in t], mode="lines",
                                     line=dict(color=CEIL, dash="dash"), name=f"n-ceiling {c:.3g}"))
        if p["betas"]:
            col = [OK if v == "certified" else BAD for v in p["verdicts"]]
            fig.add_trace(go.Scatter(x=[b[0] for b in p["betas"]], y=[b[1] for b in p["betas"]], mode="markers",
                                     marker=dict(color=col, size=6), name="sampled β"))
        fig.update_xaxes(title=f"γ₁ ({u})")
        fig.update_yaxes(title=f"γ₂ ({u})", scaleanchor="x")
        fig.update_layout(height=380)
    fig.update_layout(title=title or "Attacker range C vs the certified region", margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=-0.25))
    st.plotly_chart(fig, width="stretch", key=key)
    return p


def strip(images, params, ok, unit: str, cols: int | None = None, size: int = 88) -> None:
    """The input at several parameters, each labelled "Certified" or "Not covered"."""
    from pages._shared import tensor_to_image

    cs = st.columns(cols or len(images))
    for i, (im, p, good) in enumerate(zip(images, params, ok)):
        ps = ", ".join(f"{v:+.3g}" for v in p)
        cs[i % len(cs)].image(tensor_to_image(im, size), width="stretch",
                              caption=f"{'Certified' if good else 'Not covered'}: {ps} {unit}")


# --------------------------------------------------------------------------- failures
def failures(items, widget_of: dict, key: str) -> None:
    """Each failure as a warning sentence; a button applies its fix (pipeline key -> widget key
    via ``widget_of``) when the page has a widget for every key of it."""
    for i, f in enumerate(items):
        (st.error if f.kind in BLOCKING else st.warning)(f.sentence)
        if f.fix and all(k in widget_of for k in f.fix):
            vals = {widget_of[k]: v for k, v in f.fix.items()}
            st.button(f.fix_label or "apply", key=f"{key}_fix_{f.kind}_{i}", on_click=_apply, args=(vals,),
                      help="Sets " + ", ".join(f"{k} = {v}" for k, v in f.fix.items()))


def _apply(values: dict) -> None:
    st.session_state.update(values)


# --------------------------------------------------------------------------- presets
def preset_buttons(page: str, on_apply, key: str) -> None:
    """One button per preset of ``page`` (README rows); ``on_apply(preset)`` runs as its callback."""
    ps = presets.for_page(page)
    if not ps:
        return
    st.caption("One-click presets (the settings of a README table row):")
    cols = st.columns(len(ps))
    for c, p in zip(cols, ps):
        c.button(p.label, key=f"{key}_{p.key}", on_click=on_apply, args=(p,),
                 help=f"README row made by: {p.source}" + (f". Note: {p.notes}" if p.notes else ""))


# --------------------------------------------------------------------------- time guard
def time_guard(passes: int, seconds_per_pass: float | None, key: str, note: str = "") -> bool:
    """Show the forward passes and the estimated time on this device; above
    ``explain.LONG_RUN_SECONDS`` ask for a tick before the run. Returns True when the run may start."""
    if seconds_per_pass is None:
        st.caption(f"This run: up to {passes:,} forward passes.")
        return True
    secs = passes * seconds_per_pass
    st.caption(f"This run: up to {passes:,} forward passes, about {explain.human_duration(secs)} on this device "
               f"({seconds_per_pass * 1e3:.3g} ms per forward pass, measured here with this model{note}).")
    if secs <= explain.LONG_RUN_SECONDS:
        return True
    return st.checkbox(f"Yes, start a run of about {explain.human_duration(secs)} (there is a Stop button)", key=key,
                       value=False)


# --------------------------------------------------------------------------- double smoothing details
def double_details(cert, x, transform: str, interpolation: str, preprocess, unit: str, gallery: int = 8) -> None:
    """Double smoothing's sampled transformed inputs with the inner verdicts, the outer counts,
    the inner votes by class and the sequential looks (moved here from the Certify page)."""
    from pages._shared import show_error, tensor_to_image
    from semsmooth_core import smoothing
    from semsmooth_core.validation import SemsmoothError

    ex = cert.extra
    g1, g2 = st.columns([1.6, 1])
    with g1:
        st.markdown("**Sampled transformed inputs** (what the inner smoothing saw) and its verdict")
        fails = [i for i, v in enumerate(ex["inner_verdict"]) if v != "certified"]
        oks = [i for i, v in enumerate(ex["inner_verdict"]) if v == "certified"]
        k = max(gallery - len(oks), min(len(fails), gallery // 2))  # failures too, when there are
        pick = sorted(fails[:k] + oks[:gallery - k])
        try:
            betas = [ex["betas"][i] for i in pick]
            imgs = smoothing.transformed_inputs(x, transform, betas, interpolation, preprocess)
            cols = st.columns(4)
            for j, (i, b, im) in enumerate(zip(pick, betas, imgs)):
                word = {"certified": "Passed", "not certified": "Failed"}.get(ex["inner_verdict"][i], "Not run")
                cols[j % 4].image(tensor_to_image(im, 96),
                                  caption=f"{word}: β = {', '.join(f'{v:.1f}' for v in b)} {unit} — inner test "
                                          f"{ex['inner_verdict'][i]} ({ex['inner_hits'][i]}/{ex['inner_n'][i]})")
        except SemsmoothError as e:
            show_error(e)
    with g2:
        s = ex["outer_successes"]
        fig = go.Figure(go.Bar(x=["inner certified (≥ E)", "not certified / not run"],
                               y=[s, ex["n_gamma"] - s], marker_color=[OK, BAD]))
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


def vote_bars(counts, title: str = "Votes by class (estimation samples)") -> None:
    fig = go.Figure(go.Bar(x=[str(i) for i in range(len(counts))], y=counts))
    fig.update_layout(title=title, height=280, margin=dict(t=40, b=10), xaxis_title="class", yaxis_title="votes")
    st.plotly_chart(fig, width="stretch")


# --------------------------------------------------------------------------- planner preview (Certify)
def planner_preview(config: dict, unit: str, dim: int, widget_of: dict, key: str) -> None:
    """What these settings can give at best, before a run: the n-ceiling, ρ, the share of noisy votes the
    inner test needs, forward passes; for double smoothing the planner's suggestion for the same budget
    with a button that applies it (``widget_of``: pipeline key -> widget key)."""
    from semsmooth_core import planner, stats

    c, kind = config, config["smoothing"]
    p1, p2, p3, p4 = st.columns(4)
    if kind == "double":
        cmax = c.get("range_norm_max")   # the resolved config's largest norm in C (runs.config)
        if cmax is None:
            cmax = abs(c["attacker_range"][0][1]) * dim ** 0.5
        sg = c["sigma_gamma"] if dim == 1 else c["sigma_gamma"][0]
        pre = planner.summary_before_run(float(sg), c["sigma_eps"], c["E"], c["q_E_lower"], c["n_gamma"], c["n_eps"],
                                         c["alpha_gamma"], c["alpha_eps"], c["alpha_E"], attacker_max=cmax, n0=c["n0"])
        p1.metric(f"Max certifiable radius ({unit})", f"{pre['max_radius']:.3g}", help=help_text("n_ceiling"))
        p2.metric("ρ", f"{pre['rho']:.4f}", help=help_text("rho"))
        p3.metric("Share of noisy votes needed Φ(E/σ_ε)", f"{pre['inner_threshold']:.4f}",
                  help=f"smallest n_ε that can certify E: {pre['inner_min_n'] or '—'}")
        p4.metric("Forward passes (max)", f"{pre['forward_passes_max']:,}")
        best = planner.plan_double(c["n_gamma"] * c["n_eps"], float(sg), c["sigma_eps"], [(c["E"], c["q_E_lower"])],
                                   alpha_total=c["alpha_gamma"] + c["alpha_eps"], alpha_E=c["alpha_E"],
                                   attacker_max=cmax)[0]
        s1, s2 = st.columns([4, 1])
        s1.caption(f"Planner's suggestion for the same budget: n_γ = {best.n_gamma}, n_ε = {best.n_eps}, "
                   f"α_γ = {best.alpha_gamma:.2g}, α_ε = {best.alpha_eps:.2g} (expected radius "
                   f"{best.expected_radius:.3g} {unit} under a 99 %-accurate base model)"
                   + (" — still a dead end." if best.dead_end else "."))
        s2.button("Use the suggestion", key=key, disabled=bool(best.dead_end), on_click=_apply,
                  args=({widget_of["n_gamma"]: best.n_gamma, widget_of["n_eps"]: best.n_eps,
                         widget_of["alpha_gamma"]: round(best.alpha_gamma, 6),
                         widget_of["alpha_eps"]: round(best.alpha_eps, 6)},))
    else:
        sig, n_est = (c["sigma_eps"], c["n_eps"]) if kind == "noise" else \
            ((c["sigma_gamma"] if dim == 1 else c["sigma_gamma"][0]), c["n_gamma"])
        u = "l2 (pixel scale [0,1])" if kind == "noise" else unit
        p1.metric(f"Max certifiable radius ({u})", f"{stats.max_radius(float(sig), int(n_est), c['alpha_gamma']):.3g}",
                  help=help_text("n_ceiling"))
        p2.metric("Forward passes", f"{c['n0'] + n_est:,}")
        p3.metric("Failure probability α", f"{c['alpha_gamma']:g}", help=help_text("alpha"))
