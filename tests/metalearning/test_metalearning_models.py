import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo.metalearning import (MAML, Conv4, ConvClassifier, CosineHead, EpisodeBatchNorm, ProtoNet,
                                   cosine_head_logits, mean_ci95, nearest_neighbour_logits, protonet_logits, prototypes)
from paperzoo.config import validate
from paperzoo.errors import ConfigError
from paperzoo.metalearning.methods import MamlConfig


def test_prototypes_and_logits_by_hand():
    support = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])  # two of class 0, one of class 1
    labels = torch.tensor([0, 0, 1])
    assert torch.equal(prototypes(support, labels, 2), torch.tensor([[1.0, 0.0], [0.0, 4.0]]))
    query = torch.tensor([[1.0, 1.0]])
    # squared distances: to (1, 0): 1; to (0, 4): 1 + 9 = 10
    assert torch.equal(protonet_logits(support, labels, query, 2), torch.tensor([[-1.0, -10.0]]))
    with pytest.raises(ValueError, match="at least one support example"):
        prototypes(support, torch.tensor([0, 0, 0]), 2)


def test_protonet_forward_batches_episodes():
    torch.manual_seed(0)
    net = ProtoNet(Conv4(1, 8)).eval()
    sx, sy, qx = torch.rand(3, 10, 1, 28, 28), torch.arange(5).repeat(3, 2), torch.rand(3, 7, 1, 28, 28)
    logits = net(sx, sy, qx)
    assert logits.shape == (3, 7, 5)
    alone = net(sx[1:2], sy[1:2], qx[1:2])
    assert torch.allclose(logits[1:2], alone, atol=1e-4)


def test_nearest_neighbour_and_ci_by_hand():
    support = torch.tensor([[[0.0], [10.0], [3.0]]])  # classes 0, 0, 1
    labels = torch.tensor([[0, 0, 1]])
    logits = nearest_neighbour_logits(support, labels, torch.tensor([[[9.0], [4.0]]]), 2)
    assert torch.equal(logits, torch.tensor([[[-1.0, -6.0], [-4.0, -1.0]]]))
    mean, ci = mean_ci95([0.5, 1.0, 1.0, 0.5])
    assert mean == 0.75 and ci == pytest.approx(1.96 * (1 / 12) ** 0.5 / 2)


def test_cosine_head_shapes_and_scale():
    torch.manual_seed(0)
    head = CosineHead(6, 4, scale=10.0)
    x = torch.randn(3, 6)
    logits = head(x)
    assert logits.shape == (3, 4)
    assert logits.abs().max() <= 10.0 + 1e-5  # scale * cosine
    assert torch.allclose(head(5 * x), logits, atol=1e-5)  # invariant to the feature norm
    with torch.no_grad():
        head.weight[2] = x[1]
    assert head(x)[1, 2].item() == pytest.approx(10.0, abs=1e-4)  # cosine 1 with its own weight row
    assert ConvClassifier(7, channels=4, head="cosine")(torch.rand(2, 1, 28, 28)).shape == (2, 7)
    with pytest.raises(ValueError, match="head must be"):
        ConvClassifier(7, channels=4, head="mlp")
    with pytest.raises(ValueError, match="scale must be > 0"):
        CosineHead(6, 4, scale=0.0)


def test_cosine_head_fine_tune_on_support_separates_a_tiny_problem():
    """Five directions in 16-d space, 3 noisy support examples each, 200 episodes at once: the head fitted on the
    support set classifies fresh queries, and beats chance by far; with the labels of the support shuffled it
    does not (the fit uses the labels)."""
    g = torch.Generator().manual_seed(0)
    t, n, k, q, d = 200, 5, 3, 4, 16
    centres = torch.randn(t, n, d, generator=g)  # (T, N, D): a new set of classes per episode
    sy = torch.arange(n).repeat_interleave(k).repeat(t, 1)  # (T, N * K)
    qy = torch.arange(n).repeat_interleave(q).repeat(t, 1)  # (T, N * Q)
    sf = centres.gather(1, sy[..., None].expand(-1, -1, d)) + 0.5 * torch.randn(t, n * k, d, generator=g)
    qf = centres.gather(1, qy[..., None].expand(-1, -1, d)) + 0.5 * torch.randn(t, n * q, d, generator=g)
    logits = cosine_head_logits(sf, sy, qf, n)
    assert logits.shape == (t, n * q, n)
    assert (logits.argmax(-1) == qy).float().mean() > 0.95
    shuffled = sy[:, torch.randperm(n * k, generator=g)]
    assert (cosine_head_logits(sf, shuffled, qf, n).argmax(-1) == qy).float().mean() < 0.6


def test_episode_batchnorm_statistics_from_support_rows():
    bn = EpisodeBatchNorm(2)
    x = torch.randn(6, 2, 3, 3)
    out = bn(x, n_stats=4)
    ref = x[:4]
    mean, var = ref.mean((0, 2, 3), keepdim=True), ref.var((0, 2, 3), unbiased=False, keepdim=True)
    assert torch.allclose(out, (x - mean) / torch.sqrt(var + 1e-5), atol=1e-5)
    assert torch.allclose(bn(x), F.batch_norm(x, None, None, training=True), atol=1e-5)


def _linear_task(seed=0):
    g = torch.Generator().manual_seed(seed)
    xs, ys = torch.randn(1, 4, 1, generator=g), torch.randn(1, 4, 1, generator=g)
    xq, yq = torch.randn(1, 3, 1, generator=g), torch.randn(1, 3, 1, generator=g)
    return xs, ys, xq, yq


@pytest.mark.parametrize("first_order", [False, True])
def test_maml_meta_gradient_matches_hand_derivation(first_order):
    """f(x) = w x, mean-squared error. Inner: w' = w - 2 alpha (w a - b), a = mean xs^2, b = mean xs ys.
    Query loss gradient at w': 2 (w' c - d), c = mean xq^2, d = mean xq yq; chain factor dw'/dw = 1 - 2 alpha a
    (second order) or 1 (first order)."""
    xs, ys, xq, yq = _linear_task()
    learner = nn.Linear(1, 1, bias=False)
    w, alpha = 0.7, 0.1
    learner.weight.data.fill_(w)
    maml = MAML(learner, inner_lr=alpha, inner_steps=1, first_order=first_order, loss=F.mse_loss)
    F.mse_loss(maml(xs, ys, xq), yq).backward()
    a, b = (xs**2).mean(), (xs * ys).mean()
    c, d = (xq**2).mean(), (xq * yq).mean()
    w_fast = w - 2 * alpha * (w * a - b)
    expected = 2 * (w_fast * c - d) * (1 if first_order else 1 - 2 * alpha * a)
    assert learner.weight.grad.item() == pytest.approx(expected.item(), rel=1e-5)


def test_meta_sgd_learning_rate_gradient_by_hand():
    xs, ys, xq, yq = _linear_task(1)
    learner = nn.Linear(1, 1, bias=False)
    learner.weight.data.fill_(-0.3)
    maml = MAML(learner, inner_lr=0.2, learn_inner_lr=True, loss=F.mse_loss)
    F.mse_loss(maml(xs, ys, xq), yq).backward()
    a, b, c, d = (xs**2).mean(), (xs * ys).mean(), (xq**2).mean(), (xq * yq).mean()
    g = 2 * (-0.3 * a - b)
    w_fast = -0.3 - 0.2 * g
    assert maml.inner_lrs[0].grad.item() == pytest.approx((2 * (w_fast * c - d) * -g).item(), rel=1e-5)


def test_maml_two_steps_matches_finite_differences():
    torch.manual_seed(0)
    learner = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)).double()
    maml = MAML(learner, inner_lr=0.3, inner_steps=2, loss=F.mse_loss)
    xs, ys = torch.randn(2, 5, 2).double(), torch.randn(2, 5, 1).double()
    xq, yq = torch.randn(2, 4, 2).double(), torch.randn(2, 4, 1).double()
    loss = lambda: F.mse_loss(maml(xs, ys, xq), yq)  # noqa: E731
    loss().backward()
    p = learner[0].weight
    analytic = p.grad[1, 0].item()
    eps = 1e-6
    with torch.no_grad():
        p[1, 0] += eps
        up = loss().item()
        p[1, 0] -= 2 * eps
        down = loss().item()
    assert analytic == pytest.approx((up - down) / (2 * eps), rel=1e-5)


def test_maml_support_bn_keeps_queries_independent():
    torch.manual_seed(0)
    maml = MAML(ConvClassifier(5, channels=4, episodic=True), inner_lr=0.1)
    sx, sy, qx = torch.rand(1, 5, 1, 28, 28), torch.arange(5)[None], torch.rand(1, 6, 1, 28, 28)
    changed = qx.clone()
    changed[0, 5] = 1.0 - changed[0, 5]
    with torch.no_grad():
        for bn, independent in (("support", True), ("transductive", False)):
            a, b = maml(sx, sy, qx, bn=bn), maml(sx, sy, changed, bn=bn)
            assert torch.allclose(a[0, :5], b[0, :5], atol=1e-5) == independent


def test_maml_batched_equals_one_task_at_a_time_and_grads_reach_all_parameters():
    torch.manual_seed(0)
    maml = MAML(ConvClassifier(5, channels=4, episodic=True), inner_lr=0.4)
    sx, sy, qx = torch.rand(3, 5, 1, 28, 28), torch.arange(5).repeat(3, 1), torch.rand(3, 10, 1, 28, 28)
    batched = maml(sx, sy, qx)
    single = torch.cat([maml(sx[i:i + 1], sy[i:i + 1], qx[i:i + 1]) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-5)
    F.cross_entropy(batched.flatten(0, 1), torch.arange(5).repeat(6)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in maml.parameters())


def test_maml_task_chunks_give_the_same_outputs_and_meta_gradients():
    torch.manual_seed(0)
    whole = MAML(ConvClassifier(5, channels=4, episodic=True), inner_lr=0.4)
    chunked = MAML(ConvClassifier(5, channels=4, episodic=True), inner_lr=0.4, task_chunk=2)
    chunked.load_state_dict(whole.state_dict())
    sx, sy, qx = torch.rand(3, 5, 1, 28, 28), torch.arange(5).repeat(3, 1), torch.rand(3, 10, 1, 28, 28)
    grads = []
    for maml in (whole, chunked):
        out = maml(sx, sy, qx)
        F.cross_entropy(out.flatten(0, 1), torch.arange(5).repeat(6)).backward()
        grads.append((out, [p.grad for p in maml.parameters()]))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads[0][1], grads[1][1]))
    with pytest.raises(ValueError, match="task_chunk must be >= 0"):
        MAML(ConvClassifier(5, channels=4, episodic=True), task_chunk=-1)
    with pytest.raises(ConfigError, match="task_chunk must be >= 0"):  # the CLI prints it without a traceback
        validate(MamlConfig(task_chunk=-1))


def test_maml_rejects_running_stats_and_bad_shapes():
    with pytest.raises(ValueError, match="must not keep running statistics"):
        MAML(ConvClassifier(5, channels=4))
    maml = MAML(ConvClassifier(5, channels=4, episodic=True))
    with pytest.raises(ValueError, match="expected support_x"):
        maml(torch.rand(5, 1, 28, 28), torch.arange(5), torch.rand(5, 1, 28, 28))
    with pytest.raises(ValueError, match="n_stats needs episodic=True"):
        Conv4(1, 4)(torch.rand(2, 1, 28, 28), n_stats=1)


class _LayerUnderTwoNames(nn.Module):
    """One Linear reached as `fc` and as `body.0`, the learn2learn case that functional_call corrupts."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 3)
        self.body = nn.Sequential(self.fc, nn.Tanh(), nn.Linear(3, 1))

    def forward(self, x):
        return self.body(x)


class _TiedWeights(nn.Module):
    """Two Linears sharing one weight Parameter, and one parameterless Tanh used under two names: both allowed."""

    def __init__(self):
        super().__init__()
        act = nn.Tanh()
        self.a, self.b = nn.Sequential(nn.Linear(2, 2), act), nn.Sequential(nn.Linear(2, 2), act)
        self.b[0].weight = self.a[0].weight

    def forward(self, x):
        return self.b(self.a(x)).sum(-1, keepdim=True)


def test_maml_refuses_a_learner_holding_one_layer_under_two_names():
    learner = _LayerUnderTwoNames()
    with pytest.raises(ValueError, match=r"one module under several names \('fc' and 'body\.0'\).*Keep each layer"):
        MAML(learner, loss=F.mse_loss)
    assert isinstance(learner.fc.weight, nn.Parameter) and learner(torch.randn(4, 2)).shape == (4, 1)
    torch.manual_seed(0)
    tied = _TiedWeights()
    xs, ys, xq, yq = torch.randn(2, 4, 2), torch.randn(2, 4, 1), torch.randn(2, 3, 2), torch.randn(2, 3, 1)
    F.mse_loss(MAML(tied, inner_lr=0.1, loss=F.mse_loss)(xs, ys, xq), yq).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tied.parameters())


def test_maml_leaves_frozen_parameters_out_of_the_inner_loop():
    """f(x) = w x + b with b frozen: the inner step moves w only, w' = w - 2 alpha mean((w xs + b - ys) xs), the
    adapted output is w' xq + b, and the meta-gradient reaches w (chain factor 1 - 2 alpha mean xs^2), not b."""
    xs, ys, xq, yq = _linear_task(2)
    learner = nn.Linear(1, 1)
    w, b, alpha = 0.7, 0.5, 0.1
    learner.weight.data.fill_(w)
    learner.bias.data.fill_(b)
    learner.bias.requires_grad_(False)
    maml = MAML(learner, inner_lr=alpha, loss=F.mse_loss)
    w_fast = w - 2 * alpha * ((w * xs + b - ys) * xs).mean()
    expected = w_fast * xq + b  # (1, Q, 1)
    with torch.no_grad():
        torch.testing.assert_close(maml(xs, ys, xq), expected)
    out = maml(xs, ys, xq)
    torch.testing.assert_close(out, expected)
    F.mse_loss(out, yq).backward()
    chain = 1 - 2 * alpha * (xs**2).mean()
    assert learner.weight.grad.item() == pytest.approx((2 * ((expected - yq) * xq).mean() * chain).item(), rel=1e-5)
    assert learner.bias.grad is None and learner.bias.item() == b


def test_protonet_batch_of_episodes_trains_as_episodes_one_at_a_time():
    """Training-mode batch norm: three episodes in one batch give the mean of the three one-episode losses, the same
    gradient, and the running statistics of three one-episode steps (not statistics pooled over the episodes)."""
    torch.manual_seed(0)
    batched = ProtoNet(Conv4(1, 4))
    alone = copy.deepcopy(batched)
    sx, sy = torch.rand(3, 10, 1, 28, 28), torch.arange(5).repeat(3, 2)  # (T, S, ...), (T, S)
    qx, qy = torch.rand(3, 5, 1, 28, 28) * torch.tensor([0.5, 1.0, 2.0])[:, None, None, None, None], sy[:, :5]
    batched_loss = F.cross_entropy(batched(sx, sy, qx).flatten(0, 1), qy.flatten())
    batched_loss.backward()
    loss = sum(F.cross_entropy(alone(sx[i:i + 1], sy[i:i + 1], qx[i:i + 1])[0], qy[i]) for i in range(3)) / 3
    loss.backward()
    assert batched_loss.item() == pytest.approx(loss.item(), abs=1e-6)
    for (name, p), q in zip(batched.named_parameters(), alone.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-5, msg=name)
    for (name, b), c in zip(batched.named_buffers(), alone.buffers()):
        torch.testing.assert_close(b, c, msg=name)
