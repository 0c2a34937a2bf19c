"""SqueezeTime (Zhai et al. 2024, arXiv 2405.08344): time squeezed into channels for mobile video recognition,
its video baselines (R3D, R(2+1)D, TSN, TSM, X3D-XS; `PUBLISHED`: the nets of the paper's speed table), the loader of
official checkpoints, and the moving-digits temporal task."""

from paperzoo.squeezetime.baselines import FrameResNet2d, VideoResNet3d, build_baseline, temporal_shift
from paperzoo.squeezetime.model import (ChannelTimeConv, CTLBottleneck, InterTemporalInteraction, SqueezeTime,
                                        TemporalWeights, squeeze_time)
from paperzoo.squeezetime.official import from_official, load_squeezetime, read_checkpoint
from paperzoo.squeezetime.published import PUBLISHED, PublishedNet, build_published
from paperzoo.squeezetime.task import DIRECTIONS, MovingDigits, moving_digits, reverse_label
from paperzoo.squeezetime.x3d import X3D
from paperzoo.squeezetime.zoo import (MODEL_NAMES, build_video_model, model_cost,
                                    width_for_cost)

__all__ = [
    "CTLBottleneck",
    "ChannelTimeConv",
    "DIRECTIONS",
    "FrameResNet2d",
    "InterTemporalInteraction",
    "MODEL_NAMES",
    "MovingDigits",
    "PUBLISHED",
    "PublishedNet",
    "SqueezeTime",
    "TemporalWeights",
    "VideoResNet3d",
    "X3D",
    "build_baseline",
    "build_published",
    "build_video_model",
    "from_official",
    "load_squeezetime",
    "model_cost",
    "moving_digits",
    "read_checkpoint",
    "reverse_label",
    "squeeze_time",
    "temporal_shift",
    "width_for_cost",
]
