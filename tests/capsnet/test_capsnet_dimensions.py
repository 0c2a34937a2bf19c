"""What a capsule dimension encodes (Fig. 4 of the CapsNet paper), on hand-made decoders: selectivity is 1 for a
direction that changes one attribute only, 1/6 for one that changes all six equally, and the dimensions of a decoder
that gives each its own attribute are more selective than random mixtures of them; same-attribute consistency is 1
when a dimension changes one attribute in every digit (and so does any fixed direction under a smooth decoder),
about 0 when what it changes differs between digits."""

import math

import torch

from paperzoo.capsnet.dimensions import (attribute_changes, attributes, axis_directions, consistency,
                                         random_directions, selectivity)

SIDE = 28


def _blob(z: torch.Tensor, turn: torch.Tensor | None = None) -> torch.Tensor:
    """A Gaussian blob drawn from capsule coordinates z (B, D): dimension 0 sets the width (or, with `turn`, width
    and height mixed by an angle that differs per digit), 1 the height, 2 the horizontal position."""
    ys, xs = torch.arange(SIDE, dtype=z.dtype)[:, None], torch.arange(SIDE, dtype=z.dtype)[None, :]
    angle = torch.zeros(len(z)) if turn is None else turn
    sx = 3 + 4 * z[:, 0] * torch.cos(angle) + 2 * z[:, 1]
    sy = 4 + 4 * z[:, 0] * torch.sin(angle) + 2 * z[:, 1]
    cx = 14 + 8 * z[:, 2]
    image = torch.exp(-((xs - cx[:, None, None]) / sx[:, None, None]) ** 2 / 2
                      - ((ys - 14) / sy[:, None, None]) ** 2 / 2)  # (B, H, W)
    return image[:, None]


def _capsules(n: int = 60):
    torch.manual_seed(0)
    return 0.2 * torch.rand(n, 1, 3), torch.zeros(n, dtype=torch.long)  # one class, one 3-D capsule per digit


def _decoder(turn=None):
    return lambda v, labels: _blob(v[torch.arange(len(labels)), labels], turn)


def test_attributes_of_a_rectangle_by_hand():
    image = torch.zeros(1, 1, SIDE, SIDE)
    image[0, 0, 10:14, 4:12] = 1.0  # rows 10-13, columns 4-11
    ink, cx, cy, width, height, slant = attributes(image)[0].tolist()
    assert ink == 32 and cx == 7.5 and cy == 11.5 and slant == 0
    assert math.isclose(width, math.sqrt((8 ** 2 - 1) / 12), rel_tol=1e-5)
    assert math.isclose(height, math.sqrt((4 ** 2 - 1) / 12), rel_tol=1e-5)


def test_a_dimension_with_one_attribute_is_consistent():
    v, labels = _capsules()
    scores = consistency(attribute_changes(_decoder(), v, labels, axis_directions(len(v), 3)), labels)
    assert (scores > 0.95).all(), scores


def test_a_fixed_random_direction_is_consistent_under_a_smooth_decoder_so_the_control_can_beat_the_axes():
    v, labels = _capsules()
    random = random_directions(len(v), 3, 3, torch.Generator().manual_seed(1))
    assert torch.equal(random[0], random[-1]) and torch.allclose(random.norm(dim=-1), torch.ones(len(v), 3))
    assert (consistency(attribute_changes(_decoder(), v, labels, random), labels) > 0.9).all()


def test_a_dimension_that_changes_a_different_attribute_in_each_digit_is_not_consistent():
    v, labels = _capsules()
    turn = torch.linspace(0, 2 * math.pi, len(v) + 1)[:-1]  # dimension 0 moves width/height at a per-digit angle
    first = axis_directions(len(v), 3)[:, :1]  # (B, 1, 3)
    assert consistency(attribute_changes(_decoder(turn), v, labels, first), labels).abs().item() < 0.1


def test_selectivity_by_hand():
    changes = torch.tensor([[[0.0, 3.0, 0, 0, 0, 0], [1.0, 1, 1, 1, 1, 1], [0.0, 0, 0, 0, 0, 0]],
                            [[0.0, 0.0, 4, 0, 0, 0], [1.0, 1, 1, 1, 1, 1], [3.0, 4, 0, 0, 0, 0]]])  # (B=2, K=3, A=6)
    assert torch.allclose(selectivity(changes), torch.tensor([1.0, 1 / 6, (1 / 6 + 16 / 25) / 2]))


def test_dimensions_with_one_attribute_each_are_more_selective_than_mixtures_of_them():
    """In the blob decoder, dimension 2 moves the blob sideways (centre x only) and 0 widens it (width, and the ink
    that comes with it); random unit directions mix the three dimensions, so their changes spread over more
    attributes."""
    v, labels = _capsules()
    axes = selectivity(attribute_changes(_decoder(), v, labels, axis_directions(len(v), 3)))
    mixed = selectivity(attribute_changes(_decoder(), v, labels,
                                          random_directions(len(v), 3, 3, torch.Generator().manual_seed(1))))
    assert axes[2] > 0.99 and axes.mean() > mixed.mean() + 0.1, (axes, mixed)
