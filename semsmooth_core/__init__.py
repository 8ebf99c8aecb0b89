"""semsmooth_core — certificates of robustness against semantic perturbations by randomized smoothing.

The library behind the semsmooth app. It never imports streamlit: pages and the CLI call it.
"""

__version__ = "0.1.0"

from semsmooth_core.validation import SemsmoothError  # noqa: F401  (re-exported)
