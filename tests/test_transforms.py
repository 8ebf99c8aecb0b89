"""Transforms vs torchvision (reference), ideal compositions, quantization."""

import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode as IM

from semsmooth_core import transforms as T
from semsmooth_core.transforms import quantize_uint8
from semsmooth_core.validation import SemsmoothError

MODES = [("nearest", IM.NEAREST), ("bilinear", IM.BILINEAR)]


@pytest.fixture
def img():
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 17, 23, generator=g)


def test_registry_contract():
    for name in ("rotation", "translation", "scaling", "brightness", "contrast"):
        t = T.get(name)
        assert t.name == name and t.dim == len(t.param_names) == len(t.units)
        assert len(t.default_sigma) == t.dim and len(t.default_range) == t.dim and len(t.bounds) == t.dim
        assert t.composable
    assert set(T.names()) >= {"rotation", "translation", "scaling", "brightness", "contrast"}
    with pytest.raises(SemsmoothError):
        T.get("no-such-transform")


@pytest.mark.parametrize("angle", [13.7, -42.0, 90.0, 180.0, 270.0, 33.3, -120.5])
@pytest.mark.parametrize("mode,im", MODES)
def test_rotation_matches_torchvision(img, angle, mode, im):
    ref = TF.rotate(img, angle, interpolation=im)
    out = T.get("rotation")(img, torch.tensor([angle, angle]), mode, quantize=False)
    assert (ref - out).abs().max().item() < 1e-5


@pytest.mark.parametrize("shift", [(3.0, 1.0), (0.3, 0.7), (-2.6, 4.2), (1.5, -2.25)])
@pytest.mark.parametrize("mode,im", MODES)
def test_translation_matches_torchvision(img, shift, mode, im):
    if mode == "nearest" and any(abs(abs(s) % 1 - 0.5) < 1e-9 for s in shift):
        pytest.skip("nearest at an exact half-pixel shift is a tie; both conventions are valid")
    ref = TF.affine(img, angle=0.0, translate=list(shift), scale=1.0, shear=[0.0, 0.0], interpolation=im)
    out = T.get("translation")(img, torch.tensor(shift), mode, quantize=False)
    assert (ref - out).abs().max().item() < 1e-5


@pytest.mark.parametrize("log_s", [0.2, -0.3])
def test_scaling_matches_torchvision(img, log_s):
    ref = TF.affine(img, angle=0.0, translate=[0.0, 0.0], scale=math.exp(log_s), shear=[0.0, 0.0],
                    interpolation=IM.BILINEAR)
    out = T.get("scaling")(img, log_s, "bilinear", quantize=False)
    assert (ref - out).abs().max().item() < 1e-5


def test_per_sample_parameters_batch(img):
    """One batched call equals per-sample calls (no parameter mixing across the batch)."""
    rot = T.get("rotation")
    angles = torch.tensor([10.0, -25.0])
    batched = rot(img, angles, "bicubic")
    for i in range(2):
        single = rot(img[i:i + 1], angles[i:i + 1], "bicubic")
        assert torch.equal(batched[i:i + 1], single)


def test_quantization_idempotent(img):
    q = quantize_uint8(img * 1.3 - 0.1)
    assert torch.equal(quantize_uint8(q), q)
    assert torch.allclose(q * 255, torch.round(q * 255), atol=1e-4)
    assert q.min() >= 0 and q.max() <= 1


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic"])
def test_right_angles_compose_exactly(mode):
    g = torch.Generator().manual_seed(1)
    x = quantize_uint8(torch.rand(3, 1, 16, 16, generator=g))
    rot = T.get("rotation")
    for a, b in [(90.0, 90.0), (90.0, 180.0), (-90.0, 270.0)]:
        two = rot(rot(x, a, mode), b, mode)
        one = rot(x, a + b, mode)
        assert torch.equal(two, one)
    assert torch.equal(rot(x, 90.0, mode), torch.rot90(x, 1, dims=(-2, -1)))


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic"])
def test_integer_translations_compose_exactly(mode):
    g = torch.Generator().manual_seed(2)
    x = quantize_uint8(torch.rand(3, 2, 12, 15, generator=g))
    tr = T.get("translation")
    # same-sign integer shifts compose exactly (opposite signs do not: zero fill crops content)
    two = tr(tr(x, torch.tensor([2.0, -1.0]), mode), torch.tensor([1.0, -3.0]), mode)
    one = tr(x, torch.tensor([3.0, -4.0]), mode)
    assert torch.equal(two, one)
    # an integer shift moves pixels and fills zeros
    s = tr(x, torch.tensor([2.0, 0.0]), mode)
    assert torch.equal(s[..., 2:], x[..., :-2]) and (s[..., :2] == 0).all()


def test_photometric_compose_ideally():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(4, 3, 8, 8, generator=g) * 0.5 + 0.25
    for name, a, b in [("brightness", 0.05, -0.1), ("contrast", 0.2, -0.35)]:
        t = T.get(name)
        two = t(t(x, a, quantize=False), b, quantize=False)
        one = t(x, a + b, quantize=False)
        assert torch.allclose(two, one, atol=1e-6)
    c = T.get("contrast")(x, 0.5, quantize=False)
    assert torch.allclose(c.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-6)


def test_bad_input():
    rot = T.get("rotation")
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(SemsmoothError):
        rot(x, torch.zeros(3, 2))
    with pytest.raises(SemsmoothError):
        rot(x, 10.0, interpolation="lanczos")
    with pytest.raises(SemsmoothError):
        rot(x, float("nan"))


def test_transform_explorer_page():
    """AppTest: the page renders on the embedded default, switches transform and preprocessing."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest
    app = str(Path(__file__).resolve().parents[1] / "app.py")
    at = AppTest.from_file(app, default_timeout=120)
    at.run()
    at.switch_page("pages/3_Transform_explorer.py")
    at.run()
    assert not at.exception, at.exception
    vals = {m.label: float(m.value) for m in at.metric}
    assert vals["‖ε‖₂ without P"] > 0
    at.selectbox(key="te_transform").set_value("translation").run()
    at.checkbox(key="te_lp").check().run()
    assert not at.exception, at.exception
    vals = {m.label: float(m.value) for m in at.metric}
    assert vals["‖ε‖₂ with P"] <= vals["‖ε‖₂ without P"] + 1e-9
