"""The Overfitting-to-Generalization Ratio and the Gradient-Blending weights.

Wang, Tran, Feiszli, "What Makes Training Multi-Modal Classification Networks Hard?", CVPR 2020, arXiv 1905.12681,
section 3.2-3.3. With L^T_N and L^V_N the train and held-out (validation) losses at checkpoint N, the held-out set
taken from the training data and standing in for the true loss L*:

  O_N  = L^V_N - L^T_N                      overfitting at N
  dG   = L^V_N - L^V_{N+n}                  generalization gained between N and N+n
  dO   = O_{N+n} - O_N                      overfitting gained between N and N+n
  OGR  = |dO / dG|

Gradient-Blending (section 3.3, the optimal blend and its estimate from dG and dO): the loss is sum_k w_k L_k over the heads k (each unimodal
head and the fused head), with w*_k proportional to dG_k / dO_k^2, each head's dG/dO measured on its own loss.

Our rules, where the paper leaves them open:
  normalisation  the weights sum to 1 (the paper divides by a constant Z; any common factor only rescales the
                 learning rate of the blended loss);
  dG_k <= 0      the head did not generalise better over the window: its weight is 0;
  |dO_k| < eps   dO_k^2 is floored at eps^2 (eps = `min_overfit`, default 1e-3 nats), so a head that did not
                 overfit gets a large but finite weight; dO_k < 0 (less overfit than before) counts as |dO_k|;
  all dG <= 0    no head generalises: the weights fall back to uniform 1/K.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence


@dataclass(frozen=True)
class OGRWindow:
    """The quantities of one window N -> N+n of one head."""

    overfit_start: float  # O_N
    overfit_end: float  # O_{N+n}
    dG: float
    dO: float

    @property
    def ogr(self) -> float:
        """|dO / dG|; inf when dG = 0 (no generalization gained) and dO != 0, 0 when both are 0."""
        if self.dG == 0:
            return 0.0 if self.dO == 0 else math.inf
        return abs(self.dO / self.dG)


def ogr_window(train_start: float, val_start: float, train_end: float, val_end: float) -> OGRWindow:
    """O, dG, dO and OGR between checkpoints N (start) and N+n (end) from the train and held-out losses."""
    for name, value in (("train_start", train_start), ("val_start", val_start), ("train_end", train_end),
                        ("val_end", val_end)):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite loss, got {value}")
    o_start, o_end = val_start - train_start, val_end - train_end
    return OGRWindow(o_start, o_end, dG=val_start - val_end, dO=o_end - o_start)


def ogr_curve(train_losses: Sequence[float], val_losses: Sequence[float], n: int = 1) -> list[OGRWindow]:
    """The windows (0 -> n), (1 -> n+1), ... of per-checkpoint train and held-out losses."""
    if len(train_losses) != len(val_losses):
        raise ValueError(f"need as many train as held-out losses, got {len(train_losses)} and {len(val_losses)}")
    if n < 1:
        raise ValueError(f"window n must be >= 1, got {n}")
    return [ogr_window(train_losses[i], val_losses[i], train_losses[i + n], val_losses[i + n])
            for i in range(len(train_losses) - n)]


def blend_weights(windows: Mapping[str, OGRWindow], min_overfit: float = 1e-3) -> dict[str, float]:
    """{head: w_k} with w_k proportional to max(dG_k, 0) / max(|dO_k|, min_overfit)^2, summing to 1."""
    if not windows:
        raise ValueError("blend_weights needs at least one head")
    if min_overfit <= 0:
        raise ValueError(f"min_overfit must be > 0, got {min_overfit}")
    raw = {k: max(w.dG, 0.0) / max(abs(w.dO), min_overfit) ** 2 for k, w in windows.items()}
    total = sum(raw.values())
    if total == 0:
        return {k: 1.0 / len(raw) for k in raw}
    return {k: v / total for k, v in raw.items()}
