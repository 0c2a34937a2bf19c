import dataclasses

import pytest
import torch
from torch import nn

from paperzoo.data.glyphs import CharacterSet
from paperzoo.multiview_ssl.study import (GlyphSSLConfig, _pair_batch, add_corner_marker, class_table, evaluate,
                                          evaluation_steps, held_out_split, marker_corners, pixel_marker_accuracy,
                                          train_glyph_ssl, train_glyph_supervised)


def _toy_chars(classes: int = 12, renderings: int = 4) -> CharacterSet:
    """Each class is one random binary pattern away from the corners, rendered `renderings` times with a little pixel noise."""
    g = torch.Generator().manual_seed(0)
    patterns = torch.zeros(classes, 1, 28, 28)
    patterns[..., 5:23, 5:23] = (torch.rand(classes, 1, 18, 18, generator=g) > 0.7).float()  # corners stay blank
    images = patterns.repeat_interleave(renderings, 0)  # (C * R, 1, 28, 28)
    images = (images + 0.1 * torch.rand(images.shape, generator=g)).clamp(max=1.0)
    labels = torch.arange(classes).repeat_interleave(renderings)
    third = classes // 3
    return CharacterSet(name="toy", images=(images * 255).to(torch.uint8), labels=labels,
                        class_names=tuple(str(c) for c in range(classes)),
                        class_alphabet=torch.arange(classes) // third, alphabets=("a", "b", "c"),
                        splits={"train": list(range(third)), "val": list(range(third, 2 * third)),
                                "test": list(range(2 * third, classes))})


def test_corner_marker_inks_exactly_the_chosen_corner():
    images = torch.zeros(4, 1, 10, 10)
    marked = add_corner_marker(images, torch.tensor([0, 1, 2, 3]), size=3)
    assert marked.sum().item() == 4 * 9  # one 3x3 square per image
    assert marked[0, 0, :3, :3].all() and marked[1, 0, :3, 7:].all()
    assert marked[2, 0, 7:, :3].all() and marked[3, 0, 7:, 7:].all()
    assert images.sum() == 0  # the input is not modified
    with pytest.raises(ValueError, match="integers in 0..3"):
        add_corner_marker(images, torch.tensor([0, 1, 2, 4]))


def test_held_out_split_halves_every_held_out_class_and_skips_training_classes():
    chars = _toy_chars()
    memory, test = held_out_split(chars)
    assert set(memory.tolist()).isdisjoint(test.tolist())
    held_out = set(chars.splits["val"] + chars.splits["test"])
    assert set(chars.labels[memory].tolist()) == held_out == set(chars.labels[test].tolist())
    assert len(memory) == len(test) == 2 * len(held_out)


def test_evaluate_gives_known_answers_for_a_pixel_encoder():
    # pixels identify each class exactly (1-NN = 1), and with markers the corner is linearly readable from pixels
    chars = _toy_chars(renderings=16)  # 64 memory images: every corner is seen in the probe's training half
    scores = evaluate(nn.Flatten(), chars, GlyphSSLConfig(nuisance=True, probe_classes=8))
    assert scores["knn1"] == 1.0 and scores["linear"] == 1.0
    assert scores["nuisance_linear"] > 0.9
    assert scores["held_out_classes"] == 8


def test_training_lowers_the_contrastive_loss():
    chars = _toy_chars(classes=30)
    r = train_glyph_ssl(chars, GlyphSSLConfig(steps=60, batch_size=10, hidden=64, lambda_fp=0.05, lambda_ip=1.0))
    curve = r["cl_loss_curve"]
    assert len(curve) == 60
    assert sum(curve[-10:]) / 10 < 0.7 * sum(curve[:10]) / 10


def _chars_with_counts(counts: list[int]) -> CharacterSet:
    """Class c has counts[c] renderings (all blank images); the first half of the classes are training classes."""
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    half = len(counts) // 2
    return CharacterSet(name="counts", images=torch.zeros(len(labels), 1, 28, 28, dtype=torch.uint8), labels=labels,
                        class_names=tuple(map(str, range(len(counts)))), class_alphabet=torch.zeros(len(counts)),
                        alphabets=("a",), splits={"train": list(range(half)), "val": list(range(half, len(counts))),
                                                  "test": []})


def test_pairs_are_two_different_renderings_of_distinct_training_classes_whatever_their_counts():
    chars = _chars_with_counts([2, 3, 7, 2, 5, 4, 4, 4, 4, 4])  # training classes 0..4, unequal counts
    table = class_table(chars)
    assert table.counts.tolist() == [2, 3, 7, 2, 5]
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(200):
        classes, ix, isx = _pair_batch(table, 4, g)
        assert len(set(classes.tolist())) == 4  # distinct classes
        assert (ix != isx).all()  # two different renderings ...
        assert (chars.labels[ix] == classes).all() and (chars.labels[isx] == classes).all()  # ... of that class
        seen |= set(ix.tolist()) | set(isx.tolist())
    assert seen == set(range(2 + 3 + 7 + 2 + 5))  # every training rendering is drawn, none from held-out classes
    with pytest.raises(ValueError, match="at least 2 renderings"):
        class_table(_chars_with_counts([2, 1, 2, 2]))


def test_supervised_reference_learns_the_training_classes_and_reports_its_plateau_check():
    chars = _toy_chars(classes=30)
    r = train_glyph_supervised(chars, GlyphSSLConfig(steps=40, batch_size=10, hidden=64, nuisance=True,
                                                     probe_classes=0))
    assert len(r["loss_curve"]) == 40
    assert sum(r["loss_curve"][-5:]) / 5 < 0.5 * sum(r["loss_curve"][:5]) / 5
    # the 1-NN at every tenth of the second half of training, the last one the final score
    assert r["knn1_steps"] == [20, 24, 28, 32, 36, 40] and len(r["knn1_curve"]) == 6 and r["knn1_curve"][-1] == r["knn1"]
    assert 0 <= r["nuisance_linear"] <= 1 and "linear" not in r  # no class probe with probe_classes=0


def test_marker_from_raw_pixels_is_read_when_visible_and_at_chance_when_it_cannot_show():
    chars = _toy_chars(renderings=16)  # blank corners: the marker is the only ink there
    inked = dataclasses.replace(chars, images=torch.full_like(chars.images, 255))  # a marker on full ink adds nothing
    cfg = GlyphSSLConfig(nuisance=True)
    visible = [pixel_marker_accuracy(chars, dataclasses.replace(cfg, seed=s)) for s in range(3)]
    hidden = [pixel_marker_accuracy(inked, dataclasses.replace(cfg, seed=s)) for s in range(3)]
    assert min(visible) > 0.95 and max(hidden) < 0.45
    with pytest.raises(ValueError, match="nuisance=True"):
        pixel_marker_accuracy(chars, GlyphSSLConfig())


@pytest.mark.parametrize("steps, expected", [(450, [225, 270, 315, 360, 405, 450]), (7, [4, 5, 6, 7])])
def test_evaluations_fall_at_every_tenth_of_the_second_half(steps, expected):
    assert evaluation_steps(steps) == expected  # ceil(steps x k / 10), k = 5..10, repeats merged


@pytest.mark.parametrize("shared", [0.0, 0.5, 1.0])
def test_marker_corners_agree_as_often_as_the_sharing_says(shared):
    corners_x, corners_s = marker_corners(40_000, shared, torch.Generator().manual_seed(0))
    agreement = (corners_x == corners_s).float().mean().item()
    assert agreement == pytest.approx(shared + (1 - shared) / 4, abs=0.01)  # a copy, or an independent draw's 1/4
    for corners in (corners_x, corners_s):  # each view's marker stays uniform over the four corners
        assert torch.bincount(corners, minlength=4).div(40_000).sub(0.25).abs().max() < 0.01
    with pytest.raises(ValueError, match="probability"):
        marker_corners(4, 1.5, torch.Generator())
