"""The nets of SqueezeTime's speed table at their published widths and inputs, with the table's numbers.

Zhai et al., "No Time to Waste: Squeeze Time into Channel for Mobile Video Understanding", arXiv 2405.08344,
Table 1: CPU latency (batch 1) and GPU throughput (clips/s at the largest batch) of mobile video nets on Kinetics-400,
"tested on an Intel(R) Xeon(R) Gold 6278C@2.60GHz CPU (batch size of 1) and an NVIDIA Tesla V100 GPU (using
maximum batch size)". paperzoo times SqueezeTime against two nets of that table, a 2D net with temporal shifts and
a mobile 3D net, built from their published definitions without weights:

  TSM-R18   Lin et al., arXiv 1811.08383: ResNet-18 with residual temporal shifts (1/8 + 1/8 of the channels) on
            8 frames (`baselines.FrameResNet2d`) at 224x224, the crop of the SqueezeTime authors' TSM-R18 config
            (their table's 19.0 GFLOPs are our count at 256x256; 11.2M parameters is the backbone without the
            classifier).
  X3D-XS    Feichtenhofer, arXiv 2004.04730 (`x3d.X3D`) on 4 frames at 182x182, the crop of the authors' X3D config
            (4 frames 12 apart) and PyTorchVideo's inference crop (the PySlowFast model zoo's 0.60 GFLOPs are our
            count at the 160x160 training crop; the table's 0.9 is PyTorchVideo's 0.91, which our multiply-add count
            reaches at neither crop).
  SqueezeTime  the K400 net, 16x224x224 (5.5 GFLOPs).

The inputs are those of the configs the SqueezeTime authors released beside their code (configs/recognition/tsm,
configs/recognition/x3d, configs/recognition/SqueezeTime).

Each entry gives the clip shape to time and the table's parameters, GFLOPs, CPU latency and GPU throughput.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from paperzoo.squeezetime.x3d import X3D
from paperzoo.squeezetime.zoo import build_video_model

PAPER_HARDWARE = ("an Intel Xeon Gold 6278C @ 2.60 GHz CPU for latency (batch 1) and an NVIDIA Tesla V100 GPU for "
                  "throughput (the largest batch that fits)")
CLASSES = 400


@dataclass(frozen=True)
class PublishedNet:
    """One row of the paper's Table 1: which net, the clip it runs on, and what the table reports."""

    label: str
    model: str  # "x3d" (`x3d.X3D`) or a `zoo.build_video_model` name at its published width
    frames: int
    size: int  # the timed input's height and width
    paper_params_M: float
    paper_gflops: float
    paper_cpu_ms: float  # Table 1, LAT(CPU), batch 1
    paper_gpu_clips_per_s: float  # Table 1, Tput(GPU)

    def shape(self, batch: int = 1, size: int | None = None) -> tuple[int, int, int, int, int]:
        side = size or self.size
        return (batch, 3, self.frames, side, side)  # (B, C, T, H, W)


PUBLISHED = {
    "squeezetime": PublishedNet("SqueezeTime", "squeezetime", 16, 224, 28.7, 5.5, 123, 903),
    "tsm_r18": PublishedNet("TSM-R18", "tsm", 8, 224, 11.2, 19.0, 186, 429),
    "x3d_xs": PublishedNet("X3D-XS", "x3d", 4, 182, 3.80, 0.9, 219, 441),
}
"""SqueezeTime and the compared nets, by key (Table 1 of arXiv 2405.08344)."""
COMPARED_NETS = ("tsm_r18", "x3d_xs")


def build_published(name: str, size: int | None = None) -> nn.Module:
    """The net `name` of `PUBLISHED` at its published width with a Kinetics-400 head; `size` (default: the timed
    input's) only sizes SqueezeTime's position encoding: the others take any height and width."""
    net = PUBLISHED[name]
    if net.model == "x3d":
        return X3D(CLASSES, num_frames=net.frames)
    return build_video_model(net.model, CLASSES, net.frames, size or net.size)
