"""Blur-type transforms: identity at severity 0, shapes, batched == per-sample, and agreement with
reference implementations (torchvision's Gaussian blur, the registry's scaling/rotation/translation,
a NumPy block mean)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from semsmooth_core.data.embedded import embedded_mnist
from semsmooth_core.transforms import get, names
from semsmooth_core.validation import SemsmoothError

BLURS = ("gaussian_blur", "defocus_blur", "zoom_blur", "rotational_blur", "motion_blur", "pixelate")


@pytest.fixture(scope="module")
def digits():
    x, _ = embedded_mnist("heldout")
    return x[:4]


def test_registered_and_metadata():
    for n in BLURS:
        assert n in names()
        t = get(n)
        assert t.composable is False and t.dim == 1 and t.units[0]
        lo, hi = t.bounds[0]
        assert lo == 0.0 and t.default_range[0][1] <= hi


@pytest.mark.parametrize("name", BLURS)
def test_identity_shape_batched(name, digits):
    t = get(name)
    assert torch.allclose(t(digits, 0.0, quantize=False), digits, atol=1e-5)
    assert torch.equal(t(digits, 0.0), digits)                # quantized identity is exact on k/255 images
    sev = torch.linspace(0.3, t.default_range[0][1] * 1.5, digits.shape[0])
    out = t(digits, sev, quantize=False)
    assert out.shape == digits.shape
    one = torch.cat([t(digits[i:i + 1], sev[i:i + 1], quantize=False) for i in range(digits.shape[0])])
    assert torch.allclose(out, one, atol=1e-5)
    assert (out - digits).abs().max() > 0.01                  # it does something
    q = t(digits, sev)
    assert torch.equal(q, torch.round(q * 255) / 255) and q.min() >= 0 and q.max() <= 1


@pytest.mark.parametrize("name", BLURS)
def test_bad_severity(name, digits):
    t = get(name)
    with pytest.raises(SemsmoothError):
        t(digits, -0.5)
    with pytest.raises(SemsmoothError):
        t(digits, t.bounds[0][1] + 1)
    with pytest.raises(SemsmoothError):
        t(digits[0], 1.0)


@pytest.mark.parametrize("variance", [0.5, 1.0, 2.25])
def test_gaussian_blur_matches_torchvision(variance, digits):
    s = math.sqrt(variance)
    half = math.ceil(3 * s)
    ref = TF.gaussian_blur(digits, kernel_size=2 * half + 1, sigma=s)   # reflect padding; MNIST borders are 0
    out = get("gaussian_blur")(digits, variance, quantize=False)
    inner = (slice(None), slice(None), slice(half, -half), slice(half, -half))
    assert torch.allclose(out[inner], ref[inner], atol=1e-5)


def test_gaussian_blur_is_additive_in_the_variance(digits):
    t = get("gaussian_blur")
    two = t(t(digits, 1.0, quantize=False), 1.5, quantize=False)
    once = t(digits, 2.5, quantize=False)
    assert (two - once).abs().max() < 5e-3                     # up to sampling/truncation of the kernel


def test_defocus_kernel():
    from semsmooth_core.transforms.blur import disk_kernels

    k = disk_kernels(torch.tensor([0.0, 1.0, 2.5]))
    assert torch.allclose(k.sum(dim=(1, 2)), torch.ones(3, dtype=k.dtype))
    c = k.shape[-1] // 2
    assert k[0, c, c] == 1.0
    assert torch.allclose(k[2], k[2].flip(0)) and torch.allclose(k[2], k[2].T)


@pytest.mark.parametrize("name,ref,K,map_", [
    ("zoom_blur", "scaling", 10, lambda a, s: math.log(1 + a * s)),
    ("rotational_blur", "rotation", 16, lambda a, s: a * (s - 0.5)),
])
def test_average_blurs_match_the_registry_transforms(name, ref, K, map_, digits):
    a = 0.3 if name == "zoom_blur" else 20.0
    out = get(name)(digits, a, quantize=False)
    r = get(ref)
    acc = sum(r(digits, map_(a, k / K), quantize=False) for k in range(K + 1)) / (K + 1)
    assert torch.allclose(out, acc, atol=1e-5)


def test_motion_blur_matches_translations(digits):
    out = get("motion_blur")(digits, 4.0, quantize=False)
    tr = get("translation")
    acc = sum(tr(digits, torch.tensor([4.0 * (k / 16 - 0.5), 0.0]), quantize=False) for k in range(17)) / 17
    assert torch.allclose(out, acc, atol=1e-5)


def test_pixelate_integer_and_interpolated(digits):
    t = get("pixelate")
    x = digits.numpy()
    for b in (2, 4, 7):                                        # 28 is divisible by these
        ref = x.reshape(4, 1, 28 // b, b, 28 // b, b).mean(axis=(3, 5))
        ref = np.repeat(np.repeat(ref, b, axis=2), b, axis=3)
        assert np.allclose(t(digits, float(b - 1), quantize=False).numpy(), ref, atol=1e-6)
    mid = t(digits, 1.5, quantize=False)
    assert torch.allclose(mid, 0.5 * t(digits, 1.0, quantize=False) + 0.5 * t(digits, 2.0, quantize=False), atol=1e-6)
    # border blocks cut by the edge (block 3 on 28 px): each block is the mean of its pixels
    y = t(digits, 2.0, quantize=False)
    assert torch.allclose(y[:, :, 27, 27], digits[:, :, 27:, 27:].mean(dim=(2, 3)), atol=1e-6)
