"""Capsule networks with dynamic routing (Sabour, Frosst & Hinton, NeurIPS 2017, arXiv 1710.09829)."""

from paperzoo.capsnet.baseline import BaselineCNN, BaselineConfig
from paperzoo.capsnet.capsules import Decoder, DigitCaps, PrimaryCaps, dynamic_routing, margin_loss, squash
from paperzoo.capsnet.data import multimnist
from paperzoo.capsnet.model import CapsNet, CapsNetConfig, capsnet_loss, parameter_count
from paperzoo.capsnet.training import (BaselineMethod, BaselineTrainConfig, CapsNetMethod, CapsNetTrainConfig,
                                       paper_schedule)
from paperzoo.data.transforms import random_affine

__all__ = [
    "BaselineCNN",
    "BaselineConfig",
    "BaselineMethod",
    "BaselineTrainConfig",
    "CapsNet",
    "CapsNetConfig",
    "CapsNetMethod",
    "CapsNetTrainConfig",
    "Decoder",
    "DigitCaps",
    "PrimaryCaps",
    "capsnet_loss",
    "dynamic_routing",
    "margin_loss",
    "multimnist",
    "paper_schedule",
    "parameter_count",
    "random_affine",
    "squash",
]
