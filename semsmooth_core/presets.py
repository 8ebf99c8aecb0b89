"""Presets as data (issue 15): per-transformation defaults for σ_γ and the attacker range C, and
one-click settings that reproduce the rows of the README's tables.

Nothing here computes a formula; it only says which settings a README row was made with, where
its E came from (the E file the table's script wrote, so the preset uses the very same E and
q̲_E) and which model it used. Pages map these settings to their widgets; tests check that
every preset matches its README row.

- :func:`transform_defaults` ``(name) -> {"sigma_gamma", "C"}``: the settings of the paper's
  MNIST tables where the README has a row for the transformation (rotation 30°/±30°,
  translation 4 px/±4 px per axis, ``benchmarks/certify_tables.py`` ``CONFIGS``), else the
  transformation's own defaults from the registry.
- :data:`PRESETS` and :func:`get` / :func:`for_page`: one :class:`Preset` per README row a
  classroom is likely to want; :meth:`Preset.config` is a ``runs.pipeline`` config (E filled in
  from its file).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from semsmooth_core.paths import REPO_ROOT
from semsmooth_core.validation import SemsmoothError

# σ_γ and C (half-width per axis) of the README's Fischer Tables 2/3 rows (benchmarks/certify_tables.py
# CONFIGS) and the README's audio table (benchmarks/audio_volume.py defaults).
TABLE_SETTINGS = {"rotation": (30.0, 30.0), "translation": (4.0, 4.0), "volume": (3.0, 3.0)}


def transform_defaults(name: str) -> dict:
    """Default σ_γ (per axis) and attacker half-range C for a transformation, in its own unit.

    Rotation and translation use the README's table settings (what the shipped models were
    certified with); any other registered transformation its registry defaults
    (``default_sigma[0]`` and the largest ``|default_range|``)."""
    from semsmooth_core import transforms

    t = transforms.get(name)
    if t.name in TABLE_SETTINGS:
        sg, c = TABLE_SETTINGS[t.name]
    else:
        sg = float(t.default_sigma[0])
        c = float(max(abs(float(b)) for r in t.default_range for b in r))
    return {"sigma_gamma": float(sg), "C": float(c), "unit": t.unit}


@dataclass(frozen=True)
class Preset:
    """One README row as settings. ``page``: "certify", "audio" or "gsmooth"; ``config``: the
    ``runs.pipeline`` keys of the row (E/q̲_E come from ``E_file`` when given); ``readme``: text
    that identifies the row in README.md (tests look it up there); ``source``: the command or
    file behind the row."""

    key: str
    label: str
    page: str
    settings: dict
    readme: tuple[str, ...]
    source: str
    E_file: str | None = None
    notes: str = ""
    extra: dict = field(default_factory=dict)

    def config(self) -> dict:
        """The row's settings as a pipeline config; with ``E_file``: E and q̲_E of that file
        (the same estimate the table used) and ``E_source`` naming it."""
        c = dict(self.settings)
        if self.E_file:
            path = REPO_ROOT / self.E_file
            try:
                d = json.loads(path.read_text())
            except (OSError, ValueError) as e:
                raise SemsmoothError(f"preset {self.key}: cannot read its E file {self.E_file} ({e})") from e
            c["E"], c["q_E_lower"] = float(d["E"]), float(d["q_E_lower"])
            c["E_source"] = f"{self.E_file} (training split, {d.get('n', '?')} samples)"
            setup = d.get("setup", {})
            mismatch = [k for k, v in (("transform", c.get("transform")), ("interpolation", c.get("interpolation")),
                                       ("preprocess", c.get("preprocess"))) if setup.get(k) not in (None, v)]
            if mismatch:
                raise SemsmoothError(f"preset {self.key}: its E file was made for other settings ({', '.join(mismatch)})")
        return c


_FISCHER = {"smoothing": "double", "dataset": "mnist", "sigma_eps": 0.3, "n0": 50, "n_gamma": 100, "n_eps": 200,
            "alpha_gamma": 0.001, "alpha_eps": 0.001, "alpha_E": 0.001, "sequential": "looks"}

PRESETS: tuple[Preset, ...] = (
    Preset("fischer_rotation_bilinear", "Fischer Table 2: rotation, bilinear", "certify",
           {**_FISCHER, "model": "mnist_cnn_rot_vg_noise030", "transform": "rotation", "interpolation": "bilinear",
            "preprocess": "vignette+gauss:5:1", "sigma_gamma": 30.0, "attacker_range": [[-30.0, 30.0]]},
           ("| rotation | bil. | random | dataset average 0.375 |",),
           "benchmarks/certify_tables.py --model mnist_cnn_rot_vg_noise030 --transforms rotation "
           "--interpolations bilinear --E-json benchmarks/results/certify_rotation_vg.E.json",
           E_file="benchmarks/results/certify_rotation_vg.E.json"),
    Preset("fischer_translation_bicubic", "Fischer Table 3: translation, bicubic", "certify",
           {**_FISCHER, "model": "mnist_cnn_trans_g_noise030", "transform": "translation", "interpolation": "bicubic",
            "preprocess": "gauss:5:1", "sigma_gamma": [4.0, 4.0], "attacker_range": [[-4.0, 4.0], [-4.0, 4.0]]},
           ("| translation | bic. | random | dataset average 0.321 |",),
           "benchmarks/certify_tables.py --model mnist_cnn_trans_g_noise030 --transforms translation "
           "--interpolations bicubic",
           E_file="benchmarks/results/certify_tables.E.translation_bicubic_gauss-5-1.json"),
    Preset("cohen_sigma025", "Cohen σ = 0.25 (Gaussian noise)", "certify",
           {"smoothing": "noise", "dataset": "mnist", "model": "mnist_cnn_noise025", "sigma_eps": 0.25, "n0": 100,
            "n_eps": 1000, "alpha_gamma": 0.001},
           ("the page's defaults σ = 0.25, n0 = 100, n = 1,000, α = 0.001, model `mnist_cnn_noise025`",),
           "benchmarks/run_lifecycle.py (README: A 1,000-input background run)"),
    Preset("audio_3db", "Audio ±3 dB (speech_cnn)", "audio",
           {"smoothing": "double", "dataset": "speech-words", "model": "speech_cnn", "transform": "volume",
            "sigma_gamma": 3.0, "attacker_range": 3.0, "sigma_eps": 0.01, "n0": 10, "n_gamma": 100, "n_eps": 20,
            "alpha_gamma": 0.001, "alpha_eps": 0.001, "alpha_E": 0.001, "q": 0.99, "E_samples": 4000},
           ("| speech_cnn | ±3 dB |", "n0 = 10, n_γ = 100, n_ε = 20, all α = 0.001"),
           "benchmarks/audio_volume.py --model speech_cnn --clips 30",
           notes="the page estimates E on the held-out clips; the README's table used the training clips"),
    Preset("gsmooth_zoom_blur", "GSmooth zoom blur", "gsmooth",
           {"smoothing": "gsmooth", "dataset": "mnist", "model": "gsmooth_zoom_blur_cnn", "transform": "zoom_blur",
            "sigma_gamma": 0.2, "sigma2": 0.5, "n0": 20, "n_gamma": 500, "alpha_gamma": 0.001},
           ("| zoom blur | σ₁ = 0.2 |", "n0 = 20, n = 500, α = 0.001", "augmented noise σ₂ = 0.5"),
           "benchmarks/gsmooth_tables.py"),
)

_BY_KEY = {p.key: p for p in PRESETS}


def get(key: str) -> Preset:
    try:
        return _BY_KEY[key]
    except KeyError:
        raise SemsmoothError(f"unknown preset {key!r}; known: {', '.join(_BY_KEY)}") from None


def for_page(page: str) -> list[Preset]:
    return [p for p in PRESETS if p.page == page]
