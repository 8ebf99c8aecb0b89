"""Register the pretrained Silero VAD (PyPI ``silero-vad``, MIT licence) as a shipped model entry.

Writes ``assets/models/silero_vad.pt`` (a semsmooth checkpoint with arch ``silero_vad`` and no
weights of its own: the TorchScript weights stay inside the installed package and are loaded
from there) and its card ``silero_vad.json`` with the package version, the sha256 of
``silero_vad.jit`` and its accuracy as a speech / no-speech detector on the held-out clips
(every clip is speech) and on non-speech inputs (silence and white noise at -40 dBFS RMS).

    pip install silero-vad==6.2.3 && python -m scripts.package_silero_vad
"""

from __future__ import annotations

from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    torch.set_num_threads(1)
    from semsmooth_core.data.speech import embedded_speech
    from semsmooth_core.models.audio_models import SILERO_VERSION, SileroSpeechDetector, silero_jit_path
    from semsmooth_core.models.checkpoint import save_checkpoint, sha256_file

    model = SileroSpeechDetector().eval()
    x, _, _ = embedded_speech("heldout")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        speech_rate = float((model(x).argmax(1) == 1).float().mean())
        speech_noisy = float((model(x + 0.01 * torch.randn(x.shape, generator=g)).argmax(1) == 1).float().mean())
        silence = torch.zeros(20, x.shape[1])
        noise = 0.01 * torch.randn(20, x.shape[1], generator=g)
        nonspeech_rate = float((model(torch.cat([silence, noise])).argmax(1) == 0).float().mean())
    card = {
        "summary": "Silero VAD (pretrained, MIT) as speech / no-speech classifier of 1 s clips",
        "task": "speech-vad", "modality": "audio", "classes": ["no speech", "speech"],
        "input": "waveform [B,16000] float in [-1,1) (int16/32768), 16 kHz, 1 s",
        "source": f"PyPI silero-vad=={SILERO_VERSION}, file silero_vad/data/silero_vad.jit (TorchScript), "
                  "https://github.com/snakers4/silero-vad",
        "licence": "MIT (Copyright (c) 2020-present Silero Team)",
        "jit_sha256": sha256_file(silero_jit_path()),
        "decision": "speech iff max over 32 ms chunks of the speech probability > 0.5",
        "heldout_speech_detected": round(speech_rate, 4),
        "heldout_speech_detected_noise_0.01": round(speech_noisy, 4),
        "nonspeech_rejected_silence_and_noise": round(nonspeech_rate, 4),
        "weights_in_checkpoint": "none (loaded from the installed package at run time)",
        "command": f"pip install silero-vad=={SILERO_VERSION} && python -m scripts.package_silero_vad",
    }
    out = save_checkpoint(ROOT / "assets" / "models" / "silero_vad.pt", model, "silero_vad", {"threshold": 0.5}, card)
    print(out, {k: card[k] for k in card if "detected" in k or "rejected" in k})


if __name__ == "__main__":
    main()
