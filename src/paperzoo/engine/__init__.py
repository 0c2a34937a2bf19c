"""The one training engine every paper runs on (single process, DDP under torchrun, DP)."""

from paperzoo.engine.callbacks import BestCheckpoint, EarlyStopping
from paperzoo.engine.checkpoint import load_checkpoint, save_checkpoint
from paperzoo.engine.distributed import DistEnv, dist_env, is_main, seed_everything
from paperzoo.engine.metrics import MetricWriter, WandbWriter
from paperzoo.engine.trainer import Method, StepOutput, TrainConfig, Trainer, TrainResult, TrainState

__all__ = [
    "BestCheckpoint",
    "DistEnv",
    "EarlyStopping",
    "Method",
    "MetricWriter",
    "StepOutput",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "Trainer",
    "WandbWriter",
    "dist_env",
    "is_main",
    "load_checkpoint",
    "save_checkpoint",
    "seed_everything",
]
