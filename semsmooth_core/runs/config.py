"""One certification config: every default once, the model card's values, one validation.

:class:`CertifyConfig` is the typed configuration of a certification run. The CLI (``certify``,
``runs start``), the pages, the benchmarks, the scripts and the results store all build it with
:func:`resolve` (or load a stored one with :func:`as_validated`), so a value has one name and one
default everywhere.

Where a value comes from (``resolve`` returns it as ``provenance``: field -> source):

- ``"flag"``: given by the caller (a CLI option, a page widget set away from its default, a
  benchmark's argument, a stored run's parameters);
- ``"card"``: read from the model card (:mod:`semsmooth_core.models.cards`): σ_ε (the training
  noise), the preprocessing, GSmooth's σ₁ (``sigma_gamma``) and σ₂ (``sigma2``), class names;
- ``"default"``: this module's default (the dataclass field's, or the transformation's own
  σ and attacker range);
- ``"derived"``: computed from the others (radius unit, the attacker box, its largest norm).

Precedence: flag > card > default. Noise smoothing has its own sample size and failure
probability, ``n`` and ``alpha`` (the pipeline dict also carries them as ``n_eps`` and
``alpha_gamma`` for stored runs of older versions). ``alpha`` given alone also sets α_γ, α_ε and
α_E (the CLI's ``--alpha``).

Validation (``pipeline.validate_config``, one-line ``SemsmoothError`` messages) runs once, in
:func:`resolve`; the dict of :meth:`CertifyConfig.to_dict` is a :class:`ValidatedDict`, which the
pipeline, the job queue and the lifecycle take as it is instead of checking it again.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from semsmooth_core.validation import SemsmoothError

SOURCES = ("flag", "card", "default", "derived")
SIGMA_EPS_FALLBACK = 0.25
"""σ_ε when neither a flag nor the model card gives one (pixel scale [0,1])."""
SIGMA_EPS_FALLBACK_AUDIO = 0.01
"""The same for audio (waveform scale [-1,1): 0.25 there would drown a clip)."""


def _audio(values: Mapping, card: Mapping | None) -> bool:
    """An audio run: a speech dataset, an audio model card or the volume transform."""
    return (values.get("dataset") == "speech-words" or (card or {}).get("modality") == "audio"
            or (values.get("smoothing") != "noise" and values.get("transform") == "volume"))


@dataclass
class CertifyConfig:
    """A certification run's configuration (names as in the CLI's options, ``-`` -> ``_``)."""

    # data and model
    dataset: str = "mnist"
    split: str = "heldout"
    root: str | None = None
    model: str | None = None
    device: str | None = None
    preprocess: str = "none"            # card's when not given ("auto" = the card's)
    class_names: list | None = None     # card's
    image_size: int | None = None       # resize images to this size before certifying (None: as stored)
    channels: str | None = None         # convert images to "grey" or "rgb" to match the model (None: as stored)
    # smoothing
    smoothing: str = "double"           # double | transform | noise | ksmooth | gsmooth
    transform: str = "rotation"
    interpolation: str = "bilinear"
    sigma_gamma: Any = None             # transform units; default: the transform's σ (GSmooth σ₁: card's)
    sigma_eps: Any = SIGMA_EPS_FALLBACK  # pixel scale; default: the card's training noise
    sigma2: float | None = None         # GSmooth augmented noise (pixel scale); card's, else 0.5
    dist: str = "exp"                   # GSmooth resolvable: exp | uniform | folded_gaussian
    surrogate: str | None = None        # GSmooth: default surrogate_<transform>
    attacker_range: Any = None          # half-width or pairs; None: the transform's default C
    attacker: str | None = None         # random (γ ~ C) | worst-case (any γ in C); None: random
    # interpolation error E
    E: Any = None
    q_E_lower: Any = None
    estimate_E: bool = False
    E_scope: str | None = None          # input (this input, at certify time) | dataset (training split
                                        # average); None: input unless an E is given or estimated
    E_input_samples: int | None = None  # per-input E: error samples (None: the planner's)
    q: float = 0.95                     # target quantile of ‖ε‖ with estimate_E
    E_samples: int = 2000
    E_worst_case: bool = False
    # samples and confidence
    n0: int = 50
    n_gamma: int = 100
    n_eps: Any = 200
    n: int = 200                        # noise smoothing: estimation samples
    alpha_gamma: float = 0.001
    alpha_eps: Any = 0.001
    alpha_E: float = 0.001
    alpha: float = 0.001                # noise smoothing: failure probability
    inner_mode: str = "lemma"           # lemma | bonferroni
    partitions: str = "halves"
    sequential: Any = None              # None | looks | mixture
    attack: bool = False                # also attack each certified input inside its radius
    batch_size: int = 1000
    seed: int = 0
    # derived (not set by callers)
    radius_unit: str | None = None
    attacker_box: list | None = None
    range_norm_max: float | None = None
    extra: dict = field(default_factory=dict)   # set by validation (smoothing_note, xi_max, ...)

    def to_dict(self) -> "ValidatedDict":
        """The pipeline's dict (``semsmooth_core.runs.pipeline``): every field, ``extra`` merged in."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        d.update(self.extra)
        return ValidatedDict(d)

    def describe(self, provenance: Mapping[str, str]) -> list[dict]:
        """``[{"name", "value", "source"}]`` for display (the Certify page, ``certify --json``)."""
        return [{"name": k, "value": getattr(self, k), "source": provenance.get(k, "default")}
                for k in USER_FIELDS]


DERIVED = ("radius_unit", "attacker_box", "range_norm_max")
USER_FIELDS = tuple(f.name for f in fields(CertifyConfig) if f.name not in DERIVED + ("extra",))
DEFAULTS: dict = {f.name: f.default for f in fields(CertifyConfig)
                  if f.name not in DERIVED + ("extra",)}
"""Every default of a certification (the pipeline's DEFAULTS are these)."""
DEFAULTS["preprocess"] = "auto"   # the low-level pipeline reads the card itself when not resolved


class ValidatedDict(dict):
    """A pipeline config dict that :func:`resolve` has validated (taken as it is downstream)."""


def _given(v) -> bool:
    return v is not None and not (isinstance(v, str) and v == "auto")


def _collect(flags: Mapping, card: Mapping | None, source: str) -> tuple[dict, dict, dict, Mapping]:
    """Values before validation: defaults, then the card, then the flags. Returns
    ``(values, provenance, extra keys, card)``."""
    from semsmooth_core.models import cards

    flags = {k: v for k, v in dict(flags).items() if v is not None}
    unknown = [k for k in flags if k not in DEFAULTS and k not in DERIVED + ("extra",)]
    extra = {k: flags.pop(k) for k in unknown}       # keys of other layers (E_estimate, notes): kept
    for k in DERIVED:
        flags.pop(k, None)
    if card is None:
        card = cards.card_of(flags.get("model")) if flags.get("model") else {}
    values = dict(DEFAULTS)
    prov = {k: "default" for k in DEFAULTS}

    def put(k, v, src):
        values[k], prov[k] = v, src

    # noise smoothing's own n and alpha (older configs named them n_eps and alpha_gamma / alpha_eps)
    if flags.get("smoothing", DEFAULTS["smoothing"]) == "noise":
        if "n" not in flags and "n_eps" in flags and not isinstance(flags["n_eps"], (list, tuple)):
            flags["n"] = flags["n_eps"]
        if "alpha" not in flags:
            for k in ("alpha_gamma", "alpha_eps"):
                if k in flags and not isinstance(flags[k], (list, tuple)):
                    flags["alpha"] = flags[k]
                    break
    for k, v in flags.items():
        if k == "preprocess" and not _given(v):
            continue
        put(k, v, source)
    if "alpha" in flags:                         # --alpha: the default of every alpha not given
        for k in ("alpha_gamma", "alpha_eps", "alpha_E"):
            if k not in flags:
                put(k, flags["alpha"], source)
    # the model card
    if "sigma_eps" not in flags and cards.sigma_eps(card) is not None:
        put("sigma_eps", cards.sigma_eps(card), "card")
    elif "sigma_eps" not in flags and _audio(values, card):
        put("sigma_eps", SIGMA_EPS_FALLBACK_AUDIO, "default")
    if not _given(flags.get("preprocess")):
        pp = cards.preprocess(card)
        put("preprocess", pp if pp else "none", "card" if pp else "default")
    if cards.class_names(card) is not None:
        put("class_names", cards.class_names(card), "card")
    # noise smoothing: the pipeline's names for its n and alpha
    if values["smoothing"] == "noise":
        values["n_eps"], values["alpha_gamma"] = values["n"], values["alpha"]
        prov["n_eps"], prov["alpha_gamma"] = prov["n"], prov["alpha"]
    elif values["smoothing"] != "gsmooth" and values.get("sigma_gamma") is None:
        from semsmooth_core import transforms

        t = transforms.get(values["transform"])
        if t.composable:   # (a transform that does not compose goes to GSmooth: σ₁ from its card)
            values["sigma_gamma"] = float(t.default_sigma[0]) if t.dim == 1 else list(t.default_sigma)
    return values, prov, extra, card


def resolve(flags: Mapping, card: Mapping | None = None, *, need_model: bool = True,
            source: str = "flag") -> tuple[CertifyConfig, dict]:
    """``(config, provenance)`` from ``flags`` (field -> value; None or absent = not given) and the
    model card (read from ``flags["model"]`` when ``card`` is None). Validates once; raises a
    one-line SemsmoothError on the first bad value. ``source`` names where the flags came from
    (``"flag"``; ``"run"`` for a stored run's parameters)."""
    from semsmooth_core.runs import pipeline

    values, prov, extra, card = _collect(flags, card, source)
    c = pipeline.validate_config(values, need_model=need_model)
    if c["smoothing"] == "gsmooth":
        filled = pipeline.gsmooth_defaults(c, card)
        for k, v in filled.items():
            if not k.endswith("_from"):
                c[k] = v
                prov[k] = "card" if filled.get(f"{k}_from") == "model card" else "default"
    cfg = CertifyConfig(**{k: c[k] for k in DEFAULTS})
    cfg.extra = {k: v for k, v in c.items() if k not in DEFAULTS and k not in DERIVED}
    cfg.extra.update({k: v for k, v in extra.items() if k not in cfg.extra})
    _derive(cfg, prov)
    return cfg, prov


STRUCTURAL = ("dataset", "split", "root", "model", "device", "smoothing", "transform")
"""Form values that decide what the other defaults are (always taken as given)."""


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (list, tuple)) and len(a) == 1:
        return _same(a[0], b)
    if isinstance(b, (list, tuple)) and len(b) == 1:
        return _same(a, b[0])
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def resolve_form(values: Mapping, card: Mapping | None = None, *, need_model: bool = True
                 ) -> tuple[CertifyConfig, dict]:
    """:func:`resolve` for a form whose widgets always hold a value (a page): a value equal to
    what the config would be without it (the card's or the default) counts as not set, so its
    source stays ``card`` / ``default``; the others are ``flag`` (set on the page). The same
    inputs give the same config as the CLI with only the changed values as options."""
    values = {k: v for k, v in dict(values).items() if v is not None}
    base, _, _, card = _collect({k: values[k] for k in STRUCTURAL if k in values}, card, "flag")
    flags = {}
    for k, v in values.items():
        if k not in DEFAULTS or (k in STRUCTURAL and not _same(v, DEFAULTS[k])):
            flags[k] = v
        elif k in STRUCTURAL:
            continue
        elif k == "attacker_range" and base["smoothing"] not in ("noise", "gsmooth"):
            from semsmooth_core import transforms

            default_box = [list(r) for r in transforms.get(base["transform"]).default_range]
            if not _same(_box(v, len(default_box)), default_box):
                flags[k] = v
        elif not _same(v, base[k]):
            flags[k] = v
    return resolve(flags, card, need_model=need_model)


def _box(rng, dim: int):
    if isinstance(rng, (int, float)):
        return [[-abs(float(rng)), abs(float(rng))] for _ in range(dim)]
    flat = list(rng)
    if flat and not isinstance(flat[0], (list, tuple)):
        return [[-abs(float(v)), abs(float(v))] for v in flat] if len(flat) == dim else [flat]
    return [[float(a), float(b)] for a, b in flat]


def _derive(cfg: CertifyConfig, prov: dict) -> None:
    """Radius unit, the attacker box C (pairs per parameter) and its largest norm."""
    if cfg.smoothing == "noise":
        cfg.radius_unit = "l2 (pixel scale [0,1])" if cfg.dataset != "speech-words" else "l2 (waveform scale)"
        return
    from semsmooth_core import transforms

    t = transforms.get(cfg.transform)
    cfg.radius_unit = t.unit
    for k in DERIVED:
        prov[k] = "derived"
    if cfg.smoothing == "gsmooth":
        xi = cfg.extra.get("xi_max")
        cfg.range_norm_max = float(xi) if xi is not None else None
        cfg.attacker_box = [[0.0, cfg.range_norm_max]] if xi is not None else None
        return
    rng = cfg.attacker_range
    box = [list(map(float, r)) for r in t.default_range] if rng is None else _box(rng, t.dim)
    if len(box) != t.dim:
        raise SemsmoothError(f"{t.name} takes an attacker range per parameter ({t.dim}), got {len(box)}")
    cfg.attacker_box = box
    cfg.range_norm_max = range_norm_max(box)


def range_norm_max(box) -> float:
    """The largest l2 norm of a parameter in the box C (its farthest corner)."""
    return math.sqrt(sum(max(abs(a), abs(b)) ** 2 for a, b in box))


def as_validated(config) -> ValidatedDict:
    """A pipeline dict validated once: a :class:`ValidatedDict` or :class:`CertifyConfig` as it
    is, a plain dict (a stored run's parameters, a test's dict) through :func:`resolve`."""
    if isinstance(config, CertifyConfig):
        return config.to_dict()
    if isinstance(config, ValidatedDict):
        return ValidatedDict(config)
    return resolve(config)[0].to_dict()


def with_E(config: Mapping, E_estimate: dict) -> ValidatedDict:
    """The config with an estimated E filled in (``estimate_E`` off), checked again: the new E
    can be a dead end that the config with ``estimate_E`` could not be checked for."""
    d = {**dict(config), "E": E_estimate["E"], "q_E_lower": E_estimate["q_E_lower"], "estimate_E": False,
         "E_estimate": E_estimate}
    from semsmooth_core.runs import pipeline

    return ValidatedDict(pipeline.validate_config(d))


def replace(cfg: CertifyConfig, **changes) -> CertifyConfig:
    return dataclasses.replace(cfg, **changes)
