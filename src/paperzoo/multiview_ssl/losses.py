"""Multi-view SSL objectives of Tsai, Wu, Salakhutdinov, Morency, "Self-supervised Learning from a
Multi-view Perspective" (ICLR 2021, arXiv:2006.05576).

Contrastive (Eq. 1): InfoNCE in the SimCLR form and a Jensen-Shannon bound; forward-predictive (Eq. 2):
reconstruct the signal view S from Z_X; inverse-predictive (Eq. 3): predict Z_X from Z_S; composite (Eq. 4):
L_CL + lambda_FP L_FP + lambda_IP L_IP.
"""
import torch
import torch.nn.functional as F


def _check_pair(z_x: torch.Tensor, z_s: torch.Tensor) -> None:
    if z_x.dim() != 2 or z_x.shape != z_s.shape:
        raise ValueError(f"expected two (B, D) embeddings of equal shape, got {tuple(z_x.shape)} and {tuple(z_s.shape)}")
    if z_x.shape[0] < 2:
        raise ValueError("contrastive losses need a batch of at least 2 pairs")


def _pair_logits(z_x: torch.Tensor, z_s: torch.Tensor, temperature: float,
                 anchors: range | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarities of the anchor pairs' 2A views (default: all B pairs) to all 2B views, each view's
    similarity to itself masked; returns (logits (2A, 2B), positive index (2A,))."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    b = z_x.shape[0]
    anchors = range(b) if anchors is None else anchors
    if anchors.step != 1 or not 0 <= anchors.start < anchors.stop <= b:
        raise ValueError(f"anchors must be a non-empty contiguous range inside [0, {b}), got {anchors}")
    z = F.normalize(torch.cat([z_x, z_s], dim=0), dim=1)  # (2B, D): views x_0..x_{B-1}, s_0..s_{B-1}
    pairs = torch.arange(anchors.start, anchors.stop, device=z.device)  # (A,)
    rows = torch.cat([pairs, pairs + b])  # (2A,): the anchors' x views, then their s views
    logits = z[rows] @ z.t() / temperature  # (2A, 2B)
    own = torch.zeros_like(logits, dtype=torch.bool)
    own[torch.arange(len(rows), device=z.device), rows] = True
    positives = torch.cat([pairs + b, pairs])  # (2A,): x_i's partner is s_i and vice versa
    return logits.masked_fill(own, float("-inf")), positives


def info_nce(z_x: torch.Tensor, z_s: torch.Tensor, temperature: float = 0.5,
             anchors: range | None = None) -> torch.Tensor:
    """SimCLR InfoNCE: each of the 2B views must pick its partner among the other 2B-1 views.

    `anchors` (a range of pair indices) averages over those pairs' 2A views only, still against all 2B views: a
    data-parallel rank's share of the global-batch loss (see `paperzoo.multiview_ssl.distributed`)."""
    _check_pair(z_x, z_s)
    logits, positives = _pair_logits(z_x, z_s, temperature, anchors)
    return F.cross_entropy(logits, positives)


def jsd_contrastive(z_x: torch.Tensor, z_s: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Jensen-Shannon bound (negated, as a loss): E_pos[softplus(-T)] + E_neg[softplus(T)]."""
    _check_pair(z_x, z_s)
    logits, positives = _pair_logits(z_x, z_s, temperature)
    n = logits.shape[0]
    pos_mask = torch.zeros_like(logits, dtype=torch.bool)
    pos_mask[torch.arange(n), positives] = True
    neg_mask = ~pos_mask & ~torch.eye(n, dtype=torch.bool, device=logits.device)
    return F.softplus(-logits[pos_mask]).mean() + F.softplus(logits[neg_mask]).mean()


def forward_predictive_loss(decoder: torch.nn.Module, z_x: torch.Tensor, s: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """Reconstruct the signal view s from Z_X; 'bce' for images in [0, 1] (decoder outputs logits), or 'mse'."""
    recon = decoder(z_x).reshape(s.shape)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(recon, s)
    if kind == "mse":
        return F.mse_loss(recon, s)
    raise ValueError(f"kind must be 'bce' or 'mse', got {kind!r}")


def inverse_predictive_loss(predictor: torch.nn.Module, z_x: torch.Tensor, z_s: torch.Tensor) -> torch.Tensor:
    """Predict Z_X from Z_S (mean squared error); gradients reach both encoders, as in the paper's code."""
    _check_pair(z_x, z_s)
    return F.mse_loss(predictor(z_s), z_x)


def composite_ssl_loss(l_cl: torch.Tensor, l_fp: torch.Tensor | None = None, l_ip: torch.Tensor | None = None,
                       lambda_fp: float = 0.0, lambda_ip: float = 0.0) -> torch.Tensor:
    """L = L_CL + lambda_FP L_FP + lambda_IP L_IP (Eq. 4); a term with nonzero weight must be given."""
    total = l_cl
    for name, term, weight in (("l_fp", l_fp, lambda_fp), ("l_ip", l_ip, lambda_ip)):
        if weight < 0:
            raise ValueError(f"lambda for {name} must be >= 0, got {weight}")
        if weight:
            if term is None:
                raise ValueError(f"{name} is required when its lambda is {weight}")
            total = total + weight * term
    return total
