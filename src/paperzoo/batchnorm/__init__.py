"""Batch normalization from the equations (Ioffe & Szegedy 2015, arXiv 1502.03167), drop-in for torch's."""

from paperzoo.batchnorm.functional import BatchNormFunction, batch_norm
from paperzoo.batchnorm.modules import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from paperzoo.batchnorm.study import (Curve, Tuned, gradient_change, gradient_noise, mlp, optimiser_study,
                                      sampling_noise_ratio, sgd_curve, small_cnn, train_sgd, tune_learning_rate)

__all__ = [
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNormFunction",
    "Curve",
    "GroupNorm",
    "Tuned",
    "LayerNorm",
    "batch_norm",
    "gradient_change",
    "gradient_noise",
    "mlp",
    "optimiser_study",
    "sampling_noise_ratio",
    "sgd_curve",
    "small_cnn",
    "train_sgd",
    "tune_learning_rate",
]
