"""A tiny method for engine tests: noisy linear regression (the noise uses torch's RNG, so an exact resume must
restore RNG state, data order, optimizer and scheduler)."""

import torch
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo.engine import StepOutput


class NoisyRegression:
    def __init__(self, n: int = 96, dim: int = 5, nan_at_call: int | None = None):
        g = torch.Generator().manual_seed(123)
        self.x = torch.randn(n, dim, generator=g)
        self.y = self.x @ torch.arange(1.0, dim + 1) + 0.5
        self.nan_at_call, self.calls = nan_at_call, 0

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(self.x.shape[1], 16), nn.Tanh(), nn.Linear(16, 1))

    def train_dataset(self):
        return TensorDataset(self.x, self.y)

    def training_step(self, model, batch) -> StepOutput:
        self.calls += 1
        x, y = batch
        x = x + 0.05 * torch.randn_like(x)  # augmentation from the global RNG
        loss = ((model(x).squeeze(1) - y) ** 2).mean()
        if self.calls == self.nan_at_call:
            loss = loss * float("nan")
        return StepOutput(loss, {"abs_err": (model(x).squeeze(1) - y).abs().mean()})

    def evaluate(self, model, device) -> dict:
        return {"mse": ((model(self.x.to(device)).squeeze(1) - self.y.to(device)) ** 2).mean().item()}
