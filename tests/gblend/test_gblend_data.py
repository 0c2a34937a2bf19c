"""AV-digits: log-mel features, WAV parsing, PCA degradation, pairing by label and a deterministic builder."""

import io
import wave

import numpy as np
import pytest
import torch

from paperzoo.errors import DataError
from paperzoo.gblend import audio
from paperzoo.gblend.data import AVDigitsConfig, av_digits, mix, pca_degrade, pick_clips, speakers, utterance_bank

needs_espeak = pytest.mark.skipif(not audio.espeak_available(), reason="espeak-ng not installed "
                                  "(apt-get install espeak-ng)")


def test_mel_filterbank_shape_and_peaks():
    fb = audio.mel_filterbank(n_mels=10, n_fft=512, sample_rate=16000)
    assert fb.shape == (10, 257)
    assert (fb >= 0).all()
    assert fb.max(dim=1).values.min() > 0.9  # every triangle reaches (close to) 1 at a bin near its centre
    centres = fb.argmax(dim=1)
    assert (centres[1:] > centres[:-1]).all()  # increasing centre frequencies
    with pytest.raises(ValueError, match="f_min < f_max"):
        audio.mel_filterbank(10, 512, 16000, f_min=9000)


def test_mel_scale_round_trip_and_known_value():
    f = torch.tensor([0.0, 700.0, 4000.0], dtype=torch.float64)
    torch.testing.assert_close(audio.mel_to_hz(audio.hz_to_mel(f)), f)
    assert audio.hz_to_mel(torch.tensor(700.0)).item() == pytest.approx(2595 * np.log10(2))


def test_log_mel_puts_a_tone_in_the_right_band():
    sr, n_fft = audio.SAMPLE_RATE, 1024
    t = torch.arange(sr) / sr
    low, high = torch.sin(2 * torch.pi * 300 * t), torch.sin(2 * torch.pi * 3000 * t)
    feats = audio.log_mel(torch.stack([low, high]))  # (2, 40, frames)
    assert feats.shape == (2, 40, sr // 441 + 1)
    fb = audio.mel_filterbank(40, n_fft, sr, f_max=8000.0)
    bin_of = lambda hz: round(hz * n_fft / sr)  # noqa: E731
    assert feats[0, :, 10].argmax() == fb[:, bin_of(300)].argmax()
    assert feats[1, :, 10].argmax() == fb[:, bin_of(3000)].argmax()


def test_wav_parsing_ignores_the_streamed_length_field():
    samples = np.array([0, 16384, -16384, 32767], dtype="<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(22050)
        w.writeframes(samples.tobytes())
    data = bytearray(buffer.getvalue())
    data[data.find(b"data") + 4:data.find(b"data") + 8] = b"\xff\xff\xff\x7f"  # espeak-ng's placeholder size
    np.testing.assert_allclose(audio._wav_samples(bytes(data)), samples / 32768.0)
    with pytest.raises(DataError, match="no WAV data"):
        audio._wav_samples(b"RIFF....WAVEfmt ")


def test_pca_degrade_keeps_everything_with_all_components():
    g = torch.Generator().manual_seed(0)
    train = torch.rand(50, 1, 4, 4, generator=g)
    (full,) = pca_degrade(train, [train], 16)
    torch.testing.assert_close(full, train, atol=1e-5, rtol=0)
    (two,) = pca_degrade(train, [train], 2)
    residual = (two - train).flatten(1)
    assert residual.norm() > 0  # information removed, and the reconstruction is its best rank-2 fit:
    centred = (train - train.mean(0)).flatten(1)
    s = torch.linalg.svdvals(centred)
    assert residual.norm().item() == pytest.approx(s[2:].norm().item(), rel=1e-4)


def test_pairing_picks_clips_of_the_same_digit():
    bank = [[np.full(5, d, dtype=np.float32)] * (d + 1) for d in range(10)]  # clip values = their digit
    labels = np.array([3, 3, 0, 9, 7, 1])
    picks = pick_clips(labels, bank, np.random.default_rng(0))
    assert [d for d, _ in picks] == labels.tolist()
    assert all(0 <= i < len(bank[d]) for d, i in picks)
    assert all(bank[d][i][0] == d for d, i in picks)


def test_mix_sets_the_noise_level():
    rng = np.random.default_rng(0)
    clip = np.sin(np.linspace(0, 200, 4000)).astype(np.float32)
    out = mix([clip], rng, snr_db=(0.0, 0.0), samples=8000)
    assert out.shape == (1, 8000)
    # at 0 dB the noise power equals the (gain-scaled) clip power, so total power ~ 2 x clip power
    signal_power = np.mean(clip ** 2)
    assert 0.25 * signal_power < out[0, :].var() * 2 < 4 * signal_power


def test_speakers_are_disjoint_and_seeded():
    train, test = speakers(0, 0.25)
    assert not set(train) & set(test)
    assert len(train) + len(test) == len(audio.VOICES) * len(audio.VARIANTS)
    assert speakers(0, 0.25) == (train, test) and speakers(1, 0.25) != (train, test)


@needs_espeak
def test_utterance_bank_is_deterministic_from_the_seed():
    cfg = AVDigitsConfig(utterances_per_digit=2, seed=3)
    a, b = utterance_bank(cfg, progress=False), utterance_bank(cfg, progress=False)
    for split in ("train", "test"):
        assert [len(c) for c in a[split]] == [1] * 10
        for clips_a, clips_b in zip(a[split], b[split]):
            np.testing.assert_array_equal(clips_a[0], clips_b[0])
    assert np.abs(a["train"][7][0]).max() > 0.05  # a real utterance, not silence


def test_bad_config_is_a_data_error():
    with pytest.raises(DataError, match="image_components"):
        av_digits(AVDigitsConfig(image_components=0), progress=False, cache=False)
    with pytest.raises(DataError, match="val_fraction"):
        av_digits(AVDigitsConfig(val_fraction=1.0), progress=False, cache=False)
