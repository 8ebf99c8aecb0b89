"""The per-dataset certification runner shared by the CLI (``certify``), the app and the
background worker (``semsmooth_core.runs.jobs``).

``certify_inputs(config, indices, on_row, progress=None, should_stop=None) -> dict`` certifies
each listed input of a dataset and hands every finished row to ``on_row`` at once (so a results
store never loses finished work); each input is certified from its own generator seeded by
``(seed, index)`` only, so a resumed or reordered run reproduces the same rows.

Config keys (the CLI options; defaults in :data:`DEFAULTS`): ``dataset, split, root, model,
smoothing (double | transform | noise | ksmooth | gsmooth), transform, interpolation, sigma_gamma,
sigma_eps, attacker, E_scope, E_input_samples, E, q_E_lower, estimate_E, q, E_samples, E_worst_case, n0, n_gamma, n_eps,
alpha_gamma, alpha_eps, alpha_E, inner_mode, partitions, attacker_range, preprocess,
sequential, batch_size, seed, device, sigma2, dist, surrogate, image_size, channels``.

``image_size`` (None | N pixels: shorter side to N, centre crop N x N, for folders of mixed
sizes) and ``channels`` (None | "grey" | "rgb": convert the data to what the model takes) go to
the dataset loader (:func:`data_options`); a channel mismatch between model and data is refused
before any work (``models.checkpoint.check_input_channels``).

Which parameters each smoothing uses:

- ``double`` (Fischer §6.2): all of them. Whose E (``E_scope``) and which attacker:

  - ``E_scope="input"`` (default when no E is given): E and q̲_E are estimated for EACH certified
    input at certify time (:func:`semsmooth_core.errors.estimate_E_for_input`, sizes and E rule
    from :func:`semsmooth_core.planner.plan_input_E`; ``E_input_samples`` overrides n_E) — the
    certificate holds for this input.
  - ``E_scope="dataset"`` (the default when ``E``/``q_E_lower`` or ``estimate_E`` is given): one E
    for all inputs, estimated on the training split (``estimate_E``) or given — the certificate
    holds on average over inputs like the training split, and says so. ``E_scope="input"`` with a
    given E is refused (a number given once cannot have been measured on every input).
  - ``attacker="random"`` (default): γ ~ U(C); ``"worst-case"``: every γ in C, with E bounding
    max over C for the sampled β (:func:`semsmooth_core.worstcase.max_eps_upper`), per input
    only. The old ``E_worst_case=True`` means ``attacker="worst-case"``.
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


def data_options(c: dict) -> dict:
    """The dataset-loader options of a config: ``image_size`` and ``channels`` when set."""
    return {k: c[k] for k in ("image_size", "channels") if c.get(k) is not None}


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
    raw = dict(config)
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
    rng = c.get("attacker_range")
    if rng is not None:
        flat = rng if isinstance(rng, (list, tuple)) else [rng]
        flat = [v for r in flat for v in (r if isinstance(r, (list, tuple)) else [r])]
        for v in flat:
            try:
                ok = math.isfinite(float(v))
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise SemsmoothError(f"attacker_range must be finite numbers, got {rng!r}")
    if c.get("image_size") is not None:
        check_count("image_size", c["image_size"])
    if c.get("channels") not in (None, "grey", "rgb"):
        raise SemsmoothError(f"channels must be grey or rgb, got {c['channels']!r}")
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
        _validate_claim(c, raw, t)
    if c["smoothing"] in ("double", "ksmooth") and c["E_scope"] == "dataset":
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


def _validate_claim(c: dict, raw: dict, t) -> None:
    """``attacker`` and ``E_scope`` of double / k-smoothing (module docstring): fill the scope
    from what was given, map the old ``E_worst_case``, refuse every combination whose certificate
    would claim more than its E supports. Sets ``c["attacker"]``, ``c["E_scope"]``."""
    from semsmooth_core import planner

    if c.get("E_worst_case"):
        if raw.get("attacker") == "random":
            raise SemsmoothError("E_worst_case contradicts attacker random; use --attacker worst-case alone")
        c["attacker"] = "worst-case"
    if c["attacker"] is None:          # not given: Fischer's distributional attacker
        c["attacker"] = "random"
    if c["attacker"] not in smoothing.ATTACKERS:
        raise SemsmoothError(f"attacker must be random or worst-case, got {c['attacker']!r}")
    c["E_worst_case"] = c["attacker"] == "worst-case"
    given = c["E"] is not None or c["q_E_lower"] is not None
    if raw.get("E_scope") is None:
        c["E_scope"] = "dataset" if (given or c["estimate_E"]) else "input"
    if c["E_scope"] not in smoothing.E_SCOPES:
        raise SemsmoothError(f"E_scope must be input or dataset, got {c['E_scope']!r}")
    if c["E_scope"] == "input" and (given or c["estimate_E"]):
        raise SemsmoothError("a given E / q_E_lower or --estimate-E is one E for all inputs (E scope dataset); "
                             "the per-input E (--E-scope input) is estimated at certify time: drop them "
                             "or use --E-scope dataset")
    if c["attacker"] == "worst-case":
        if c["E_scope"] != "input":
            raise SemsmoothError("the worst-case attacker needs E bounded over every angle/shift in C for "
                                 "THIS input (--E-scope input); a dataset E is measured with the parameter "
                                 "drawn at random, so it cannot back a worst-case certificate")
        from semsmooth_core import errors

        if not (hasattr(t, "motion_bound") or hasattr(t, "param_interval") or t.name in errors._INTERVALS):
            raise SemsmoothError(f"no worst-case bound of the interpolation error for {t.name}; use --attacker random")
    if c["E_scope"] == "input":
        if c["E_input_samples"] is not None:
            check_count("E_input_samples", c["E_input_samples"], minimum=10)
        plan = input_E_plan(c)
        if plan.E_cap <= 0:
            raise SemsmoothError(f"the inner smoothing cannot certify any radius E > 0 at sigma_eps "
                                 f"{c['sigma_eps']}, n_eps {c['n_eps']}, alpha_eps {c['alpha_eps']}; raise n_eps")


def _inner_alpha(c: dict):
    a = c["alpha_eps"]
    if c["smoothing"] == "double" and c["inner_mode"] == "bonferroni":
        return float(a) / int(c["n_gamma"])
    if c["smoothing"] == "double" and c.get("sequential"):
        return 0.75 * float(a)          # the last look of the default schedule keeps 3/4 of α
    return a


def input_E_plan(c: dict):
    """:func:`semsmooth_core.planner.plan_input_E` for a validated double / k-smoothing config."""
    from semsmooth_core import planner, transforms

    t = transforms.get(c["transform"])
    sg = c["sigma_gamma"] if c["sigma_gamma"] is not None else list(t.default_sigma)
    cov, iso = smoothing.parse_sigma(sg, t.dim)
    rng = smoothing._norm_range(c["attacker_range"] if c["attacker_range"] is not None else t.default_range, t.dim)
    sd = float(torch.sqrt(torch.diag(cov)).min())
    cmax = smoothing.range_norm_max(rng) / (1.0 if iso else sd)
    return planner.plan_input_E(c["sigma_eps"], c["n_eps"], _inner_alpha(c), float(c["alpha_E"]),
                                int(c["n_gamma"]), float(c["alpha_gamma"]), sd if iso else 1.0, cmax,
                                attacker=c["attacker"], n_E=c.get("E_input_samples"))


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
    from functools import partial

    from semsmooth_core.data import datasets

    load_dataset = partial(datasets.load_dataset, **data_options(c))
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


def error_setup(c: dict, preprocess):
    """The :class:`semsmooth_core.errors.ErrorSetup` of a config: same transform, interpolation,
    σ_γ, range C and preprocessing as the certification; the partition of k-smoothing."""
    from semsmooth_core import errors, transforms

    t = transforms.get(c["transform"])
    norm = "whole" if c["smoothing"] == "double" else smoothing.PARTITION_NORMS.get(c["partitions"], "whole")
    return errors.ErrorSetup(transform=t.name, interpolation=c["interpolation"],
                             sigma=c["sigma_gamma"] if c["sigma_gamma"] is not None else list(t.default_sigma),
                             C=c["attacker_range"], preprocess=preprocess, norm=norm)


def estimate_E(c: dict, preprocess_spec: str, progress=None) -> dict:
    """E at the q-quantile of ‖ε‖ (lower bound q̲_E at 1 − α_E) from the error estimator of
    ``semsmooth_core.errors`` on the TRAINING split (x ~ D independent of the certified inputs;
    :func:`error_data` says which data, per dataset), with the same transform, interpolation, σ_γ,
    attacker range and preprocessing. The result's ``data`` names the inputs used."""
    from semsmooth_core import errors

    setup = error_setup(c, preprocess_spec)
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
              attacker=c["attacker"], E_scope=c["E_scope"], on_stage=on_stage, **common)
    E, q_E, est = c["E"], c["q_E_lower"], None
    if c["E_scope"] == "input":
        if on_stage:
            on_stage("E for this input")
        est = input_E(c, x, preprocess, model, generator)
        E, q_E = est["E"], est["q_E_lower"]
        K = 1 if sm == "double" else smoothing.partition_masks(c["partitions"], tuple(x.shape)).shape[0]
        if not _reachable(c, q_E, K):
            return _abstain_for_E(c, t, est, K)
    if sm == "double":
        cert = smoothing.certify_double(model, x, t, sg, float(c["sigma_eps"]), float(E), float(q_E),
                                        int(c["n0"]), int(c["n_gamma"]),
                                        int(c["n_eps"]), float(c["alpha_gamma"]), float(c["alpha_eps"]),
                                        float(c["alpha_E"]), inner_mode=c["inner_mode"],
                                        sequential=c["sequential"], **kw)
    else:
        cert = smoothing.certify_ksmooth(model, x, t, sg, c["sigma_eps"], E, q_E, int(c["n0"]),
                                         int(c["n_gamma"]), c["n_eps"], float(c["alpha_gamma"]), c["alpha_eps"],
                                         float(c["alpha_E"]), partitions=c["partitions"], **kw)
    if est is not None:
        cert.extra["E_input"] = est
        cert.seconds += est["seconds"]
    return cert


def input_E(c: dict, x: torch.Tensor, preprocess, model, generator=None) -> dict:
    """E and q̲_E for THIS input (``E_scope="input"``): :func:`errors.estimate_E_for_input` with
    the plan of :func:`input_E_plan`, on the model's device, the same transform, rounding and
    preprocessing as the certification. Its seed is drawn from the input's generator (so it is a
    function of (run seed, index) and independent of every other input's)."""
    from semsmooth_core import errors

    plan = input_E_plan(c)
    setup = error_setup(c, preprocess)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator)) if generator is not None else 0
    xd = x.to(smoothing.model_device(model))
    est = errors.estimate_E_for_input(setup, xd, plan.n_E, seed, E_cap=plan.E_cap, n_select=plan.n_select,
                                      select_quantile=plan.select_quantile, alpha_E=float(c["alpha_E"]),
                                      attacker=c["attacker"], batch_size=int(c["batch_size"]))
    est["plan"] = plan.to_dict()
    return est


def _rho(c: dict, q_E: float, K: int) -> float:
    if c["smoothing"] == "double":
        return smoothing.double_rho(float(c["alpha_eps"]), q_E, float(c["alpha_E"]), c["inner_mode"])
    a = c["alpha_eps"]
    als = list(a) if isinstance(a, (list, tuple)) else [a] * K
    return smoothing.ksmooth_rho(als, q_E, float(c["alpha_E"]))


def _reachable(c: dict, q_E: float, K: int) -> bool:
    """Can any outcome certify? (the best outer bound, every β certified, minus ρ, above 1/2)"""
    from semsmooth_core import stats

    best = stats.cp_lower(int(c["n_gamma"]), int(c["n_gamma"]), float(c["alpha_gamma"]))
    return q_E > 0 and best - _rho(c, q_E, K) > 0.5


def _abstain_for_E(c: dict, t, est: dict, K: int) -> smoothing.Certificate:
    """The certificate when this input's q̲_E leaves no room (ρ so large that even all n_γ inner
    tests passing would abstain): abstain without spending forward passes, and say why."""
    total = smoothing.double_total_failure(float(c["alpha_gamma"]), float(c["alpha_eps"]) if K == 1 else 0.0,
                                           float(c["alpha_E"]), c["inner_mode"] if K == 1 else "lemma")
    extra = {"smoothing": c["smoothing"], "transform": t.name, "interpolation": c["interpolation"],
             "E": est["E"], "q_E_lower": est["q_E_lower"], "E_input": est, "E_scope": "input",
             "attacker_range": c["attacker_range"], "skipped": (
                 f"this input's interpolation error is too large for the inner smoothing: q̲_E = "
                 f"{est['q_E_lower']:.4g} at E = {est['E']:.4g} (capped at what the inner test can pass) "
                 "gives ρ too large to certify anything; abstained without forward passes")}
    return smoothing.Certificate(label=smoothing.ABSTAIN, radius=0.0, p_lower=0.0, alpha=total, n_forward=0,
                                 seconds=est["seconds"], radius_unit=t.unit, rho=min(1.0, _rho(c, est["q_E_lower"], K)),
                                 extra=extra, attacker=c["attacker"], E_scope="input", E=est["E"],
                                 q_E_lower=est["q_E_lower"], sound=True)


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
            "clipped": _clipped(cert), "attacker": cert.attacker, "E_scope": cert.E_scope,
            "E": None if cert.E is None else float(cert.E),
            "q_E_lower": None if cert.q_E_lower is None else float(cert.q_E_lower),
            "sound": bool(cert.sound), "statement": cert.statement}


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
    claim = {"attacker": cert.attacker, "E_scope": cert.E_scope, "sound": bool(cert.sound)}
    if e.get("method") in ("gsmooth", "resolvable"):
        rng = [0.0, e["xi_max"]] if e.get("xi_max") is not None else None
        return {"failure_probability": float(cert.alpha), **claim,
                "attacker_text": f"the real {e.get('transform')} with any severity in [0, radius] {cert.radius_unit}",
                "attacker_range": rng, "rho": float(cert.rho), "smoothing": "gsmooth",
                "method": e["method"]}
    return {"failure_probability": float(cert.alpha), **claim,
            "attacker_text": e.get("attacker", "any l2 perturbation within the radius"),
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
    clipped, attacker, E_scope, E, q_E_lower, sound, statement (the certificate's claim fields
    and its sentence, :func:`semsmooth_core.smoothing.explain_certificate`). ``progress(done, total)`` counts inputs; ``should_stop()`` is polled between
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
    x_all, y_all = load_dataset(c["dataset"], split=c["split"], root=c["root"], indices=indices,
                                **data_options(c))
    _check_modality(c, x_all)
    from semsmooth_core.models.checkpoint import check_input_channels

    check_input_channels(model, card, x_all, f"dataset {c['dataset']!r}")
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
        if c.get("attack"):  # certify --attack: the real transformation inside the certified radius
            from semsmooth_core.attacks import attack_certified
            row.update(attack_certified(c, x, int(y), cert, model, pp, input_generator(int(c["seed"]) + 1, idx)))
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
    if c.get("attack"):
        from semsmooth_core.attacks import certified_attack_summary
        out["attack"] = certified_attack_summary(rows)
    if c["smoothing"] in ("double", "ksmooth"):
        out["rho"] = rows[0]["rho"] if rows else None
        if c["E_scope"] == "input" and rows:
            Es = [r["E"] for r in rows if r["E"] is not None]
            qs = [r["q_E_lower"] for r in rows if r["q_E_lower"] is not None]
            out["E_per_input"] = {"E_min": min(Es), "E_median": float(np.median(Es)), "E_max": max(Es),
                                  "q_E_lower_min": min(qs), "q_E_lower_median": float(np.median(qs)),
                                  "plan": input_E_plan(c).to_dict()}
        out["clipped_rate"] = float(np.mean([r["clipped"] for r in rows])) if rows else None
    return out
