"""Batch normalization as functions (Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training by
Reducing Internal Covariate Shift", ICML 2015, arXiv 1502.03167).

Algorithm 1: per channel, mu_B = mean(x), sigma2_B = mean((x - mu_B)^2) (biased), x_hat = (x - mu_B) /
sqrt(sigma2_B + eps), y = gamma x_hat + beta. Running statistics follow PyTorch's conventions: running =
(1 - momentum) running + momentum batch, with the *unbiased* batch variance (Algorithm 2, step 10 uses m/(m-1)).

`BatchNormFunction` is the same training-mode transform with the closed-form gradient of Sec. 3 written by hand:
  dL/dx = inv_std / m * (m g_hat - sum(g_hat) - x_hat sum(g_hat x_hat)),  g_hat = dL/dy * gamma
  dL/dgamma = sum(dL/dy x_hat),  dL/dbeta = sum(dL/dy)

As in torch: gamma and beta are optional independently (`bias=False`), an empty batch gives an empty output in the
input's memory format (channels-last stays channels-last) and leaves the running statistics alone, a reduced-precision
input (bf16, fp16) with fp32 parameters or buffers is normalised in fp32 and returned in the input's dtype, and eps
must be positive when normalising with batch statistics (non-negative with running ones): sqrt(sigma2_B + eps) with
eps <= 0 divides by zero on a constant channel.
"""

from __future__ import annotations

import math

import torch


def _as_ncl(x: torch.Tensor) -> torch.Tensor:
    """(N, C), (N, C, L) or (N, C, H, W) -> (N, C, L) view, the reduction axes being 0 and 2 (N or L may be 0)."""
    return x.reshape(x.shape[0], x.shape[1], math.prod(x.shape[2:]))


def _per_channel(t: torch.Tensor) -> torch.Tensor:
    return t[None, :, None]  # (1, C, 1)


def _scale_shift(x_hat: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None) -> torch.Tensor:
    """gamma x_hat + beta on an (N, C, L) view, each of gamma and beta optional."""
    y = x_hat
    if weight is not None:
        y = y * _per_channel(weight)
    if bias is not None:
        y = y + _per_channel(bias)
    return y


class BatchNormFunction(torch.autograd.Function):
    """Training-mode batch normalisation with a hand-written backward. Returns (y, batch mean, biased var)."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps: float):
        flat = _as_ncl(x)  # (N, C, L)
        mean = flat.mean((0, 2))
        var = flat.var((0, 2), unbiased=False)
        inv_std = torch.rsqrt(var + eps)
        x_hat = (flat - _per_channel(mean)) * _per_channel(inv_std)  # (N, C, L)
        ctx.save_for_backward(x_hat, weight, inv_std)
        ctx.mark_non_differentiable(mean, var)
        return _scale_shift(x_hat, weight, bias).reshape(x.shape), mean, var

    @staticmethod
    def backward(ctx, grad_y, _grad_mean, _grad_var):
        x_hat, weight, inv_std = ctx.saved_tensors
        g = _as_ncl(grad_y)  # (N, C, L)
        m = g.shape[0] * g.shape[2]
        grad_weight = (g * x_hat).sum((0, 2)) if ctx.needs_input_grad[1] else None
        grad_bias = g.sum((0, 2)) if ctx.needs_input_grad[2] else None
        if weight is not None:
            g = g * _per_channel(weight)
        grad_x = None
        if ctx.needs_input_grad[0]:
            sum_g = _per_channel(g.sum((0, 2)))
            sum_gx = _per_channel((g * x_hat).sum((0, 2)))
            grad_x = (_per_channel(inv_std) / m * (m * g - sum_g - x_hat * sum_gx)).reshape(grad_y.shape)
        return grad_x, grad_weight, grad_bias, None


def check_batch(x: torch.Tensor, num_features: int | None = None) -> None:
    """Clear errors for input batch norm cannot use: too few dimensions, wrong channels, one value per channel."""
    if x.dim() < 2:
        raise ValueError(f"batch norm expects (batch, channels, ...) input, got shape {tuple(x.shape)}")
    if num_features is not None and x.shape[1] != num_features:
        raise ValueError(f"expected {num_features} channels (dim 1), got {x.shape[1]} in input of shape "
                         f"{tuple(x.shape)}")


def check_eps(eps: float, training: bool) -> None:
    """torch's rule and messages: eps > 0 with batch statistics, eps >= 0 with running statistics."""
    if training and eps <= 0.0:
        raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    if eps < 0.0:
        raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")


def batch_norm(x: torch.Tensor, running_mean: torch.Tensor | None, running_var: torch.Tensor | None,
               weight: torch.Tensor | None = None, bias: torch.Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5, manual_backward: bool = False) -> torch.Tensor:
    """Functional batch norm with torch.nn.functional.batch_norm's semantics.

    training=True normalises with the batch statistics and, when running buffers are given, updates them in
    place (unbiased variance); training=False normalises with the running statistics.
    """
    check_batch(x)
    check_eps(eps, training)
    stored = next((t.dtype for t in (weight, bias, running_mean) if t is not None), x.dtype)
    compute = torch.promote_types(x.dtype, stored)  # bf16 input, fp32 parameters -> fp32 (no-op for fp32)
    if training:
        y = _train(x.to(compute), running_mean, running_var, weight, bias, momentum, eps, manual_backward)
    else:
        y = _eval(x.to(compute), running_mean, running_var, weight, bias, eps)
    if x.numel() == 0:  # the (N, C, L) view lost the layout of an empty input: give it back, as torch does
        y = y.as_strided(x.shape, x.stride())
    return y.to(x.dtype)


def _eval(x: torch.Tensor, running_mean: torch.Tensor | None, running_var: torch.Tensor | None,
          weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float) -> torch.Tensor:
    if running_mean is None or running_var is None:
        raise ValueError("eval-mode batch norm needs running_mean and running_var")
    flat = _as_ncl(x)  # (N, C, L)
    x_hat = (flat - _per_channel(running_mean)) * _per_channel(torch.rsqrt(running_var + eps))
    return _scale_shift(x_hat, weight, bias).reshape(x.shape)


def _train(x: torch.Tensor, running_mean: torch.Tensor | None, running_var: torch.Tensor | None,
           weight: torch.Tensor | None, bias: torch.Tensor | None, momentum: float, eps: float,
           manual_backward: bool) -> torch.Tensor:
    values_per_channel = x.numel() // x.shape[1]
    if values_per_channel == 0:  # an empty batch: an empty output, no statistics to estimate or update
        return _scale_shift(_as_ncl(x), weight, bias).reshape(x.shape)
    if values_per_channel == 1:
        raise ValueError(f"batch norm in training mode needs more than one value per channel to estimate a "
                         f"variance, got input of shape {tuple(x.shape)}; use a batch of 2 or more, or call "
                         "model.eval() to use the running statistics")
    if manual_backward:
        y, mean, var = BatchNormFunction.apply(x, weight, bias, eps)
    else:
        flat = _as_ncl(x)  # (N, C, L)
        mean = flat.mean((0, 2))
        var = flat.var((0, 2), unbiased=False)
        y = _scale_shift((flat - _per_channel(mean)) * _per_channel(torch.rsqrt(var + eps)), weight, bias)
        y = y.reshape(x.shape)
    if running_mean is not None and running_var is not None:
        with torch.no_grad():
            unbiased = var.detach() * (values_per_channel / (values_per_channel - 1))
            running_mean.mul_(1 - momentum).add_(momentum * mean.detach())
            running_var.mul_(1 - momentum).add_(momentum * unbiased)
    return y
