"""Meta-learning (seed post 8): episodic few-shot learning with Prototypical Networks (Snell et al. 2017,
arXiv 1703.05175), MAML (Finn et al. 2017, arXiv 1703.03400; first-order and Meta-SGD options) and the
pretrain-then-adapt transfer baseline (Chen et al. 2019's Baseline++, arXiv 1904.04232), on the offline glyph set
(`paperzoo.data.glyphs`) or a real Omniglot folder."""

from paperzoo.data.episodes import EpisodeDataset, EpisodeSampler, as_float, check_disjoint
from paperzoo.data.glyphs import CharacterSet, GlyphConfig, glyph_set
from paperzoo.data.omniglot import omniglot
from paperzoo.metalearning.evaluate import (cosine_head_logits, episode_accuracies, feature_accuracies, mean_ci95,
                                            nearest_neighbour_logits)
from paperzoo.metalearning.maml import MAML
from paperzoo.metalearning.methods import (FewShotData, MamlConfig, MamlMethod, ProtoNetConfig, ProtoNetMethod,
                                           TransferConfig, TransferMethod)
from paperzoo.metalearning.networks import Conv4, ConvClassifier, CosineHead, EpisodeBatchNorm
from paperzoo.metalearning.protonet import ProtoNet, protonet_logits, prototypes

__all__ = [
    "MAML",
    "CharacterSet",
    "Conv4",
    "ConvClassifier",
    "CosineHead",
    "EpisodeBatchNorm",
    "EpisodeDataset",
    "EpisodeSampler",
    "FewShotData",
    "GlyphConfig",
    "MamlConfig",
    "MamlMethod",
    "ProtoNet",
    "ProtoNetConfig",
    "ProtoNetMethod",
    "TransferConfig",
    "TransferMethod",
    "as_float",
    "check_disjoint",
    "cosine_head_logits",
    "episode_accuracies",
    "feature_accuracies",
    "glyph_set",
    "mean_ci95",
    "nearest_neighbour_logits",
    "omniglot",
    "protonet_logits",
    "prototypes",
]
