"""The nets of SqueezeTime's speed table at their published widths and inputs, with the table's numbers.

Zhai et al., "No Time to Waste: Squeeze Time into Channel for Mobile Video Understanding", arXiv 2405.08344,
Table 1: CPU latency (batch 1) and GPU throughput (clips/s at the largest batch) of mobile video nets on Kinetics-400,
"tested on an Intel(R) Xeon(R) Gold 6278C@2.60GHz CPU (batch size of 1) and an NVIDIA Tesla V100 GPU (using
maximum batch size)". paperzoo times SqueezeTime against the two lightest nets of that table that are built from
their published definitions without weights:

  TSM-R18   Lin et al., arXiv 1811.08383: ResNet-18 with residual temporal shifts (1/8 + 1/8 of the channels) on
            8 frames (`baselines.FrameResNet2d`); the table's 19.0 GFLOPs are its count at 256x256 (mmaction's test
            crops), 11.2M parameters its backbone without the classifier.
  X3D-XS    Feichtenhofer, arXiv 2004.04730 (`x3d.X3D`) on 4 frames at 182x182, the published inference crop (the
            X3D paper's 0.60 GFLOPs are at its 160x160 training crop; the table's 0.9 is the PyTorchVideo model zoo's
            0.91, which counts more than multiply-adds).
  SqueezeTime  the K400 net, 16x224x224 (5.5 GFLOPs).

Each entry gives the clip shape to time and the table's parameters, GFLOPs, CPU latency and GPU throughput.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from paperzoo.squeezetime.x3d import X3D
from paperzoo.squeezetime.zoo import build_video_model

PAPER_HARDWARE = ("an Intel Xeon Gold 6278C @ 2.60 GHz CPU for latency (batch 1) and an NVIDIA Tesla V100 GPU for "
                  "throughput (the largest batch that fits)")
CLASSES = 400


@dataclass(frozen=True)
class PublishedNet:
    """One row of the paper's Table 1: how to build the net, the clip it runs on, and what the table reports."""

    label: str
    build: Callable[[int], nn.Module]  # image size -> the net (Kinetics-400 head)
    frames: int
    size: int  # the published input's height and width
    paper_params_M: float
    paper_gflops: float
    paper_cpu_ms: float  # Table 1, LAT(CPU), batch 1
    paper_gpu_clips_per_s: float  # Table 1, Tput(GPU)

    def shape(self, batch: int = 1, size: int | None = None) -> tuple[int, int, int, int, int]:
        side = size or self.size
        return (batch, 3, self.frames, side, side)  # (B, C, T, H, W)


PUBLISHED = {
    "squeezetime": PublishedNet("SqueezeTime", lambda size: build_video_model("squeezetime", CLASSES, 16, size),
                                16, 224, 28.7, 5.5, 123, 903),
    "tsm_r18": PublishedNet("TSM-R18", lambda size: build_video_model("tsm", CLASSES, 8, size), 8, 256, 11.2, 19.0,
                            186, 429),
    "x3d_xs": PublishedNet("X3D-XS", lambda size: X3D(CLASSES, num_frames=4), 4, 182, 3.80, 0.9, 219, 441),
}
"""SqueezeTime and the compared nets, by key (Table 1 of arXiv 2405.08344)."""
COMPARED_NETS = ("tsm_r18", "x3d_xs")
