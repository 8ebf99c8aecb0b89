"""Interpolation error ε, q_E / E estimation, the worst-case bound, the estimate-error CLI."""

import json
import numpy as np
import pytest
import torch
from statsmodels.stats.proportion import proportion_confint

from semsmooth_core import errors as E
from semsmooth_core.validation import SemsmoothError


@pytest.fixture(scope="module")
def digits():
    from semsmooth_core.data import embedded_mnist
    x, _ = embedded_mnist("heldout")
    return x[:40]


def test_eps_zero_for_right_angles(digits):
    s = E.ErrorSetup("rotation", "bilinear", 30, 180, "vignette+lowpass:8")
    beta = torch.tensor([[90.0], [-90.0], [180.0], [0.0]])
    gamma = torch.tensor([[90.0], [180.0], [-270.0], [90.0]])
    e = E.eps(s, digits[:4], beta, gamma)
    assert e.abs().max().item() < 1e-5
    # a generic angle gives a non-zero error (the test can fail)
    assert E.eps(s, digits[:4], beta + 7.3, gamma + 5.1).abs().max().item() > 1e-2


def test_eps_zero_for_same_sign_integer_translations(digits):
    for ip in ("nearest", "bilinear", "bicubic"):
        s = E.ErrorSetup("translation", ip, 2.0, 3.0)
        e = E.eps(s, digits[:3], torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 0.0]]),
                  torch.tensor([[2.0, 1.0], [2.0, -2.0], [1.0, 0.0]]))
        assert e.abs().max().item() == 0.0


def test_partition_norms_add_up():
    g = torch.Generator().manual_seed(0)
    e = torch.randn(5, 3, 9, 11, generator=g, dtype=torch.float64)
    whole = E.part_norms(e, "whole")[:, 0]
    for norm, parts in [("channel", 3), ("half", 2), ("quadrant", 4)]:
        p = E.part_norms(e, norm)
        assert p.shape == (5, parts)
        assert torch.allclose((p ** 2).sum(1).sqrt(), whole)
    left = e[..., :6].flatten(1).norm(dim=1)
    assert torch.allclose(E.part_norms(e, "half")[:, 0], left)
    assert torch.allclose(E.part_norms(e, "channel")[:, 1], e[:, 1].flatten(1).norm(dim=1))


def test_q_E_lower_matches_statsmodels():
    rng = np.random.default_rng(0)
    norms = rng.gamma(4.0, 0.1, size=3000)
    for Ev, a in [(0.3, 0.001), (0.5, 0.01), (0.8, 0.05)]:
        r = E.q_E(norms, Ev, a)
        k = int((norms < Ev).sum())
        assert r["k"] == k and r["n"] == 3000
        ref = proportion_confint(k, 3000, alpha=2 * a, method="beta")[0]
        assert abs(r["q_E_lower"] - ref) < 1e-9


def test_E_for_q_is_the_smallest():
    rng = np.random.default_rng(1)
    norms = rng.gamma(4.0, 0.1, size=5000)
    r = E.E_for_q(norms, 0.9, 0.001)
    assert r["q_E_lower"] >= 0.9
    below = np.nextafter(np.sort(norms)[r["k"] - 1], -np.inf)     # the next smaller candidate E
    assert E.q_E(norms, below, 0.001)["q_E_lower"] < 0.9
    assert E.E_for_q(norms[:10], 0.99, 0.001)["E"] == float("inf")     # 10 samples cannot show 0.99


def test_sampling_deterministic_and_batch_invariant(digits):
    s = E.ErrorSetup("rotation", "bilinear", 30, 30, "vignette")
    a = E.sample_errors(s, digits, 300, seed=5, batch_size=300)
    b = E.sample_errors(s, digits, 300, seed=5, batch_size=64)
    c = E.sample_errors(s, digits, 300, seed=6, batch_size=300)
    assert np.allclose(a.norms, b.norms, atol=1e-6)
    assert np.array_equal(a.index, b.index) and np.array_equal(a.beta, b.beta)
    assert not np.allclose(a.norms, c.norms)
    assert np.all(np.abs(a.gamma) <= 30)
    # x, β, γ draws reproduce ε exactly
    i = 17
    e = E.eps(s, digits[a.index[i]:a.index[i] + 1], torch.tensor(a.beta[i:i + 1]), torch.tensor(a.gamma[i:i + 1]))
    assert abs(float(e.double().norm()) - a.norms[i, 0]) < 1e-5


def test_preprocessing_lowers_E(digits):
    raw = E.sample_errors(E.ErrorSetup("rotation", "bilinear", 30, 30), digits, 400, seed=0)
    lp = E.sample_errors(E.ErrorSetup("rotation", "bilinear", 30, 30, "lowpass:8"), digits, 400, seed=0)
    assert np.all(lp.norms <= raw.norms + 1e-5)          # a projection never increases ‖ε‖₂


def test_attacker_resize(digits):
    s = E.ErrorSetup("rotation", "bilinear", 30.0, 30.0, "vignette", upscale=2)
    e = E.eps(s, digits[:2], torch.tensor([[10.0], [-5.0]]), torch.tensor([[7.0], [20.0]]))
    assert e.shape == (2, 1, 28, 28) and e.abs().max() > 0
    # translation parameters stay in pixels of the ORIGINAL image: an integer shift with an
    # integer upscale is exact, so ε = 0 (same-sign shifts, content stays in the frame)
    t = E.ErrorSetup("translation", "bilinear", 2.0, 2.0, upscale=3)
    two, one = E.eps_terms(t, digits[:2], torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    assert torch.equal(two, one)
    down = E._downscaled(E._upscaled(digits[:2], 3), (28, 28))
    assert torch.allclose(one[0, :, :, 2:], down[0, :, :, :-2], atol=1e-6)
    with pytest.raises(SemsmoothError):
        E.ErrorSetup("rotation", upscale=0.5)


@pytest.mark.parametrize("tr,ip,pre,C,sig,cells", [
    ("rotation", "bilinear", None, 30, 30, 120),
    ("rotation", "nearest", "vignette", 30, 30, 240),
    ("rotation", "bicubic", "vignette+lowpass:8", 20, 30, 120),
    ("translation", "bilinear", "gauss:3:0.8", 1.5, 2.0, 8),
    ("scaling", "bilinear", None, 0.15, 0.1, 60),
    ("contrast", "bilinear", "lowpass:6", 0.3, 0.2, 16),
    ("brightness", "bilinear", None, 0.2, 0.1, 16),
])
def test_worst_case_bound_never_below_dense_sampled_max(digits, tr, ip, pre, C, sig, cells):
    s = E.ErrorSetup(tr, ip, sig, C, pre)
    wc = E.worst_case(s, digits[:10], 2, seed=3, cells=cells, extra_samples=16)
    # independent dense check: many γ per (β, x) evaluated exactly
    g = torch.Generator().manual_seed(11)
    d = s.t.dim
    for i in range(wc.n):
        x = digits[wc.index[i]:wc.index[i] + 1].expand(1000, -1, -1, -1)
        gam = (torch.rand(1000, d, generator=g) * 2 - 1) * C
        beta = torch.tensor(wc.beta[i:i + 1]).expand(1000, -1)
        dense = float(E.part_norms(E.eps(s, x, beta, gam).double(), s.norm).max())
        assert wc.bound[i] >= dense - 1e-6, (wc.bound[i], dense)
        assert wc.bound[i] >= wc.sampled_max[i] - 1e-6


def _cli(capsys, *args):
    """Run the CLI in-process (a subprocess per call costs seconds of imports on a busy machine)."""
    from types import SimpleNamespace

    from semsmooth_core.cli import main
    capsys.readouterr()
    try:
        rc = main(["estimate-error", *args])
    except SystemExit as e:            # argparse usage errors
        rc = e.code
    out = capsys.readouterr()
    return SimpleNamespace(returncode=rc, stdout=out.out, stderr=out.err)


def test_cli_json_contract(capsys):
    r = _cli(capsys, "--transform", "rotation", "--sigma", "30", "--range", "30", "--samples", "300", "--vignette",
             "--lowpass", "8", "--E", "0.5", "--seed", "1", "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    for k in ("n", "quantiles", "E", "q_E", "q_E_lower", "seconds", "samples_per_second"):
        assert k in d
    assert set(d["quantiles"]) >= {"q50", "q90", "q95", "q99", "max"}
    assert d["n"] == 300 and d["E"] == 0.5 and 0 <= d["q_E_lower"] <= d["q_E"] <= 1
    assert d["setup"]["preprocess"] == "vignette+lowpass:8"
    r2 = _cli(capsys, "--transform", "translation", "--range", "2", "--samples", "100", "--norm", "quadrant",
              "--worst-case", "--worst-samples", "1", "--cells", "4", "--json", "--quiet")
    assert r2.returncode == 0, r2.stderr
    d2 = json.loads(r2.stdout)
    assert d2["parts"] == ["top-left", "top-right", "bottom-left", "bottom-right"]
    assert d2["worst_case"]["quantiles_bound"]["max"] >= d2["worst_case"]["quantiles_sampled_max"]["max"]


@pytest.mark.parametrize("bad", [["--transform", "nope"], ["--sigma", "-1"], ["--samples", "0"],
                                 ["--alpha-E", "2"], ["--gauss", "4:1"], ["--range", "-3"]])
def test_cli_bad_input_exit_2(capsys, bad):
    r = _cli(capsys, *bad, "--samples" if "--samples" not in bad else "--seed", "10" if "--samples" not in bad else "0",
             "--json", "--quiet")
    assert r.returncode == 2, (bad, r.stdout, r.stderr)
    assert r.stdout == "" and len(r.stderr.strip().splitlines()) == 1



# --------------------------------------------------------------------------- audio (volume, [N,T])
@pytest.fixture(scope="module")
def clips():
    from semsmooth_core.data.speech import embedded_speech
    x, _, _ = embedded_speech("heldout")
    return x[::5]                                    # 40 clips, every word


def test_audio_volume_error_is_one_int16_rounding(clips):
    """Volume ε on real clips: an integer number of int16 LSB, and its median ‖ε‖₂ is of the size
    of ONE rounding of a clip, sqrt(T/12)/32768 (uniform rounding error, variance 1/12 LSB²) —
    computed here, not taken from the library."""
    s = E.ErrorSetup("volume", sigma=3.0, C=3.0)
    smp = E.sample_errors(s, clips, 400, seed=0, batch_size=150)
    assert smp.norms.shape == (400, 1) and smp.parts == ["whole"]
    T = clips.shape[1]
    one_rounding = np.sqrt(T / 12.0) / 32768.0
    med = float(np.median(smp.norms[:, 0]))
    assert 0.75 * one_rounding < med < 1.33 * one_rounding, (med, one_rounding)
    # ε lives on the int16 grid and reproduces from the recorded draws
    i = 7
    e = E.eps(s, clips[smp.index[i]:smp.index[i] + 1], torch.tensor(smp.beta[i:i + 1]),
              torch.tensor(smp.gamma[i:i + 1])).double() * 32768
    assert torch.equal(e, e.round()) and abs(float(e.norm()) / 32768 - smp.norms[i, 0]) < 1e-9
    assert np.allclose(smp.linf, E.eps(s, clips[smp.index], torch.tensor(smp.beta),
                                       torch.tensor(smp.gamma)).abs().amax(1).numpy())
    # q_E at the E picked for q: the usual statistics apply unchanged
    r = E.E_for_q(smp.norms, 0.9, 0.01)
    assert 0 < r["E"] < 10 * one_rounding and r["q_E_lower"] >= 0.9


def test_audio_partitions_and_refusals(clips):
    g = torch.Generator().manual_seed(0)
    e = torch.randn(4, 11, generator=g, dtype=torch.float64)
    h = E.part_norms(e, "half")
    assert torch.allclose(h[:, 0], e[:, :6].norm(dim=1)) and torch.allclose(h[:, 1], e[:, 6:].norm(dim=1))
    assert torch.allclose(E.part_norms(e, "whole")[:, 0], e.norm(dim=1))
    assert torch.allclose(E.part_norms(e, "half", p=float("inf"))[:, 1], e[:, 6:].abs().amax(1))
    smp = E.sample_errors(E.ErrorSetup("volume", sigma=3.0, C=3.0, norm="half"), clips, 50, seed=1)
    assert smp.parts == ["first half", "second half"] and smp.norms.shape == (50, 2)
    for bad in (dict(norm="quadrant"), dict(norm="channel"), dict(preprocess="vignette"), dict(upscale=2)):
        with pytest.raises(SemsmoothError):
            E.ErrorSetup("volume", **bad)
    with pytest.raises(SemsmoothError):
        E.sample_errors(E.ErrorSetup("volume"), clips[:, None, None, :], 10)     # not [N,T]
    with pytest.raises(SemsmoothError):
        E.sample_errors(E.ErrorSetup("rotation"), clips, 10)                     # images only


def test_audio_worst_case_bound_never_below_dense_sampled_max(clips):
    s = E.ErrorSetup("volume", sigma=3.0, C=3.0)
    wc = E.worst_case(s, clips, 2, seed=3, cells=64, extra_samples=16)
    g = torch.Generator().manual_seed(11)
    for i in range(wc.n):
        x = clips[wc.index[i]:wc.index[i] + 1].expand(300, -1)
        gam = (torch.rand(300, 1, generator=g) * 2 - 1) * 3.0
        dense = float(E.part_norms(E.eps(s, x, torch.tensor(wc.beta[i:i + 1]).expand(300, -1), gam), s.norm).max())
        assert wc.bound[i] >= dense - 1e-9 and wc.bound[i] >= wc.sampled_max[i] - 1e-9
        # sound but loose: within a cell the gain moves by ~1 %, i.e. hundreds of LSB on loud samples
        assert np.isfinite(wc.bound[i]) and wc.bound[i] < 0.5


def test_cli_json_contract_audio(capsys):
    r = _cli(capsys, "--dataset", "speech-words", "--transform", "volume", "--sigma", "3", "--range", "3",
             "--samples", "300", "--q", "0.9", "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    for k in ("n", "quantiles", "quantiles_linf", "E", "q_E", "q_E_lower", "E_for_q", "histogram", "seconds",
              "samples_per_second", "parts", "setup"):
        assert k in d
    assert d["n"] == 300 and d["n_data"] == 200 and d["parts"] == ["whole"]
    assert d["setup"]["transform"] == "volume" and d["setup"]["units"] == ["dB"]
    assert d["setup"]["modality"] == "audio" and d["setup"]["C"] == [[-3.0, 3.0]]
    assert 0.9 <= d["q_E_lower"] <= d["q_E"] <= 1 and d["quantiles"]["q50"] <= d["E"]
    for bad in (["--norm", "quadrant"], ["--vignette"], ["--upscale", "2"]):
        r = _cli(capsys, "--dataset", "speech-words", "--transform", "volume", "--samples", "10", *bad,
                 "--json", "--quiet")
        assert r.returncode == 2 and r.stdout == "" and len(r.stderr.strip().splitlines()) == 1, (bad, r.stderr)


def test_error_distribution_page():
    """AppTest: histogram + q_E on the embedded default, an overlay, and a bad spec as one error line."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest
    app = str(Path(__file__).resolve().parents[1] / "app.py")
    at = AppTest.from_file(app, default_timeout=120)
    at.run()
    at.switch_page("pages/4_Error_distribution.py")
    at.run()
    assert not at.exception, at.exception
    at.number_input(key="ed_n").set_value(300).run()
    assert not at.metric  # sampling waits for the button (issue 15: no recompute on every change)
    at.button(key="ed_go").click().run()
    vals = {m.label: m.value for m in at.metric}
    assert 0 <= float(vals["q̲_E lower bound (A)"]) <= float(vals["q_E at E (setting A)"]) <= 1
    at.number_input(key="ed_q").set_value(0.9).run()  # E, q and α_E reuse the samples
    assert float({m.label: m.value for m in at.metric}["q_E at E (setting A)"]) <= float(vals["q_E at E (setting A)"])
    at.selectbox(key="ed_vary").set_value("another preprocessing").run()
    at.text_input(key="ed_pre_b").input("vignette+lowpass:8").run()
    at.button(key="ed_go").click().run()
    assert not at.exception and not at.error and len(at.dataframe[0].value.columns) == 3  # quantity, A, B
    at.text_input(key="ed_pre_b").input("bogus").run()
    assert not at.exception and len(at.error) == 1
