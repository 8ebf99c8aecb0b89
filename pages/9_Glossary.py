"""Glossary: every symbol the app and the CLI show, in plain words first, then its unit and where the papers define it; radius units of every transformation (GSmooth severities included)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from semsmooth_core import transforms
from semsmooth_core.glossary import ENTRIES
from semsmooth_core.gsmooth.certify import NON_RESOLVABLE

st.title("Glossary")
st.markdown(
    "Every symbol the pages show, in plain words. Hover the small **?** next to an input or a "
    "number on any page for the same text. References: *Fischer et al.* = Certified Defense to "
    "Image Transformations via Randomized Smoothing (semantic smoothing); *Hao et al.* = GSmooth; "
    "*Cohen et al.* = Certified Adversarial Robustness via Randomized Smoothing.")

query = st.text_input("Search", "", key="gl_query", placeholder="e.g. radius, q_E, σ, severity",
                      help="Filters by symbol, name or words in the explanation (case-insensitive).")
q = query.strip().lower()
shown = [e for e in ENTRIES if not q or q in " ".join((e.key, e.symbol, e.name, e.plain, e.unit)).lower()]
if not shown:
    st.info(f"No entry matches “{query}”.")
for e in shown:
    tail = " ".join(x for x in (f"Unit: {e.unit.rstrip('.')}." if e.unit else "",
                                f"Reference: {e.ref.rstrip('.')}." if e.ref else "") if x)
    st.markdown(f"**{e.symbol}** — **{e.name}**. {e.plain}" + (f"  \n:gray[*{tail}*]" if tail else ""))

st.subheader("Radius units by transformation")
st.markdown(
    "A certified radius is always in the unit of the thing that is smoothed: the transformation's "
    "parameter for semantic smoothing and GSmooth (a GSmooth radius is a change of the severity ξ), "
    "l2 distance in pixel scale [0, 1] for Gaussian noise smoothing.")
rows = [{"transformation": t.label or name, "name (CLI)": name, "parameters": ", ".join(t.param_names),
         "radius unit": ", ".join(t.units), "input": t.modality,
         "pages": "GSmooth (radius = change of severity ξ)" if name in NON_RESOLVABLE
         else ("Audio volume" if t.modality == "audio" else "Certify, Transform explorer, Error distribution"
               if t.composable else "command line (python -m semsmooth_core certify)")}
        for name in transforms.names() for t in [transforms.get(name)]]
rows.append({"transformation": "Gaussian noise", "name (CLI)": "(noise smoothing)", "parameters": "any change δ",
             "radius unit": "l2, pixel scale [0, 1]", "input": "image", "pages": "Smoothing basics, Certify, Results"})
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
