"""Gradient-Blending for multi-modal training (Wang, Tran, Feiszli, "What Makes Training Multi-Modal
Classification Networks Hard?", CVPR 2020, arXiv 1905.12681): the Overfitting-to-Generalization Ratio, the
blending weights, a late/mid-fusion network with per-modality heads, offline and online G-Blend, OGM-GE as a
later baseline, and AV-digits, an offline AV-MNIST-style dataset."""

from paperzoo.gblend.data import AVDigits, AVDigitsConfig, av_digits
from paperzoo.gblend.loss import blended_loss, head_losses
from paperzoo.gblend.method import MultiModalConfig, MultiModalMethod, fit, offline_weights, short_run_weights
from paperzoo.gblend.model import FUSED, MultiModalNet
from paperzoo.gblend.ogm import GradientModulator, ogm_coefficients
from paperzoo.gblend.ogr import OGRWindow, blend_weights, ogr_curve, ogr_window

__all__ = [
    "AVDigits",
    "AVDigitsConfig",
    "FUSED",
    "GradientModulator",
    "MultiModalConfig",
    "MultiModalMethod",
    "MultiModalNet",
    "OGRWindow",
    "av_digits",
    "blend_weights",
    "blended_loss",
    "fit",
    "head_losses",
    "offline_weights",
    "ogm_coefficients",
    "ogr_curve",
    "ogr_window",
    "short_run_weights",
]
