"""Moving digits: a small temporal task with exact ground truth, built from the 5,000 real MNIST digits.

No labelled real video set can be had offline (Kinetics is out of reach), so the small-scale claims use clips
whose label is a fact of time. In each clip one real handwritten digit (downscaled to 14x14) slides across a
dark square canvas in a straight line at constant speed (1 or 2 pixels per frame), starting at a random place;
the label is the direction of motion: 0 right, 1 left, 2 down, 3 up.

Why a model that ignores time cannot solve it: every trajectory is drawn first and then played forwards or
backwards with equal probability, so a clip and its time-reversed copy hold exactly the same frames and carry
opposite labels (right <-> left, down <-> up: label ^ 1). Any function of the *set* of frames, e.g. TSN's
average of per-frame scores, sees the axis of motion (horizontal or vertical) but not its sense, and so is right
at most 50% of the time (chance is 25%). A single frame says nothing about the direction at all.

Train clips use the digits of mnist_5k's training split, test clips its held-out digits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from paperzoo.data import mnist_5k

DIRECTIONS = ("right", "left", "down", "up")
"""The class names of moving digits by label: the direction of motion (a time reversal flips label ^ 1)."""
DIGIT_SIZE = 14


def reverse_label(label: torch.Tensor) -> torch.Tensor:
    """The label of the time-reversed clip: right <-> left, down <-> up."""
    return label ^ 1


@dataclass
class MovingDigits:
    """Clips (N, 1, T, S, S) float in [0, 1] and direction labels (N,) int64, train and test."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    def train(self) -> TensorDataset:
        return TensorDataset(self.train_x, self.train_y)


def _trajectories(rng: np.random.Generator, n: int, num_frames: int, free: int):
    """Per clip: rows and cols (n, T) of a straight constant-speed path inside 0..free, and its direction label."""
    speed = rng.integers(1, 3, n)  # 1 or 2 pixels per frame
    travel = speed * (num_frames - 1)
    start = (rng.random(n) * (free - travel + 1)).astype(np.int64)
    along = start[:, None] + speed[:, None] * np.arange(num_frames)  # (n, T) forward path
    backwards = rng.integers(0, 2, n)
    along = np.where(backwards[:, None] == 1, along[:, ::-1], along)
    across = np.repeat(rng.integers(0, free + 1, n)[:, None], num_frames, axis=1)  # (n, T)
    vertical = rng.integers(0, 2, n)
    rows = np.where(vertical[:, None] == 1, along, across)
    cols = np.where(vertical[:, None] == 1, across, along)
    return rows, cols, 2 * vertical + backwards


def render_clips(digits: torch.Tensor, n: int, num_frames: int, size: int, rng: np.random.Generator,
                 distractor: float = 0.5, noise: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` clips from digit images (M, 1, 28, 28): (n, 1, T, size, size) clips and (n,) labels (the target's
    direction). With `distractor` > 0 a second digit at that brightness moves in its own random direction;
    `noise` is the std of Gaussian pixel noise."""
    if size < DIGIT_SIZE + 2 * (num_frames - 1):
        raise ValueError(f"a {size}x{size} canvas is too small for {num_frames} frames of motion; "
                         f"need size >= {DIGIT_SIZE + 2 * (num_frames - 1)}")
    small = F.avg_pool2d(digits, 2)[:, 0].numpy()  # (M, 14, 14)
    free = size - DIGIT_SIZE  # positions 0..free keep the digit on the canvas
    clips = np.zeros((n, num_frames, size, size), dtype=np.float32)
    objects = [(1.0, *_trajectories(rng, n, num_frames, free))]
    if distractor > 0:
        objects.append((distractor, *_trajectories(rng, n, num_frames, free)))
    for brightness, rows, cols, _ in objects:
        which = rng.integers(0, len(small), n)
        for i in range(n):
            for t in range(num_frames):
                r, c = rows[i, t], cols[i, t]
                patch = clips[i, t, r:r + DIGIT_SIZE, c:c + DIGIT_SIZE]
                np.maximum(patch, brightness * small[which[i]], out=patch)
    if noise > 0:
        clips = np.clip(clips + noise * rng.standard_normal(clips.shape, dtype=np.float32), 0, 1)
    return torch.from_numpy(clips)[:, None], torch.from_numpy(objects[0][3])  # (n, 1, T, S, S), (n,)


def moving_digits(n_train: int, n_test: int, num_frames: int = 8, size: int = 32, distractor: float = 0.5,
                  noise: float = 0.0, seed: int = 0) -> MovingDigits:
    """The task at a given size; the same arguments give the same clips on every machine."""
    digits = mnist_5k()
    rng = np.random.default_rng(seed)
    train = render_clips(digits.train_x, n_train, num_frames, size, rng, distractor, noise)
    test = render_clips(digits.test_x, n_test, num_frames, size, rng, distractor, noise)
    return MovingDigits(*train, *test)
