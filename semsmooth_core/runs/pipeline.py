"""The per-dataset certification runner shared by the CLI (``certify``), the app and the
background worker (``semsmooth_core.runs.jobs``).

``certify_inputs(config, indices, on_row, progress=None, should_stop=None) -> dict`` certifies
each listed input of a dataset and hands every finished row to ``on_row`` at once (so a results
store never loses finished work); each input is certified from its own generator seeded by
``(seed, index)`` only, so a resumed or reordered run reproduces the same rows.

Config keys (the CLI options; defaults in :data:`DEFAULTS`): ``dataset, split, root, model,
smoothing (double | transform | noise | ksmooth | gsmooth), transform, interpolation, sigma_gamma,
sigma_eps, E, q_E_lower, estimate_E, q, E_samples, E_worst_case, n0, n_gamma, n_eps,
alpha_gamma, alpha_eps, alpha_E, inner_mode, partitions, attacker_range, preprocess,
sequential, batch_size, seed, device, sigma2, dist, surrogate``.

Which parameters each smoothing uses:

- ``double`` (Fischer §6.2): all of them.
- ``ksmooth`` (§6.3): like double, with ``partitions`` and E per partition (a number or list).
- ``transform`` (Thm 4.2, no inner smoothing; exact only for transforms that compose):
  sigma_gamma, n0, n = n_gamma, alpha = alpha_gamma.
- ``noise`` (Thm 3.1, plain Gaussian): sigma = sigma_eps, n0, n = n_eps, alpha = alpha_gamma.
- ``gsmooth`` (Hao et al.; :func:`semsmooth_core.gsmooth.certify.certify`) for the transforms
  that ``gsmooth.certify.handles``: sigma1 = sigma_gamma (transform units; default: the GSmooth
  classifier card's training sigma1, else the transform's default), ``sigma2`` (augmented noise,
  pixel scale; default: the card's, else 0.5), ``dist`` (resolvable transforms: exp | uniform |
  folded_gaussian, scale = sigma_gamma), ``surrogate`` (default ``surrogate_<transform>``),
  n0, n = n_gamma, alpha = alpha_gamma, ξ_max = the upper end of ``attacker_range`` (default:
  the surrogate's training range). No E, q_E or inner smoothing.
  A run asking for ``double`` on a transform that does not compose but that GSmooth handles
  (zoom/defocus/rotational/motion blur, pixelate, Gaussian blur) is switched to ``gsmooth``
  (double smoothing needs ψ_a ∘ ψ_b = ψ_{a+b}); the config then says so in ``smoothing_note``.
"""

from __future__ import annotations

import inspect
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from semsmooth_core import smoothing
from semsmooth_core.progress import Stage
from semsmooth_core.runs import config as config_mod
from semsmooth_core.validation import SemsmoothError, check_alpha, check_count, check_n0_n, check_sigma

SMOOTHINGS = ("double", "transform", "noise", "ksmooth", "gsmooth")

DEFAULTS: dict = dict(config_mod.DEFAULTS)
"""Every key's default: those of :class:`semsmooth_core.runs.config.CertifyConfig` (σ_ε's is the
fallback when the model card has none; :func:`semsmooth_core.runs.config.resolve` reads the card)."""


def with_defaults(config: dict) -> dict:
    cfg = dict(DEFAULTS)
    cfg.update({k: v for k, v in dict(config).items() if v is not None or k not in cfg})
    return cfg


def input_seed(seed: int, index: int) -> int:
    """The seed of one input's generator: a function of (run seed, dataset index) only."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index) & 0xFFFFFFFF]).generate_state(1)[0])


def input_generator(seed: int, index: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(input_seed(seed, index))
    return g


def _sequential(v):
    if v in (None, False, "", "off", "none", "no", "false", 0):
        return None
    if v in (True, "on", "yes", "true", 1):
        return "looks"
    if v in ("looks", "mixture"):
        return v
    raise SemsmoothError(f"sequential must be off, looks or mixture, got {v!r}")


def _validate_gsmooth(c: dict, t) -> None:
    """GSmooth options: the transform must be one GSmooth certifies; σ₁ (= sigma_gamma), σ₂ > 0;
    ``dist`` known; the surrogate present (non-resolvable transforms); ξ_max in the transform's
    range. Sets ``c["xi_max"]`` (None = the surrogate's training range)."""
    from semsmooth_core.gsmooth import certify as gcert
    from semsmooth_core.gsmooth import radii

    if not gcert.handles(t.name):
        handled = [n for n in (gcert.RESOLVABLE + gcert.NON_RESOLVABLE)]
        raise SemsmoothError(f"gsmooth does not certify {t.name}; it handles {', '.join(handled)} "
                             "(use --smoothing double or transform for composable transformations)")
    sg = c["sigma_gamma"]
    if sg is not None:
        vals = sg if isinstance(sg, (list, tuple)) else [sg]
        if len(vals) != t.dim:
            raise SemsmoothError(f"{t.name} takes {t.dim} sigma value(s) (sigma_gamma = sigma1), got {len(vals)}")
        for v in vals:
            check_sigma(v, "sigma_gamma (sigma1)")
    if c["sigma2"] is not None:
        check_sigma(c["sigma2"], "sigma2")
    if t.name in gcert.RESOLVABLE:
        if c["dist"] not in radii.DISTRIBUTIONS:
            raise SemsmoothError(f"unknown smoothing distribution {c['dist']!r}; use one of "
                                 f"{', '.join(radii.DISTRIBUTIONS)}")
    else:
        from semsmooth_core.gsmooth.surrogate import surrogate_path

        surrogate_path(c["surrogate"] or t.name)     # one-line error when it is missing
    rng = c["attacker_range"]
    xi = None
    if rng is not None:
        flat = list(rng) if isinstance(rng, (list, tuple)) else [rng]
        while flat and isinstance(flat[-1], (list, tuple)):
            flat = list(flat[-1])
        try:
            xi = float(flat[-1])
        except (TypeError, ValueError, IndexError):
            raise SemsmoothError(f"attacker_range must be a number (the largest severity), got {rng!r}") from None
        hi = t.bounds[0][1]
        if not (math.isfinite(xi) and 0 < xi <= hi):
            raise SemsmoothError(f"attacker range (xi_max) for {t.name} must lie in (0, {hi:g}] {t.units[0]}, got {xi!r}")
    c["xi_max"] = xi


def validate_config(config: dict, need_model: bool = True) -> dict:
    """Check a run configuration; raise a one-line SemsmoothError on the first bad value.
    Returns the config with defaults filled in. A config validated already (a
    ``config.ValidatedDict``, made by ``config.resolve``) is returned as it is (a copy).
    ``need_model=False``: a preview of the settings before a model is picked."""
    from semsmooth_core import transforms
    from semsmooth_core.data.datasets import dataset_names

    if isinstance(config, config_mod.ValidatedDict):
        return config_mod.ValidatedDict(config)
    c = with_defaults(config)
    if c["smoothing"] not in SMOOTHINGS:
        raise SemsmoothError(f"unknown smoothing {c['smoothing']!r}; use {', '.join(SMOOTHINGS)}")
    if c["dataset"] not in dataset_names():
        raise SemsmoothError(f"unknown dataset {c['dataset']!r}; known: {', '.join(dataset_names())}")
    if need_model and not c.get("model"):
        raise SemsmoothError("no model given (a shipped name or a checkpoint path)")
    t = transforms.get(c["transform"]) if c["smoothing"] != "noise" else None
    if t is not None and not t.composable:
        from semsmooth_core.gsmooth import certify as gcert

        if c["smoothing"] == "double" and gcert.handles(t.name):
            c["smoothing"] = "gsmooth"
            c["smoothing_note"] = (f"smoothing switched from double to gsmooth: {t.name} does not compose "
                                   "(double smoothing needs psi_a(psi_b(x)) = psi_(a+b)(x)); GSmooth certifies it")
        elif c["smoothing"] in ("double", "transform", "ksmooth"):
            hint = "; use --smoothing gsmooth" if gcert.handles(t.name) else ""
            raise SemsmoothError(f"{t.name} does not compose (psi_a(psi_b(x)) != psi_(a+b)(x)), so "
                                 f"{c['smoothing']} smoothing cannot certify it{hint}")
    if c["smoothing"] == "gsmooth":
        _validate_gsmooth(c, t)
    if t is not None and c["interpolation"] not in t.interpolations:
        raise SemsmoothError(f"{t.name} supports interpolation {', '.join(t.interpolations)}, "
                             f"not {c['interpolation']!r}")
    if t is not None and c["smoothing"] != "gsmooth":
        sg = c["sigma_gamma"] if c["sigma_gamma"] is not None else t.default_sigma
        smoothing.parse_sigma(sg, t.dim)
    if c["smoothing"] in ("double", "ksmooth", "noise"):
        sig = c["sigma_eps"]
        for s in (sig if isinstance(sig, (list, tuple)) else [sig]):
            check_sigma(s, "sigma_eps")
    n_g = check_count("n_gamma", c["n_gamma"])
    n_e = c["n_eps"]
    for v in (n_e if isinstance(n_e, (list, tuple)) else [n_e]):
        check_count("n_eps", v)
    if c["smoothing"] == "ksmooth":
        check_count("n0", c["n0"])
    else:
        check_n0_n(c["n0"], n_e if c["smoothing"] == "noise" else n_g, "n" if c["smoothing"] == "noise" else "n_gamma")
    for k in ("alpha_gamma", "alpha_eps", "alpha_E"):
        av = c[k]
        for v in (av if isinstance(av, (list, tuple)) else [av]):
            check_alpha(v, k)
    check_count("batch_size", c["batch_size"])
    check_count("seed", c["seed"], minimum=0)
    c["sequential"] = _sequential(c["sequential"])
    if c["smoothing"] in ("double", "ksmooth"):
        if c["estimate_E"]:
            if not (0.0 < float(c["q"]) < 1.0):
                raise SemsmoothError(f"q must lie strictly between 0 and 1, got {c['q']!r}")
            check_count("E_samples", c["E_samples"], minimum=10)
        else:
            if c["E"] is None or c["q_E_lower"] is None:
                raise SemsmoothError("double smoothing needs E and q_E_lower (or estimate_E)")
            qs = c["q_E_lower"] if isinstance(c["q_E_lower"], (list, tuple)) else [c["q_E_lower"]]
            Es = c["E"] if isinstance(c["E"], (list, tuple)) else [c["E"]]
            for E in Es:
                smoothing.check_E(E, 1.0)
            for q in qs:
                smoothing.check_E(0.0, q)
            if c["smoothing"] == "double":
                a_in = float(c["alpha_eps"]) / (n_g if c["inner_mode"] == "bonferroni" else 1)
                msg = smoothing.inner_dead_end(float(c["E"]), float(c["sigma_eps"]), int(n_e), a_in,
                                               c["sequential"])
                if msg:
                    raise SemsmoothError(msg)
        if c["inner_mode"] not in ("lemma", "bonferroni"):
            raise SemsmoothError(f"inner_mode must be lemma or bonferroni, got {c['inner_mode']!r}")
    return c


def load_setup(c: dict):
    """(model, card, preprocess callable or None, device) for a validated config."""
    from semsmooth_core.device import get_device
    from semsmooth_core.models import load_model
    from semsmooth_core.preprocess import Preprocess

    device = get_device(c.get("device"))
    model, card = load_model(c["model"], device=device)
    spec = c.get("preprocess")
    if spec in (None, "auto"):
        from semsmooth_core.models import cards

        spec = cards.preprocess(card if isinstance(card, dict) else {}) or "none"
    pp = Preprocess.parse(spec)
    return model, card, (pp if pp else None), device, str(pp)


def error_data(c: dict) -> tuple[torch.Tensor, str]:
    """The inputs E is estimated on: the dataset's TRAINING split (x ~ D, independent of the
    certified inputs), and a description of what was used.

    - ``mnist``, ``mnist-torchvision``, ``cifar10``: split ``train``.
    - ``speech-words``: split ``train`` — the training clips that ``scripts/synth_speech.py --part
      train`` rebuilds under ``data/speech_words/`` (not shipped), or the Speech Commands train
      files with ``root``. When the embedded training clips are not built, the shipped held-out
      clips are used instead and the description says so: the choice of the audio benchmark
      (``benchmarks/audio_volume.py``); q_E is then estimated on the distribution the certified
      clips come from, but not on clips independent of them.
    - ``imagefolder``: ``ROOT/train`` when that folder exists, else the run's own split (said so).
    - any other dataset: ``train`` if it has it, else the run's own split (said so).
    """
    from semsmooth_core.data.datasets import load_dataset

    ds, root, own = c["dataset"], c["root"], c["split"]
    if ds == "imagefolder" and not (root and (Path(root).expanduser() / "train").is_dir()):
        x, _ = load_dataset(ds, split=own, root=root)
        return x, f"{ds} split {own!r} (no train folder under the root)"
    try:
        x, _ = load_dataset(ds, split="train", root=root)
        return x, f"{ds} split 'train'"
    except SemsmoothError as e:
        if ds == "speech-words" and not root:
            x, _ = load_dataset(ds, split="heldout")
            return x, ("speech-words split 'heldout' (training clips not built: run python "
                       "scripts/synth_speech.py --part train)")
        if own == "train":
            raise
        try:
            x, _ = load_dataset(ds, split=own, root=root)
        except SemsmoothError:
            raise e from None
        return x, f"{ds} split {own!r} (it has no 'train' split)"


def estimate_E(c: dict, preprocess_spec: str, progress=None) -> dict:
    """E at the q-quantile of ‖ε‖ (lower bound q̲_E at 1 − α_E) from the error estimator of
    ``semsmooth_core.errors`` on the TRAINING split (x ~ D independent of the certified inputs;
    :func:`error_data` says which data, per dataset), with the same transform, interpolation, σ_γ,
    attacker range and preprocessing. The result's ``data`` names the inputs used."""
    from semsmooth_core import errors, transforms

    t = transforms.get(c["transform"])
    norm = "whole" if c["smoothing"] == "double" else {"halves": "half", "channels": "channel",
                                                       "quadrants": "quadrant"}.get(c["partitions"], "whole")
    setup = errors.ErrorSetup(transform=t.name, interpolation=c["interpolation"],
                              sigma=c["sigma_gamma"] if c["sigma_gamma"] is not None else list(t.default_sigma),
                              C=c["attacker_range"], preprocess=preprocess_spec, norm=norm)
    x, data = error_data(c)
    smp = errors.sample_errors(setup, x, int(c["E_samples"]), seed=int(c["seed"]) + 7919, progress=progress)
    got = errors.E_for_q(smp.worst, float(c["q"]), float(c["alpha_E"]))
    if not math.isfinite(got["E"]):
        raise SemsmoothError(f"{c['E_samples']} error samples are too few for q = {c['q']} at alpha_E "
                             f"{c['alpha_E']}; raise E_samples")
    return {"E": got["E"], "q_E_lower": got["q_E_lower"], "q_E": got["q_E"], "n": got["n"],
            "seconds": smp.seconds, "data": data}


def resolve_E(config: dict, progress=None) -> dict:
    """With ``estimate_E`` (double/k-smoothing): estimate E once, here, and return the config with
    ``E``, ``q_E_lower`` and the estimate (``E_estimate``) filled in and ``estimate_E`` off — so a
    run in the store (resumed later, or split into Ray shards) certifies with this one E instead of
    estimating it again in every session or shard."""
    c = config_mod.as_validated(config)
    if c["smoothing"] not in ("double", "ksmooth") or not c["estimate_E"]:
        return c
    _, _, _, _, pp_spec = load_setup(c)
    return config_mod.with_E(c, estimate_E(c, pp_spec, progress=progress))


def certify_one(c: dict, x: torch.Tensor, model, preprocess=None, generator=None, progress=None,
                on_stage=None) -> smoothing.Certificate:
    """One certificate for input ``x`` under a validated config (E already resolved)."""
    sm = c["smoothing"]
    common = dict(batch_size=int(c["batch_size"]), generator=generator, progress=progress)
    if sm == "noise":
        xin = preprocess(x.unsqueeze(0))[0] if preprocess is not None else x
        return smoothing.certify_noise(model, xin, float(c["sigma_eps"]), int(c["n0"]), int(c["n_eps"]),
                                       float(c["alpha_gamma"]), **common)
    from semsmooth_core import transforms

    t = transforms.get(c["transform"])
    if sm == "gsmooth":
        return _certify_gsmooth(c, t, x, model, preprocess, generator, progress)
    sg = c["sigma_gamma"] if c["sigma_gamma"] is not None else list(t.default_sigma)
    if sm == "transform":
        return smoothing.certify_transform(model, x, t, sg, int(c["n0"]), int(c["n_gamma"]),
                                           float(c["alpha_gamma"]), interpolation=c["interpolation"],
                                           preprocess=preprocess, attacker_range=c["attacker_range"], **common)
    kw = dict(interpolation=c["interpolation"], preprocess=preprocess, attacker_range=c["attacker_range"],
              E_worst_case=bool(c["E_worst_case"]), on_stage=on_stage, **common)
    if sm == "double":
        return smoothing.certify_double(model, x, t, sg, float(c["sigma_eps"]), float(c["E"]),
                                        float(c["q_E_lower"]), int(c["n0"]), int(c["n_gamma"]),
                                        int(c["n_eps"]), float(c["alpha_gamma"]), float(c["alpha_eps"]),
                                        float(c["alpha_E"]), inner_mode=c["inner_mode"],
                                        sequential=c["sequential"], **kw)
    return smoothing.certify_ksmooth(model, x, t, sg, c["sigma_eps"], c["E"], c["q_E_lower"], int(c["n0"]),
                                     int(c["n_gamma"]), c["n_eps"], float(c["alpha_gamma"]), c["alpha_eps"],
                                     float(c["alpha_E"]), partitions=c["partitions"], **kw)


RESOLVABLE_SCALES = {"exp": 1.0, "uniform": 4.0, "folded_gaussian": 1.5}
"""Default scale (px², kernel variance) of each smoothing distribution for the resolvable Gaussian
blur when sigma_gamma is not given: the settings of the README's GSmooth table
(``benchmarks/gsmooth_tables.py``); all keep the mass beyond the transform's range [0, 16] px² < 1e-6."""


def gsmooth_defaults(c: dict, card: dict | None) -> dict:
    """σ₁ (``sigma_gamma``) and σ₂ for a GSmooth run left at their defaults: those the GSmooth base
    classifier was trained for (its card's ``training`` record, when the card is for this
    transform), else the transform's default σ and σ₂ = 0.5. Returns the filled-in values and where
    they came from."""
    from semsmooth_core import transforms
    from semsmooth_core.gsmooth import certify as gcert

    from semsmooth_core.models import cards

    t = transforms.get(c["transform"])
    tr = cards.gsmooth_sigmas(card if isinstance(card, dict) else {}, t.name)
    out = {}
    if c["sigma_gamma"] is None and t.name in gcert.RESOLVABLE and c.get("dist") in RESOLVABLE_SCALES:
        out["sigma_gamma"] = RESOLVABLE_SCALES[c["dist"]]
        out["sigma_gamma_from"] = f"default scale of {c['dist']} smoothing"
    elif c["sigma_gamma"] is None:
        if tr.get("sigma1") is not None:
            out["sigma_gamma"], out["sigma_gamma_from"] = float(tr["sigma1"]), "model card"
        else:
            out["sigma_gamma"], out["sigma_gamma_from"] = float(t.default_sigma[0]), "transform default"
    if c["sigma2"] is None and t.name not in gcert.RESOLVABLE:   # no augmented noise when resolvable
        if tr.get("sigma2") is not None:
            out["sigma2"], out["sigma2_from"] = float(tr["sigma2"]), "model card"
        else:
            out["sigma2"], out["sigma2_from"] = 0.5, "default"
    return out


class _Preprocessed(torch.nn.Module):
    """``model(P(x))`` as one module (so that the model's device and parameters stay visible)."""

    def __init__(self, preprocess, model):
        super().__init__()
        self.preprocess, self.model = preprocess, model

    def forward(self, x):
        return self.model(self.preprocess(x))


def _certify_gsmooth(c: dict, t, x: torch.Tensor, model, preprocess, generator, progress) -> smoothing.Certificate:
    """One GSmooth certificate (``gsmooth.certify.certify``): σ₁ = sigma_gamma (for a resolvable
    transform, the smoothing distribution's scale), σ₂ = sigma2, n = n_gamma, α = alpha_gamma."""
    from semsmooth_core.gsmooth import certify as gcert

    if preprocess is not None:  # P belongs to the classifier: f(P(.)) sees the smoothed samples
        model = _Preprocessed(preprocess, model)
    sg = c["sigma_gamma"]
    s1 = (float(sg[0]) if len(sg) == 1 else [float(v) for v in sg]) if isinstance(sg, (list, tuple)) else \
        (None if sg is None else float(sg))
    kw = dict(sigma1=s1, sigma2=float(c["sigma2"]) if c["sigma2"] is not None else None,
              surrogate=c.get("surrogate"), dist=c.get("dist") or "exp", scale=s1, xi_max=c.get("xi_max"),
              batch_size=int(c["batch_size"]), generator=generator, progress=progress)
    params = inspect.signature(gcert.certify).parameters
    open_kw = any(q.kind is inspect.Parameter.VAR_KEYWORD for q in params.values())
    kw = {k: v for k, v in kw.items() if (open_kw or k in params) and v is not None}
    return gcert.certify(model, t.name, x, int(c["n0"]), int(c["n_gamma"]), float(c["alpha_gamma"]), **kw)


def row_from(index: int, label: int, cert: smoothing.Certificate, base_pred: int) -> dict:
    return {"index": int(index), "label": int(label), "prediction": int(cert.label),
            "radius": float(cert.radius), "radius_unit": cert.radius_unit, "p_lower": float(cert.p_lower),
            "rho": float(cert.rho), "correct": bool(cert.label == label), "base_correct": bool(base_pred == label),
            "n_forward": int(cert.n_forward), "seconds": float(cert.seconds),
            "clipped": _clipped(cert)}


def _clipped(cert: smoothing.Certificate) -> bool:
    """The radius was cut at the attacker range (double/k-smoothing: C; GSmooth: ξ_max)."""
    e = cert.extra
    if "clipped" in e:
        return bool(e["clipped"])
    if e.get("method") == "gsmooth" and cert.label != smoothing.ABSTAIN and e.get("xi_max") is not None:
        return bool(float(cert.radius) >= float(e["xi_max"]) * (1 - 1e-9))
    return False


def guarantee(cert: smoothing.Certificate) -> dict:
    """What a certificate of this run promises, in words and numbers (failure probability,
    attacker model, range C)."""
    e = cert.extra
    if e.get("method") in ("gsmooth", "resolvable"):
        rng = [0.0, e["xi_max"]] if e.get("xi_max") is not None else None
        return {"failure_probability": float(cert.alpha),
                "attacker": f"the real {e.get('transform')} with any severity in [0, radius] {cert.radius_unit}",
                "attacker_range": rng, "rho": float(cert.rho), "smoothing": "gsmooth",
                "method": e["method"]}
    return {"failure_probability": float(cert.alpha), "attacker": e.get("attacker", "l2 noise"),
            "attacker_range": e.get("attacker_range"), "rho": float(cert.rho),
            "smoothing": e.get("smoothing", "noise")}


def _check_modality(c: dict, x_all: torch.Tensor) -> None:
    """An image transformation needs images ``[N,C,H,W]``, an audio one clips ``[N,T]``."""
    if c["smoothing"] == "noise":
        return
    from semsmooth_core import transforms

    t = transforms.get(c["transform"])
    want = 2 if t.modality == "audio" else 4
    if x_all.ndim != want:
        has = "audio clips" if x_all.ndim == 2 else ("images" if x_all.ndim == 4 else f"{x_all.ndim}-D inputs")
        raise SemsmoothError(f"{t.name} transforms {t.modality}, but dataset {c['dataset']!r} holds {has}")


def certify_inputs(config: dict, indices: list[int], on_row: Callable[[dict], None], progress=None,
                   should_stop: Callable[[], bool] | None = None, on_stage=None) -> dict:
    """Certify ``indices`` of the configured dataset; ``on_row(row)`` once per finished input.

    Row keys: index, label, prediction (-1 = abstain), radius, radius_unit, p_lower, rho,
    correct, base_correct (the base model on the clean preprocessed input), n_forward, seconds,
    clipped. ``progress(done, total)`` counts inputs; ``should_stop()`` is polled between
    inputs (the summary then says ``"stopped": True``). Returns
    :func:`semsmooth_core.runs.summary.summarize` of the rows plus ``config`` (E resolved), ``seed``,
    ``model_sha256``, ``environment`` and, with ``estimate_E``, the E estimate.
    """
    from semsmooth_core.data.datasets import load_dataset
    from semsmooth_core.repro import environment
    from semsmooth_core.runs import model_sha256
    from semsmooth_core.runs.summary import summarize

    c = config_mod.as_validated(config)
    indices = [int(i) for i in indices]
    model, card, pp, device, pp_spec = load_setup(c)
    c["preprocess"] = pp_spec
    meta: dict = {}   # (GSmooth's σ₁, σ₂ defaults are filled in by config.resolve, with their source)
    if c["smoothing"] in ("double", "ksmooth") and c["estimate_E"]:
        if on_stage:
            on_stage(Stage.E_ESTIMATE)
        meta["E_estimate"] = estimate_E(c, pp_spec)
        c = config_mod.with_E(c, meta["E_estimate"])
        c.pop("E_estimate", None)
    x_all, y_all = load_dataset(c["dataset"], split=c["split"], root=c["root"], indices=indices)
    _check_modality(c, x_all)
    rows = []
    stopped = False
    t_run = time.perf_counter()
    for i, (idx, x, y) in enumerate(zip(indices, x_all, y_all)):
        if should_stop is not None and should_stop():
            stopped = True
            break
        with torch.no_grad():
            xb = x.unsqueeze(0).to(device)
            base_pred = int(model(pp(xb) if pp is not None else xb).argmax(-1)[0])
        cert = certify_one(c, x, model, pp, input_generator(c["seed"], idx), None, on_stage)
        row = row_from(idx, int(y), cert, base_pred)
        last = cert
        rows.append(row)
        on_row(row)
        if progress is not None:
            progress(i + 1, len(indices))
    unit = rows[0]["radius_unit"] if rows else None
    out = summarize(rows, radius_unit=unit)
    out.update({"config": c, "seed": int(c["seed"]), "model_sha256": model_sha256(c["model"]),
                "environment": environment(), "stopped": stopped,
                "wall_seconds": time.perf_counter() - t_run, **meta})
    if rows:
        out["guarantee"] = guarantee(last)
    if c["smoothing"] in ("double", "ksmooth"):
        out["rho"] = rows[0]["rho"] if rows else None
        out["clipped_rate"] = float(np.mean([r["clipped"] for r in rows])) if rows else None
    return out
