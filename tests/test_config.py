"""The one certification config (``semsmooth_core.runs.config``): defaults from the model cards,
precedence flag > card > default, the same config from the CLI, the Certify page's form and a
benchmark's call, one-line errors, and noise smoothing's own ``n`` / ``alpha``.

Expected card values are read from the JSON files here, independently of ``models.cards``."""

from __future__ import annotations

import json
import math

import pytest

from semsmooth_core.cli import build_parser
from semsmooth_core.commands.certify import resolve_args
from semsmooth_core.models import list_models
from semsmooth_core.paths import models_dir
from semsmooth_core.runs import config as rc
from semsmooth_core.runs import pipeline
from semsmooth_core.validation import SemsmoothError


def _json_card(name: str) -> dict:
    return json.loads((models_dir() / f"{name}.json").read_text())


def _cli(*args):
    return resolve_args(build_parser().parse_args(["certify", *args]))


CLASSIFIERS = sorted(list_models())


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_every_shipped_model_gets_its_cards_sigma_eps_and_preprocessing(name):
    card = _json_card(name)
    aug = card.get("augmentation") if isinstance(card.get("augmentation"), dict) else {}
    want_se = card.get("sigma_eps") or aug.get("gaussian_noise_sigma") or aug.get("noise_sigma")
    want_pp = card.get("preprocess") or aug.get("preprocess") or "none"
    dataset = "speech-words" if card.get("modality") == "audio" else "mnist"
    flags = {"model": name, "dataset": dataset, "smoothing": "noise"}
    cfg, src = rc.resolve(flags)
    if want_se:
        assert cfg.sigma_eps == pytest.approx(float(want_se)) and src["sigma_eps"] == "card"
    else:
        fallback = rc.SIGMA_EPS_FALLBACK_AUDIO if card.get("modality") == "audio" else rc.SIGMA_EPS_FALLBACK
        assert cfg.sigma_eps == fallback and src["sigma_eps"] == "default"
    assert cfg.preprocess == want_pp
    said = card.get("preprocess") or aug.get("preprocess")
    assert src["preprocess"] == ("card" if said else "default")
    if card.get("classes"):
        assert cfg.class_names == card["classes"] and src["class_names"] == "card"


def test_issue_examples_take_the_cards_sigma_eps_not_the_pixel_default():
    # the speech command of issue 14 without --sigma-eps: the waveform noise of the card (0.01)
    cfg, src = _cli("--dataset", "speech-words", "--transform", "volume", "--model", "speech_cnn",
                    "--attacker-range", "3", "--estimate-E")
    assert cfg.sigma_eps == 0.01 and src["sigma_eps"] == "card" and cfg.radius_unit == "dB"
    assert cfg.attacker_box == [[-3.0, 3.0]] and cfg.range_norm_max == 3.0
    cfg, src = _cli("--model", "mnist_cnn_rot_vg_noise030", "--estimate-E")
    assert cfg.sigma_eps == 0.3 and cfg.preprocess == "vignette+gauss:5:1"
    assert src["sigma_eps"] == src["preprocess"] == "card"


def test_precedence_flag_over_card_over_default(tmp_path):
    cfg, src = _cli("--model", "mnist_cnn_rot_vg_noise030", "--estimate-E", "--sigma-eps", "0.5",
                    "--preprocess", "none")
    assert (cfg.sigma_eps, src["sigma_eps"]) == (0.5, "flag")
    assert (cfg.preprocess, src["preprocess"]) == ("none", "flag")
    # a model without a card: the defaults
    import torch

    from semsmooth_core.models import build, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path / "bare.pt"
    save_checkpoint(path, build("small_cnn", width=2), "small_cnn", {"width": 2}, {})
    cfg, src = _cli("--model", str(path), "--estimate-E")
    assert (cfg.sigma_eps, src["sigma_eps"]) == (rc.SIGMA_EPS_FALLBACK, "default")
    assert (cfg.q, src["q"]) == (rc.DEFAULTS["q"], "default")
    assert cfg.sigma_gamma == 30.0 and src["sigma_gamma"] == "default"   # rotation's own σ


def test_gsmooth_sigmas_from_the_card_and_flags_win():
    card = _json_card("gsmooth_zoom_blur_cnn")["training"]
    cfg, src = _cli("--transform", "zoom_blur", "--model", "gsmooth_zoom_blur_cnn")
    assert cfg.smoothing == "gsmooth" and "switched" in cfg.extra["smoothing_note"]
    assert (cfg.sigma_gamma, src["sigma_gamma"]) == (card["sigma1"], "card")
    assert (cfg.sigma2, src["sigma2"]) == (card["sigma2"], "card")
    cfg, src = _cli("--transform", "zoom_blur", "--model", "gsmooth_zoom_blur_cnn", "--sigma1", "0.1",
                    "--sigma2", "0.4")
    assert (cfg.sigma_gamma, cfg.sigma2, src["sigma_gamma"], src["sigma2"]) == (0.1, 0.4, "flag", "flag")


def test_noise_smoothing_has_its_own_n_and_alpha():
    cfg, src = _cli("--model", "mnist_cnn_noise025", "--smoothing", "noise", "--n", "500", "--alpha", "0.01")
    assert (cfg.n, cfg.alpha) == (500, 0.01) and src["n"] == src["alpha"] == "flag"
    d = cfg.to_dict()
    assert d["n_eps"] == 500 and d["alpha_gamma"] == 0.01          # what older stored runs called them
    old, _ = rc.resolve({"model": "mnist_cnn_noise025", "smoothing": "noise", "n_eps": 300, "alpha_gamma": 0.05})
    assert (old.n, old.alpha) == (300, 0.05)
    assert rc.as_validated(d) == d                                    # a stored run loads back the same


def test_cli_page_and_benchmark_resolve_the_same_config():
    """The Certify page's widgets (always holding a value) at the values a user typed, the CLI
    with only those options, and a benchmark's library call give one config."""
    model = "mnist_cnn_trans_g_noise030"
    card = _json_card(model)
    cli, cli_src = _cli("--model", model, "--transform", "translation", "--E", "0.3", "--q-E-lower", "0.97",
                        "--n-gamma", "50")
    # the page: every widget has a value; the untouched ones hold the defaults it shows
    from semsmooth_core import transforms

    t = transforms.get("translation")
    page_values = {"model": model, "smoothing": "double", "transform": "translation", "interpolation": "bilinear",
                   "sigma_gamma": [float(t.default_sigma[0])] * t.dim, "sigma_eps": card["sigma_eps"],
                   "E": 0.3, "q_E_lower": 0.97, "n0": rc.DEFAULTS["n0"], "n_gamma": 50,
                   "n_eps": rc.DEFAULTS["n_eps"], "alpha_gamma": 0.001, "alpha_eps": 0.001, "alpha_E": 0.001,
                   "attacker_range": [[-4.0, 4.0]] * 2, "sequential": None, "batch_size": 1000,
                   "preprocess": card["preprocess"], "seed": 0, "dataset": "mnist"}
    page, page_src = rc.resolve_form(page_values, card)
    bench, _ = rc.resolve({"model": model, "transform": "translation", "E": 0.3, "q_E_lower": 0.97, "n_gamma": 50})
    assert cli.to_dict() == page.to_dict() == bench.to_dict()
    assert cli_src == page_src
    assert page.range_norm_max == pytest.approx(4 * math.sqrt(2))   # the box's corner, as plan uses it


def test_one_line_errors_and_preview_without_a_model():
    for flags, match in (({"model": "m", "n0": 500}, "n0 (500) must not exceed n_gamma"),
                         ({"model": "m", "E": math.inf, "q_E_lower": 0.9}, "E must be a finite"),
                         ({"model": "m", "E": 5.0, "q_E_lower": 0.9, "sigma_eps": 0.25}, "out of reach"),
                         ({"model": "m", "smoothing": "noise", "n": 10, "n0": 20}, "n0 (20) must not exceed n")):
        with pytest.raises(SemsmoothError, match=match.replace("(", r"\(").replace(")", r"\)")) as e:
            rc.resolve(flags, card={})
        assert len(str(e.value).splitlines()) == 1
    with pytest.raises(SemsmoothError, match="no model"):
        rc.resolve({"E": 0.2, "q_E_lower": 0.9}, card={})
    cfg, _ = rc.resolve({"E": 0.2, "q_E_lower": 0.9}, card={}, need_model=False)  # the page's preview
    assert cfg.model is None


def test_validated_once(monkeypatch):
    """A resolved config is not checked again by the pipeline, the job queue or the lifecycle."""
    calls = []
    real = pipeline.validate_config

    def counting(c, need_model=True):
        if not isinstance(c, rc.ValidatedDict):
            calls.append(1)
        return real(c, need_model=need_model)

    monkeypatch.setattr(pipeline, "validate_config", counting)
    cfg, _ = _cli("--model", "mnist_cnn_noise025", "--smoothing", "noise", "--n", "20", "--n0", "5")
    assert len(calls) == 1
    from semsmooth_core.runs import jobs

    jobs.validate(cfg.to_dict())
    pipeline.validate_config(cfg.to_dict())
    assert len(calls) == 1


def test_certify_json_shows_config_and_sources(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "semsmooth_core", "certify", "--model", "mnist_cnn_noise025",
                          "--smoothing", "noise", "--n", "20", "--n0", "5", "--indices", "0", "--json", "--quiet"],
                         capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["config"]["sigma_eps"] == 0.25 and d["config_sources"]["sigma_eps"] == "card"
    assert d["config_sources"]["n"] == "flag" and d["config_sources"]["q"] == "default"
