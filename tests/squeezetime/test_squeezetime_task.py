"""The moving-digits task: labels match the motion, and no order-blind model can solve it."""

import numpy as np
import pytest
import torch

from paperzoo.squeezetime.task import DIGIT_SIZE, render_clips, reverse_label

SQUARE = torch.ones(1, 1, 28, 28)  # one "digit": a bright square, so positions are easy to read


def centre_of_mass(frame: torch.Tensor) -> tuple[float, float]:
    rows, cols = torch.nonzero(frame > 0.5, as_tuple=True)
    return rows.float().mean().item(), cols.float().mean().item()


def test_label_is_the_direction_of_motion():
    clips, labels = render_clips(SQUARE, 40, 6, 32, np.random.default_rng(0), distractor=0.0)
    assert clips.shape == (40, 1, 6, 32, 32) and set(labels.tolist()) == {0, 1, 2, 3}
    for clip, label in zip(clips, labels):
        (r0, c0), (r1, c1) = centre_of_mass(clip[0, 0]), centre_of_mass(clip[0, -1])
        expected = {0: c1 > c0 and r1 == r0, 1: c1 < c0 and r1 == r0,
                    2: r1 > r0 and c1 == c0, 3: r1 < r0 and c1 == c0}[int(label)]
        assert expected, (label, (r0, c0), (r1, c1))


def test_reversed_copy_has_same_frames_and_the_opposite_label():
    clips, labels = render_clips(SQUARE, 200, 8, 32, np.random.default_rng(1))
    # every clip's time reversal is a clip of the task with label ^ 1: frame sets are equal, labels differ
    reversed_clips = clips.flip(2)
    assert torch.equal(reversed_clips.sort(dim=2).values, clips.sort(dim=2).values)
    assert (reverse_label(labels) != labels).all()
    assert reverse_label(torch.tensor([0, 1, 2, 3])).tolist() == [1, 0, 3, 2]
    # so any order-blind predictor is right on at most one of (clip, reversed clip): <= 50% on the balanced task
    shuffled = clips[:, :, torch.randperm(8)]
    assert torch.equal(shuffled.sum(2), clips.sum(2))
    counts = torch.bincount(labels, minlength=4)
    assert counts.min() > 30  # balanced directions


def test_digit_stays_on_canvas_and_canvas_too_small_is_an_error():
    clips, _ = render_clips(SQUARE, 50, 8, 32, np.random.default_rng(2), distractor=0.0)
    assert torch.allclose(clips.sum(dim=(3, 4)), torch.full((50, 1, 8), float(DIGIT_SIZE ** 2)))
    with pytest.raises(ValueError, match="too small"):
        render_clips(SQUARE, 1, 16, 32, np.random.default_rng(0))


def test_same_seed_same_clips():
    a = render_clips(SQUARE, 5, 8, 32, np.random.default_rng(3), noise=0.2)
    b = render_clips(SQUARE, 5, 8, 32, np.random.default_rng(3), noise=0.2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
