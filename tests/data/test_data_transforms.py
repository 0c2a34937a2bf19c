"""Tensor augmentations: known maps on hand-made images, identity parameters, crops, and seeded determinism."""

import pytest
import torch

from paperzoo.data.transforms import affine, random_affine, random_resized_crop, two_views

GRID = torch.arange(16.0).reshape(1, 1, 4, 4)  # a 4x4 image with 16 different pixels


def _digits(n: int = 6) -> torch.Tensor:
    images = torch.zeros(n, 1, 28, 28)
    images[:, :, 6:22, 9:19] = torch.rand(n, 1, 16, 10, generator=torch.Generator().manual_seed(0))
    return images


def test_a_quarter_turn_moves_every_pixel_to_its_clockwise_place():
    quarter = affine(GRID, torch.tensor([[0.0, -1.0], [1.0, 0.0]]))  # +90 degrees (y axis points down)
    expected = torch.tensor([[12.0, 8, 4, 0], [13, 9, 5, 1], [14, 10, 6, 2], [15, 11, 7, 3]])
    assert torch.allclose(quarter[0, 0], expected, atol=1e-4)
    assert torch.allclose(quarter, torch.rot90(GRID, -1, (2, 3)), atol=1e-4)


def test_a_shift_of_half_the_half_width_moves_a_4px_image_one_pixel_right_with_zero_fill():
    moved = affine(GRID, torch.eye(2), shift=torch.tensor([0.5, 0.0]))
    expected = torch.cat([torch.zeros(4, 1), GRID[0, 0, :, :3]], 1)
    assert torch.allclose(moved[0, 0], expected, atol=1e-4)


def test_identity_parameters_give_the_images_back():
    images = _digits()
    assert torch.allclose(random_affine(images, max_degrees=0, max_shear=0, scale=(1.0, 1.0)), images, atol=1e-5)
    assert torch.allclose(random_resized_crop(images, scale=(1.0, 1.0), ratio=(1.0, 1.0)), images, atol=1e-5)
    a, b = two_views(images, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), max_degrees=0, max_shear=0)
    assert torch.allclose(a, images, atol=1e-5) and torch.allclose(b, images, atol=1e-5)


def test_random_affine_rotates_by_up_to_max_degrees():
    """A one-pixel dot right of the centre lands at the drawn angle: all angles within +-30 degrees, not all 0."""
    dot = torch.zeros(64, 1, 33, 33)
    dot[:, :, 16, 28] = 1.0  # 12 px right of the centre pixel
    turned = random_affine(dot, max_degrees=30, max_shear=0, scale=(1.0, 1.0),
                           generator=torch.Generator().manual_seed(1))
    ys, xs = torch.meshgrid(torch.arange(33.0) - 16, torch.arange(33.0) - 16, indexing="ij")
    mass = turned[:, 0].flatten(1).sum(1)
    cy, cx = (turned[:, 0] * ys).flatten(1).sum(1) / mass, (turned[:, 0] * xs).flatten(1).sum(1) / mass
    angles = torch.rad2deg(torch.atan2(cy, cx))
    assert angles.abs().max() <= 30.5 and angles.abs().max() > 20 and (angles > 0).any() and (angles < 0).any()


def test_a_crop_stays_inside_the_image_and_zooms():
    ones = torch.ones(8, 1, 20, 20)
    assert torch.allclose(random_resized_crop(ones, scale=(0.1, 0.3)), ones, atol=1e-6)  # never samples outside
    ramp = torch.arange(20.0).expand(3, 1, 20, 20)  # value = column index
    zoomed = random_resized_crop(ramp, scale=(0.25, 0.25), ratio=(1.0, 1.0),
                                 generator=torch.Generator().manual_seed(2))  # half the width: a 2x zoom
    steps = zoomed.diff(dim=3)[..., 1:-1]  # the outer columns may sample the edge's half pixel
    assert torch.allclose(steps, torch.full_like(steps, 0.5), atol=1e-4)
    assert torch.allclose(zoomed, zoomed[:, :, :1].expand_as(zoomed))  # rows stay equal: no vertical mixing


def test_a_crop_of_a_wide_ratio_on_a_tall_image_keeps_the_pixel_aspect():
    """ratio is width / height in pixels: on a 10x40 (H x W) image, area 1/4 and ratio 4 is a 5x20 crop."""
    ramp_x = torch.arange(40.0).expand(2, 1, 10, 40)
    ramp_y = torch.arange(10.0)[:, None].expand(2, 1, 10, 40)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    sx = random_resized_crop(ramp_x, scale=(0.25, 0.25), ratio=(4.0, 4.0), generator=g()).diff(dim=3)[..., 1:-1]
    sy = random_resized_crop(ramp_y, scale=(0.25, 0.25), ratio=(4.0, 4.0), generator=g()).diff(dim=2)[:, :, 1:-1]
    assert torch.allclose(sx, torch.full_like(sx, 0.5), atol=1e-4)  # 20 of 40 columns
    assert torch.allclose(sy, torch.full_like(sy, 0.5), atol=1e-4)  # 5 of 10 rows


def test_views_repeat_from_a_generator_and_leave_the_global_rng_alone():
    images = _digits()
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a1, b1 = two_views(images, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), state)
    a2, b2 = two_views(images, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a1, a2) and torch.equal(b1, b2)
    a3, _ = two_views(images, generator=torch.Generator().manual_seed(8))
    assert not torch.allclose(a1, a3)
    assert a1.shape == b1.shape == images.shape
    per_image = (a1 - b1).flatten(1).abs().mean(1)
    assert (per_image > 1e-3).all()  # the two views of every image differ
    torch.manual_seed(3)
    g1 = random_resized_crop(images)
    torch.manual_seed(3)
    assert torch.equal(g1, random_resized_crop(images))  # the global RNG when no generator is given


def test_a_view_of_a_digit_keeps_most_of_its_ink():
    """A view zooms in: the crop (area >= 0.6) is resized up, so a centred digit's ink grows by up to 1 / 0.6
    (a sampling map inverted by mistake would zoom out and lose ink)."""
    images = _digits(32)
    a, b = two_views(images, generator=torch.Generator().manual_seed(0))
    ink = images.flatten(1).sum(1)
    for view in (a, b):
        ratio = view.flatten(1).sum(1) / ink  # zooming by 1/sqrt(area) multiplies the ink by up to 1/0.6
        assert (ratio > 0.9).all() and (ratio < 1.0 / 0.6 + 0.05).all()


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        two_views(torch.zeros(28, 28))
    with pytest.raises(ValueError, match="crop scale"):
        random_resized_crop(torch.zeros(1, 1, 8, 8), scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="crop ratio"):
        random_resized_crop(torch.zeros(1, 1, 8, 8), ratio=(0.0, 1.0))
