"""Input checks shared by the CLI, the app and the library.

Every user-facing error is a :class:`SemsmoothError` with a one-line message; the CLI turns it
into exit code 2, pages into ``st.error``. Nothing here knows about the UI.
"""

from __future__ import annotations

import math


class SemsmoothError(ValueError):
    """Bad input from a user (a parameter, a file, a name). The message is one line."""


def _is_real(v) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def check_positive(name: str, value, *, allow_zero: bool = False) -> float:
    """Return ``value`` as float if it is finite and > 0 (>= 0 with ``allow_zero``)."""
    if not _is_real(value):
        raise SemsmoothError(f"{name} must be a finite number, got {value!r}")
    v = float(value)
    if v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise SemsmoothError(f"{name} must be {bound}, got {v:g}")
    return v


def check_sigma(sigma, name: str = "sigma") -> float:
    """A smoothing standard deviation: finite and strictly positive."""
    return check_positive(name, sigma)


def check_alpha(alpha, name: str = "alpha") -> float:
    """A failure probability strictly inside (0, 1)."""
    if not _is_real(alpha) or not (0.0 < float(alpha) < 1.0):
        raise SemsmoothError(f"{name} must lie strictly between 0 and 1, got {alpha!r}")
    return float(alpha)


def check_count(name: str, value, *, minimum: int = 1) -> int:
    """A sample count: an integer >= ``minimum``."""
    try:
        iv = int(value)
    except (TypeError, ValueError):
        raise SemsmoothError(f"{name} must be an integer, got {value!r}") from None
    if iv != value and not (isinstance(value, float) and value.is_integer()):
        raise SemsmoothError(f"{name} must be an integer, got {value!r}")
    if iv < minimum:
        raise SemsmoothError(f"{name} must be >= {minimum}, got {iv}")
    return iv


def check_n0_n(n0, n, name: str = "n") -> tuple[int, int]:
    """Selection and estimation sample sizes; n0 > n is refused (the selection set is the small one).
    ``name``: what n is called where it is checked (n, n_gamma, ...)."""
    n0 = check_count("n0", n0)
    n = check_count(name, n)
    if n0 > n:
        raise SemsmoothError(f"n0 ({n0}) must not exceed {name} ({n}): n0 selects the class, {name} estimates p_A")
    return n0, n
