"""Progress stages of a certification, shared by the core (which announces them through
``on_stage(stage)``) and the pages (which label a progress bar with them). A page compares with
these constants, never with a string of its own.

Each stage is a ``str`` (an ``Enum`` of strings), so older callbacks that print or compare the
name keep working.
"""

from __future__ import annotations

from enum import Enum


class Stage(str, Enum):
    E_ESTIMATE = "E estimate"                                 # error samples on the training split
    SELECTION = "selection"                                   # n0 samples: which class
    ESTIMATION = "estimation"                                 # n samples: the bound on p_A
    OUTER_SELECTION = "outer selection"                       # double smoothing: n0 sampled β
    TRANSFORMING = "transforming the sampled β"               # double smoothing: ψ_β(x) for n_γ β
    INNER_SMOOTHING = "inner smoothing at the sampled β"      # double smoothing: the inner tests

    def __str__(self) -> str:
        return self.value


LABELS = {Stage.E_ESTIMATE: "E estimate", Stage.SELECTION: "Selection", Stage.ESTIMATION: "Estimation",
          Stage.OUTER_SELECTION: "Outer selection",
          Stage.TRANSFORMING: "Outer estimation — transforming the sampled β",
          Stage.INNER_SMOOTHING: "Outer estimation — inner smoothing at the sampled β"}
"""How a page names each stage (the bar's text)."""

PLAN = {"double": [Stage.E_ESTIMATE, Stage.OUTER_SELECTION, Stage.TRANSFORMING, Stage.INNER_SMOOTHING],
        "ksmooth": [Stage.E_ESTIMATE, Stage.OUTER_SELECTION, Stage.INNER_SMOOTHING],
        "transform": [Stage.SELECTION, Stage.ESTIMATION], "noise": [Stage.SELECTION, Stage.ESTIMATION],
        "gsmooth": [Stage.SELECTION, Stage.ESTIMATION]}
"""The stages of each smoothing, in order."""


def label(stage) -> str:
    """The page's label of a stage (a Stage or its string value)."""
    try:
        return LABELS[Stage(stage)]
    except ValueError:
        s = str(stage)
        return s[:1].upper() + s[1:]
