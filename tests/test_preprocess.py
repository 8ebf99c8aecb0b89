"""Preprocessing: vignette, FFT low-pass, Gaussian filter, the Preprocess spec."""

import numpy as np
import pytest
import torch

from semsmooth_core.preprocess import (Preprocess, build, gaussian_filter, gaussian_kernel1d, lowpass,
                                       lowpass_mask, vignette, vignette_mask)
from semsmooth_core.validation import SemsmoothError


def test_vignette_inscribed_circle():
    m = vignette_mask(28, 28)
    # independent: pixel centres within radius 14 of (13.5, 13.5)
    jj, ii = np.mgrid[0:28, 0:28]
    ref = ((ii - 13.5) ** 2 + (jj - 13.5) ** 2) <= 14 ** 2
    assert np.array_equal(m.numpy().astype(bool), ref)
    assert vignette_mask(28, 28, margin=3).sum() < m.sum()
    x = torch.ones(2, 3, 28, 28)
    assert torch.equal(vignette(x), m.expand(2, 3, 28, 28))
    with pytest.raises(SemsmoothError):
        vignette_mask(4, 4, margin=5)


def test_lowpass_keeps_constants_and_matches_numpy():
    x = torch.full((2, 1, 20, 24), 0.37)
    assert torch.allclose(lowpass(x, 3), x, atol=1e-6)
    g = torch.Generator().manual_seed(0)
    y = torch.rand(3, 2, 20, 24, generator=g, dtype=torch.float64)
    B = 4
    # independent reference: numpy FFT with an explicit box |k| <= B on integer frequencies
    F = np.fft.fft2(y.numpy())
    ky = np.fft.fftfreq(20) * 20
    kx = np.fft.fftfreq(24) * 24
    keep = (np.abs(ky)[:, None] <= B) & (np.abs(kx)[None, :] <= B)
    ref = np.real(np.fft.ifft2(F * keep))
    assert np.allclose(lowpass(y, B).numpy(), ref, atol=1e-10)
    assert lowpass_mask(20, 24, B).sum() == (2 * B + 1) ** 2


@pytest.mark.parametrize("B", [0, 2, 5, 9])
def test_lowpass_never_adds_energy_and_is_a_projection(B):
    g = torch.Generator().manual_seed(B)
    a = torch.rand(5, 1, 16, 16, generator=g, dtype=torch.float64)
    b = torch.rand(5, 1, 16, 16, generator=g, dtype=torch.float64)
    pa = lowpass(a, B)
    assert (pa.flatten(1).norm(dim=1) <= a.flatten(1).norm(dim=1) + 1e-9).all()
    assert ((pa - lowpass(b, B)).flatten(1).norm(dim=1) <= (a - b).flatten(1).norm(dim=1) + 1e-9).all()
    assert torch.allclose(lowpass(pa, B), pa, atol=1e-10)          # idempotent


def test_gaussian_kernel_normalised_and_matches_scipy():
    from scipy.ndimage import gaussian_filter as sp_gauss
    k = gaussian_kernel1d(5, 1.0, dtype=torch.float64)
    assert abs(float(k.sum()) - 1) < 1e-12
    assert abs(float(torch.outer(k, k).sum()) - 1) < 1e-12   # the reference C++ filter summed to ~0.5
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, 15, 17, generator=g, dtype=torch.float64)
    ours = gaussian_filter(x, 5, 1.0)[0, 0].numpy()
    # scipy with truncate so that the radius is 2, zero padding ("constant")
    ref = sp_gauss(x[0, 0].numpy(), sigma=1.0, truncate=2.0, mode="constant", cval=0.0)
    assert np.allclose(ours, ref, atol=1e-12)
    assert float(gaussian_filter(x, 5, 1.0).norm()) <= float(x.norm())


def test_spec_roundtrip_and_errors():
    for s in ["vignette+gauss:5:1.0", "vignette:2+lowpass:8", "lowpass:3.5", "none", ""]:
        p = Preprocess.parse(s)
        assert Preprocess.parse(str(p)) == p
        assert Preprocess.parse(p.to_dict()) == p
    p = Preprocess.parse("vignette+lowpass:8")
    x = torch.rand(2, 1, 28, 28)
    assert torch.allclose(p(x), lowpass(vignette(x), 8))
    assert torch.allclose(p.as_module()(x), p(x))
    assert str(build(True, 0, 8, "5:1")) == "vignette+gauss:5:1+lowpass:8"
    assert Preprocess.parse("none").is_identity
    for bad in ["foo", "lowpass", "gauss:4", "gauss:5:0", "lowpass:-1", "vignette:x", "lowpass:1:2"]:
        with pytest.raises(SemsmoothError):
            Preprocess.parse(bad)


def test_small_and_large_image_paths_agree():
    """Small images use dense separable matrices, large ones FFT / conv2d: same operators."""
    import semsmooth_core.preprocess as P
    g = torch.Generator().manual_seed(4)
    x = torch.rand(2, 2, 30, 33, generator=g, dtype=torch.float64)
    dense = (P.lowpass(x, 5), P.gaussian_filter(x, 7, 1.5))
    old = P._DENSE_MAX
    try:
        P._DENSE_MAX = 0
        other = (P.lowpass(x, 5), P.gaussian_filter(x, 7, 1.5))
    finally:
        P._DENSE_MAX = old
    for a, b in zip(dense, other):
        assert torch.allclose(a, b, atol=1e-12)
