"""The held-out curve a plateau is read from: nearest-centroid accuracy on validation-alphabet episodes."""

import torch
from torch import nn

from paperzoo.data.episodes import EpisodeSampler, as_float
from paperzoo.data.glyphs import CharacterSet
from paperzoo.metalearning.evaluate import feature_accuracies
from paperzoo.metalearning.methods import val_centroid_accuracy
from paperzoo.metalearning.protonet import protonet_logits


def _chars(images: torch.Tensor, classes: int, per_class: int) -> CharacterSet:
    labels = torch.arange(classes).repeat_interleave(per_class)
    return CharacterSet("tiny", images, labels, tuple(f"c{i}" for i in range(classes)),
                        torch.tensor([0, 0, 0, 1, 1, 1, 1, 1]), ("a", "b"),
                        {"train": [0, 1, 2], "val": [3, 4, 5, 6, 7], "test": []})


def test_separable_classes_score_one_and_a_constant_encoder_scores_chance_exactly():
    per = 4
    images = (torch.arange(8).repeat_interleave(per) * 30).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 2, 2)
    chars = _chars(images.contiguous(), 8, per)
    sampler = EpisodeSampler(chars.labels, chars.split("val"), 5, 1, 2, seed=3)
    identity = nn.Sequential(nn.Flatten(), nn.Linear(4, 4))
    with torch.no_grad():
        identity[1].weight.copy_(torch.eye(4))
        identity[1].bias.zero_()
    assert val_centroid_accuracy(identity, chars, sampler, 7) == 1.0  # each class one distinct image
    # every feature equal: every distance ties, argmax takes class 0 of each episode, 1 query class in 5
    constant = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    nn.init.zeros_(constant[1].weight)
    assert abs(val_centroid_accuracy(constant, chars, sampler, 7) - 0.2) < 1e-6  # float32 per-episode accuracies


def test_equals_centroid_accuracy_on_every_image_embedded_and_restores_train_mode():
    torch.manual_seed(0)
    per = 5
    chars = _chars(torch.randint(0, 256, (8 * per, 1, 3, 3), dtype=torch.uint8), 8, per)
    sampler = EpisodeSampler(chars.labels, chars.split("val"), 5, 2, 3, seed=1)
    encoder = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(9), nn.Linear(9, 4)).train()
    got = val_centroid_accuracy(encoder, chars, sampler, 9)
    assert encoder.training  # the mode the training loop left it in
    with torch.no_grad():
        features = encoder.eval()(as_float(chars.images))  # (N, 4): every image, running BN statistics
    want = feature_accuracies(protonet_logits, features, sampler, 9).double().mean().item()
    assert got == want and 0.0 <= got <= 1.0
