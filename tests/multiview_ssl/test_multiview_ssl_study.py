import pytest
import torch
from torch import nn

from paperzoo.data.glyphs import CharacterSet
from paperzoo.multiview_ssl.study import GlyphSSLConfig, held_out_split, add_corner_marker, evaluate, train_glyph_ssl


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


def testheld_out_split_halves_every_held_out_class_and_skips_training_classes():
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
