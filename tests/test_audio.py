"""Audio (issue 6): int16 storage, the volume transform and its rounding error, the torch MFCC
against librosa, the speech data and models, certification on a few clips, bad uploads, the page."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from semsmooth_core import audio, errors, transforms
from semsmooth_core.data import speech
from semsmooth_core.data.datasets import dataset_classes, dataset_names, load_dataset
from semsmooth_core.validation import SemsmoothError

LSB = 1.0 / 32768.0


def wav_bytes(x, sr, subtype="PCM_16", fmt="WAV"):
    buf = io.BytesIO()
    sf.write(buf, x, sr, subtype=subtype, format=fmt)
    return buf.getvalue()


# --------------------------------------------------------------------------- int16 storage
def test_quantize_int16_rounds_and_clamps():
    x = torch.tensor([-2.0, -1.0, -0.3 * LSB, 0.4 * LSB, 0.6 * LSB, 1234.49 * LSB, 1.0, 5.0])
    q = audio.quantize_int16(x)
    k = q * 32768
    assert torch.equal(k, torch.round(k))                       # on the int16 grid
    assert k.tolist() == [-32768, -32768, 0, 0, 1, 1234, 32767, 32767]
    rng = np.random.default_rng(0)
    ref = np.clip(np.round(rng.uniform(-1.5, 1.5, 1000) * 32768), -32768, 32767)
    got = audio.to_int16(torch.tensor(ref / 32768))
    assert got.dtype == np.int16 and np.array_equal(got, ref.astype(np.int16))
    assert torch.equal(audio.from_int16(got) * 32768, torch.tensor(ref, dtype=torch.float32))


# --------------------------------------------------------------------------- volume transform
def _numpy_volume(k: np.ndarray, db: float) -> np.ndarray:
    """Independent reference in integer arithmetic: round(clip(k · 10^(db/20)))."""
    return np.clip(np.round(k.astype(np.float64) * 10 ** (db / 20)), -32768, 32767)


def test_volume_registered_and_matches_int16_reference():
    t = transforms.get("volume")
    assert "volume" in transforms.names() and t.modality == "audio" and t.unit == "dB"
    rng = np.random.default_rng(1)
    k = rng.integers(-20000, 20000, size=(3, 4000))
    x = torch.tensor(k / 32768, dtype=torch.float32)
    dbs = torch.tensor([[-7.3], [0.0], [9.1]])
    y = t(x, dbs)
    for i, db in enumerate(dbs[:, 0].tolist()):
        assert np.array_equal((y[i] * 32768).double().numpy(), _numpy_volume(k[i], db))
    # +6.0206 dB doubles the amplitude; large gains clamp at full scale
    assert torch.allclose(t(x, 20 * np.log10(2), quantize=False), 2 * x, atol=1e-6)
    assert float(t(x, 20.0).max()) == audio.INT16_MAX
    with pytest.raises(SemsmoothError):
        t(torch.zeros(2, 3, 4), 1.0)


def test_composition_error_is_what_rounding_predicts():
    """ε(β,γ,x) = Q(a Q(b x)) − Q(ab x), a = 10^(β/20), b = 10^(γ/20): an integer number of LSB,
    equal to the integer reference, at most floor(a/2 + 1) LSB per sample, 0 when β = 0 or γ = 0,
    and of l2 size ~ one rounding of the clip (sqrt(T/12) LSB) for a dense signal."""
    setup = audio.volume_error_setup(3.0, (-3.0, 3.0))
    rng = np.random.default_rng(2)
    T = 16000
    k = np.clip(np.round(rng.normal(0, 3000, size=(6, T))), -32768, 32767)
    x = torch.tensor(k / 32768, dtype=torch.float32)
    beta = torch.tensor([[1.7], [-2.9], [4.4], [-0.3], [0.0], [2.2]])
    gamma = torch.tensor([[2.5], [-1.1], [-3.0], [0.8], [1.5], [0.0]])
    e = errors.eps(setup, x, beta, gamma) * 32768
    for i in range(6):
        b, g, bg = float(beta[i]), float(gamma[i]), float(beta[i] + gamma[i])   # β+γ as errors.eps sums it
        ref = np.clip(np.round(_numpy_volume(k[i], g) * 10 ** (b / 20)), -32768, 32767) - _numpy_volume(k[i], bg)
        assert np.array_equal(e[i].double().numpy(), ref)
        a = 10 ** (b / 20)
        assert float(e[i].abs().max()) <= np.floor(a / 2 + 1)
    assert float(e[4].abs().max()) == 0 and float(e[5].abs().max()) == 0
    # nonzero β, γ: the l2 norm is of the size of a single rounding of the clip, sqrt(T/12)·(a or 1)
    l2 = (e[:4] * LSB).norm(dim=1)
    one = audio.rounding_error_l2(T)
    assert torch.all(l2 > 0.3 * one) and torch.all(l2 < 3.0 * one)


def test_volume_error_sample_and_E():
    x, _, _ = speech.embedded_speech("heldout")
    smp = audio.volume_error_norms(x[:20], 300, 3.0, (-3.0, 3.0), seed=0)
    assert smp["norms"].shape == (300,) and np.all(smp["norms"] >= 0)
    assert np.all(np.abs(smp["gamma"]) <= 3.0)
    est = errors.E_for_q(smp["norms"], 0.9, 0.01)
    assert 0 < est["E"] < 0.01 and est["q_E_lower"] >= 0.9
    again = audio.volume_error_norms(x[:20], 300, 3.0, (-3.0, 3.0), seed=0)
    assert np.array_equal(again["norms"], smp["norms"])


# --------------------------------------------------------------------------- MFCC
def test_torch_mfcc_matches_librosa():
    x, _, _ = speech.embedded_speech("heldout")
    g = torch.Generator().manual_seed(0)
    batch = torch.cat([x[[0, 57, 133]], x[[5]] + 0.01 * torch.randn(1, x.shape[1], generator=g),
                       torch.zeros(1, x.shape[1])])
    got = audio.MFCC()(batch).numpy()
    assert got.shape == (5, 40, 101)
    for i in range(5):
        ref = audio.mfcc_numpy(batch[i].numpy())
        assert ref.shape == got[i].shape
        assert np.abs(got[i] - ref).max() <= 1e-3 * max(1.0, np.abs(ref).max())


def test_speech_model_shapes_and_registry():
    from semsmooth_core.models import build

    m = build("speech_cnn").eval()
    x = torch.zeros(3, 16000)
    assert m.features_of(x).shape == (3, 1, 40, 101)
    assert m(x).shape == (3, 10) and m(x[0]).shape == (1, 10)
    with pytest.raises(SemsmoothError):
        m(torch.zeros(2, 8000))


# --------------------------------------------------------------------------- data
def test_speech_words_dataset_and_voices_disjoint():
    assert "speech-words" in dataset_names()
    assert dataset_classes("speech-words") == list(speech.WORDS)
    x, y = load_dataset("speech-words")
    assert x.shape == (200, 16000) and x.dtype == torch.float32
    assert torch.equal(torch.bincount(y), torch.full((10,), 20))
    assert torch.equal(x * 32768, torch.round(x * 32768)) and float(x.abs().max()) < 1
    xs, ys = load_dataset("speech-words", indices=[3, 150])
    assert torch.equal(xs, x[[3, 150]]) and torch.equal(ys, y[[3, 150]])
    man = speech.heldout_manifest()
    import importlib.util
    from semsmooth_core.paths import REPO_ROOT

    spec = importlib.util.spec_from_file_location("synth_speech", REPO_ROOT / "scripts" / "synth_speech.py")
    synth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(synth)
    assert set(man["speakers"]) <= set(synth.HELDOUT_VARIANTS)
    _, _, meta = speech.embedded_speech("heldout")
    assert set(meta["speaker"].tolist()) == set(man["speakers"])


def test_speech_commands_folder_loader(tmp_path):
    rng = np.random.default_rng(3)
    clips = {}
    for w, n in (("yes", 3), ("go", 2), ("cat", 1)):           # "cat" is not one of the ten words
        (tmp_path / w).mkdir()
        for j in range(n):
            k = rng.integers(-3000, 3000, size=12000 if j == 0 else 16000).astype(np.int16)
            name = f"spk{j}_nohash_0.wav"
            sf.write(tmp_path / w / name, k, 16000, subtype="PCM_16")
            clips[f"{w}/{name}"] = k
    (tmp_path / "_background_noise_").mkdir()
    (tmp_path / "testing_list.txt").write_text("yes/spk1_nohash_0.wav\ngo/spk0_nohash_0.wav\n")
    (tmp_path / "validation_list.txt").write_text("yes/spk2_nohash_0.wav\n")
    xt, yt = load_dataset("speech-words", split="test", root=str(tmp_path))
    assert xt.shape == (2, 16000) and yt.tolist() == [0, 9]
    assert np.array_equal((xt[0] * 32768).numpy().astype(np.int16), clips["yes/spk1_nohash_0.wav"])
    assert np.array_equal((xt[1, :12000] * 32768).numpy().astype(np.int16), clips["go/spk0_nohash_0.wav"])
    assert float(xt[1, 12000:].abs().max()) == 0                # padded to 1 s
    xtr, ytr = load_dataset("speech-words", split="train", root=str(tmp_path))
    assert ytr.tolist() == [0, 9]
    xv, yv = load_dataset("speech-words", split="validation", root=str(tmp_path))
    assert yv.tolist() == [0]
    with pytest.raises(SemsmoothError):
        load_dataset("speech-words", split="test", root=str(tmp_path / "nope"))


# --------------------------------------------------------------------------- uploads
def test_decode_audio_good_and_bad_uploads():
    rng = np.random.default_rng(4)
    mono = (rng.normal(0, 0.1, 16000)).astype(np.float32)
    k = np.round(mono * 32768).astype(np.int16)
    d = audio.decode_audio(wav_bytes(k, 16000), "a.wav")              # int16 WAV: decoded exactly
    assert d.clip.shape == (16000,) and d.notices == []
    assert np.array_equal(d.clip * 32768, k.astype(np.float32))
    mono = k / 32768
    # stereo -> mean mixdown with a notice
    st = np.stack([mono, np.zeros_like(mono)], axis=1)
    d = audio.decode_audio(wav_bytes(st, 16000), "s.wav")
    assert d.original_channels == 2 and any("mixed down" in n for n in d.notices)
    assert np.abs(d.clip - mono / 2).max() <= 1.0 / 32768
    # 8 kHz -> resampled with a notice; a 440 Hz tone keeps its frequency
    t = np.arange(8000) / 8000
    d = audio.decode_audio(wav_bytes(0.5 * np.sin(2 * np.pi * 440 * t), 8000), "t.wav")
    assert any("resampled from 8000 Hz" in n for n in d.notices) and d.original_sample_rate == 8000
    spec = np.abs(np.fft.rfft(d.clip))
    assert abs(np.argmax(spec) - 440) <= 1
    # short -> padded, long -> loudest second, FLAC and OGG decode
    d = audio.decode_audio(wav_bytes(mono[:4000], 16000, fmt="FLAC"), "x.flac")
    assert any("padded" in n for n in d.notices) and d.clip[4000:].max() == 0
    long = np.zeros(48000, dtype=np.float32)
    long[30000:34000] = 0.5
    d = audio.decode_audio(wav_bytes(long, 16000), "l.wav")
    assert any("cropped" in n for n in d.notices) and d.clip.max() > 0.4
    d = audio.decode_audio(wav_bytes(mono, 16000, subtype="VORBIS", fmt="OGG"), "x.ogg")
    assert d.clip.shape == (16000,)
    # refused with one line
    bad = [b"", b"this is not audio at all" * 10, wav_bytes(np.zeros(0, dtype=np.float32), 16000),
           wav_bytes(np.zeros(8000 * 600, dtype=np.int16), 8000)]
    msgs = []
    for data in bad:
        with pytest.raises(SemsmoothError) as ei:
            audio.decode_audio(data, "u.wav")
        msgs.append(str(ei.value))
        assert "\n" not in str(ei.value)
    assert "empty" in msgs[0] and "not a readable audio" in msgs[1] and "no audio samples" in msgs[2]
    assert "600.0 s long" in msgs[3] and "limit is 30 s" in msgs[3]
    nan = np.full(1000, np.nan, dtype=np.float32)
    with pytest.raises(SemsmoothError, match="NaN"):
        audio.decode_audio(wav_bytes(nan, 16000, subtype="FLOAT"), "n.wav")


# --------------------------------------------------------------------------- certification
@pytest.fixture(scope="module")
def speech_model():
    from semsmooth_core.models import list_models, load_model

    if "speech_cnn" not in list_models():
        pytest.skip("assets/models/speech_cnn.pt not built")
    return load_model("speech_cnn")


def test_certify_double_volume_on_clips(speech_model):
    from semsmooth_core.smoothing import certify_double

    model, card = speech_model
    x, y = load_dataset("speech-words", indices=[0, 101])
    for i in range(2):
        cert = certify_double(model, x[i], "volume", 3.0, card["sigma_eps"], 0.002, 0.95, 5, 12, 10,
                              0.01, 0.01, 0.001, batch_size=200, generator=torch.Generator().manual_seed(i))
        assert cert.radius_unit == "dB" and cert.n_forward == 5 + 12 * 10
        assert cert.label in (-1, int(y[i]))
        assert cert.radius == 0 if cert.label == -1 else 0 < cert.radius <= 3.0
        assert len(cert.extra["betas"]) == 12


def test_pipeline_certify_speech_words(speech_model):
    from semsmooth_core.runs import pipeline

    rows = []
    cfg = {"dataset": "speech-words", "model": "speech_cnn", "transform": "volume", "sigma_gamma": 3.0,
           "sigma_eps": speech_model[1]["sigma_eps"], "E": 0.002, "q_E_lower": 0.95, "n0": 5, "n_gamma": 10,
           "n_eps": 10, "alpha_gamma": 0.01, "alpha_eps": 0.01, "batch_size": 200}
    out = pipeline.certify_inputs(cfg, [7], rows.append)
    assert out["n"] == 1 and rows[0]["radius_unit"] == "dB"
    json.dumps(out, default=str)


def test_silero_vad_wrapper_if_installed():
    pytest.importorskip("silero_vad")
    from semsmooth_core.models import load_model

    model, card = load_model("silero_vad")
    x, _ = load_dataset("speech-words", indices=[0, 1])
    batch = torch.cat([x, torch.zeros(1, 16000)])
    with torch.no_grad():
        pred = model(batch).argmax(1)
    assert pred.tolist() == [1, 1, 0]
    assert model.state_dict().keys() == {"anchor"}


# --------------------------------------------------------------------------- page
def test_audio_page_renders():
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from semsmooth_core.paths import REPO_ROOT

    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/7_Audio_volume.py")
    at.run()
    assert not at.exception, at.exception
    at.slider(key="av_beta").set_value(6.0)
    at.number_input(key="av_nerr").set_value(200)
    at.run()
    assert not at.exception, at.exception
    assert any("dB" in m.value for m in at.markdown) or any("dB" in c.value for c in at.caption)
    # a bad upload gives one error line and the page stays up
    at.radio(key="av_source").set_value("Upload WAV / FLAC / OGG")
    at.run()
    assert not at.exception, at.exception
    assert any("Upload a clip" in i.value for i in at.info)
