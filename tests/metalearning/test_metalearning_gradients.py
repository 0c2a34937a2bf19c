"""MAML's meta-gradient on a tiny Conv-4 with episode batch norm (support statistics), against references written
here one task at a time with torch.autograd: second order differentiates through the inner step (create_graph),
first order is the query-loss gradient at the adapted weights, taken as independent leaves (Finn et al. 2017,
arXiv 1703.03400, Sec. 5.2)."""

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from paperzoo.metalearning import MAML, ConvClassifier


def _tasks():
    g = torch.Generator().manual_seed(0)
    sx = torch.rand(2, 5, 1, 28, 28, generator=g, dtype=torch.float64)  # (T, S, C, H, W)
    qx = torch.rand(2, 5, 1, 28, 28, generator=g, dtype=torch.float64)
    labels = torch.arange(5).repeat(2, 1)  # (T, 5)
    return sx, labels, qx, labels


def _reference(learner, inner_lr, first_order, sx, sy, qx, qy) -> list[torch.Tensor]:
    """The meta-gradient summed over tasks / T, one task at a time."""
    names = [n for n, _ in learner.named_parameters()]
    total = [torch.zeros_like(p) for p in learner.parameters()]
    for t in range(sx.shape[0]):
        params = dict(learner.named_parameters())
        inner = F.cross_entropy(functional_call(learner, params, (sx[t],)), sy[t])
        grads = torch.autograd.grad(inner, list(params.values()), create_graph=not first_order)
        fast = {n: params[n] - inner_lr * g for n, g in zip(names, grads)}
        if first_order:  # the adapted weights as new leaves: the gradient there, no path back through the inner step
            fast = {n: v.detach().requires_grad_() for n, v in fast.items()}
        s = sx.shape[1]
        logits = functional_call(learner, fast, (torch.cat([sx[t], qx[t]]),), {"n_stats": s})[s:]  # (Q, N)
        outer = F.cross_entropy(logits, qy[t]) / sx.shape[0]
        wrt = [fast[n] for n in names] if first_order else list(params.values())
        for acc, g in zip(total, torch.autograd.grad(outer, wrt)):
            acc += g
    return total


@pytest.mark.parametrize("first_order", [False, True])
def test_meta_gradient_of_conv4_with_support_bn_matches_reference(first_order):
    torch.manual_seed(0)
    learner = ConvClassifier(5, channels=3, episodic=True).double()
    maml = MAML(learner, inner_lr=0.4, first_order=first_order)
    sx, sy, qx, qy = _tasks()
    F.cross_entropy(maml(sx, sy, qx).flatten(0, 1), qy.flatten()).backward()
    reference = _reference(learner, 0.4, first_order, sx, sy, qx, qy)
    for (name, p), ref in zip(learner.named_parameters(), reference):
        assert torch.allclose(p.grad, ref, rtol=1e-6, atol=1e-9), name
    if first_order:  # and it is not the second-order gradient: the test could fail
        second = _reference(learner, 0.4, False, sx, sy, qx, qy)
        assert not all(torch.allclose(a, b, rtol=1e-3) for a, b in zip(reference, second))


def test_second_order_meta_gradient_matches_finite_differences_on_conv4():
    torch.manual_seed(0)
    learner = ConvClassifier(5, channels=3, episodic=True).double()
    maml = MAML(learner, inner_lr=0.4)
    sx, sy, qx, qy = _tasks()
    loss = lambda: F.cross_entropy(maml(sx, sy, qx).flatten(0, 1), qy.flatten())  # noqa: E731
    loss().backward()
    for p, index in ((learner.encoder.convs[1].weight, (1, 2, 0, 1)), (learner.encoder.norms[0].weight, (2,)),
                     (learner.head.weight, (3, 1))):
        eps = 1e-6
        with torch.no_grad():
            p[index] += eps
            up = loss().item()
            p[index] -= 2 * eps
            down = loss().item()
            p[index] += eps
        assert p.grad[index].item() == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-9)
