"""Spoken digits from Debian's espeak-ng, and log-mel spectrograms written with torch.

Part of the AV-MNIST-style data for Gradient-Blending (Wang, Tran, Feiszli, "What Makes Training Multi-Modal
Classification Networks Hard?", CVPR 2020, arXiv 1905.12681); the audio stream of AV-MNIST (Vielzeuf et al. 2018)
is spoken digits turned into spectrograms. We synthesise the words "zero".."nine" with espeak-ng across voices,
voice variants, speeds and pitches (no download), and compute log-mel features:

  power spectrogram |STFT(x)|^2 (Hann window) -> triangular mel filterbank (HTK mel scale,
  mel(f) = 2595 log10(1 + f / 700)) -> log(mel + 1e-6).
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import torch

from paperzoo.errors import DataError

SAMPLE_RATE = 22050  # espeak-ng's output rate
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# espeak-ng's own English voices (the mbrola ones need extra packages) and voice variants (timbre/formants).
VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029",
          "en-us-nyc")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3",
            "croak", "whisper")


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(word: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """The float32 waveform in [-1, 1] at 22,050 Hz of espeak-ng saying `word` (voice like "en-us+f3")."""
    if not espeak_available():
        raise DataError("the spoken digits are made with espeak-ng, which is not installed: "
                        "apt-get install espeak-ng (Debian/Ubuntu)")
    out = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word],
                         capture_output=True, check=False)
    if out.returncode != 0 or out.stdout[:4] != b"RIFF":
        raise DataError(f"espeak-ng failed for voice {voice!r}: {out.stderr.decode(errors='replace').strip()}")
    return _wav_samples(out.stdout)


def _wav_samples(data: bytes) -> np.ndarray:
    """16-bit mono PCM samples of a WAV byte string; espeak-ng streams with a placeholder length, so the data
    chunk is read to the end of the bytes instead of trusting its size field."""
    start = data.find(b"data")
    if start < 0:
        raise DataError("espeak-ng output has no WAV data chunk")
    pcm = data[start + 8:]
    pcm = pcm[:len(pcm) // 2 * 2]
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + f / 700.0)


def mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, f_min: float = 0.0,
                   f_max: float | None = None) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular filters with peaks evenly spaced on the mel scale (peak value 1)."""
    f_max = f_max if f_max is not None else sample_rate / 2
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate/2, got f_min={f_min}, f_max={f_max}")
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)  # (F,)
    edges = mel_to_hz(torch.linspace(hz_to_mel(torch.tensor(f_min)), hz_to_mel(torch.tensor(float(f_max))),
                                     n_mels + 2, dtype=torch.float64))  # (n_mels + 2,)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (n_mels, 1) each
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0).float()  # (n_mels, F)


def log_mel(wave: torch.Tensor, n_mels: int = 40, n_fft: int = 1024, hop: int = 441,
            sample_rate: int = SAMPLE_RATE, f_max: float = 8000.0) -> torch.Tensor:
    """(..., n_mels, frames) log-mel spectrogram of (..., samples) waveforms; frames = samples // hop + 1."""
    spec = torch.stft(wave, n_fft, hop_length=hop, window=torch.hann_window(n_fft), center=True,
                      return_complex=True).abs() ** 2  # (..., F, frames)
    mel = mel_filterbank(n_mels, n_fft, sample_rate, f_max=f_max) @ spec  # (..., n_mels, frames)
    return torch.log(mel + 1e-6)
