"""DPO losses, the Bradley-Terry loss and sequence log-probs against values worked out by hand."""

import math

import pytest
import torch

from paperzoo.dpo.loss import bradley_terry_loss, dpo_loss, preference_metrics, sequence_logps

# policy chosen/rejected, reference chosen/rejected: h = (-1 + 1.5) - (-2 + 1.5) = 1
PC, PR, RC, RR = (torch.tensor([v], dtype=torch.float64) for v in (-1.0, -2.0, -1.5, -1.5))


def softplus(x: float) -> float:  # -log sigmoid(-x)
    return math.log1p(math.exp(x))


@pytest.mark.parametrize("loss_type, beta, smoothing, expected", [
    ("sigmoid", 0.5, 0.0, softplus(-0.5)),  # -log sigmoid(0.5)
    ("sigmoid", 0.5, 0.1, 0.9 * softplus(-0.5) + 0.1 * softplus(0.5)),  # cDPO
    ("robust", 0.5, 0.1, (0.9 * softplus(-0.5) - 0.1 * softplus(0.5)) / 0.8),
    ("hinge", 0.5, 0.0, 0.5),  # max(0, 1 - 0.5 * 1)
    ("hinge", 2.0, 0.0, 0.0),  # margin beyond 1/beta: no loss
    ("ipo", 0.25, 0.0, 1.0),  # (1 - 1 / (2 * 0.25))^2
])
def test_each_variant_matches_hand_value(loss_type, beta, smoothing, expected):
    losses, chosen, rejected = dpo_loss(PC, PR, RC, RR, beta=beta, loss_type=loss_type, label_smoothing=smoothing)
    assert losses.item() == pytest.approx(expected, rel=1e-12)
    assert chosen.item() == pytest.approx(beta * 0.5) and rejected.item() == pytest.approx(-beta * 0.5)


def test_lengths_make_h_per_token_and_leave_the_rewards_summed():
    # log-ratios 0.5 (chosen, 2 tokens) and -0.5 (rejected, 5 tokens): h = 0.5 / 2 + 0.5 / 5 = 0.35
    lengths = (torch.tensor([2]), torch.tensor([5]))
    losses, chosen, rejected = dpo_loss(PC, PR, RC, RR, beta=0.5, loss_type="ipo", lengths=lengths)
    assert losses.item() == pytest.approx((0.35 - 1 / (2 * 0.5)) ** 2, rel=1e-12)  # IPO per token
    assert chosen.item() == pytest.approx(0.5 * 0.5) and rejected.item() == pytest.approx(-0.5 * 0.5)
    losses, _, _ = dpo_loss(PC, PR, RC, RR, beta=0.5, lengths=lengths)
    assert losses.item() == pytest.approx(softplus(-0.5 * 0.35), rel=1e-12)  # any loss type
    with pytest.raises(ValueError, match="two \\(B,\\) lengths"):
        dpo_loss(PC, PR, RC, RR, lengths=(torch.tensor([2, 3]), torch.tensor([5, 1])))


@pytest.mark.parametrize("loss_type, expected", [("sigmoid", math.log(2)), ("robust", math.log(2)),
                                                 ("hinge", 1.0), ("ipo", 25.0)])
def test_policy_equal_to_reference(loss_type, expected):
    logps = torch.tensor([-3.0, -7.5, -0.2])
    other = torch.tensor([-1.0, -2.0, -9.0])
    smoothing = 0.2 if loss_type == "robust" else 0.0  # robust is unbiased: still log 2 at h = 0
    losses, chosen, rejected = dpo_loss(logps, other, logps, other, beta=0.1, loss_type=loss_type,
                                        label_smoothing=smoothing)
    torch.testing.assert_close(losses, torch.full((3,), expected))
    assert chosen.abs().max() == 0 and rejected.abs().max() == 0


def test_gradient_pushes_chosen_up_and_rejected_down():
    chosen = torch.tensor([-4.0, -1.0], requires_grad=True)
    rejected = torch.tensor([-3.0, -5.0], requires_grad=True)
    for loss_type in ("sigmoid", "robust", "hinge", "ipo"):
        chosen.grad = rejected.grad = None
        losses, _, _ = dpo_loss(chosen, rejected, torch.tensor([-3.5, -1.2]), torch.tensor([-3.5, -4.0]),
                                beta=0.1, loss_type=loss_type)
        losses.sum().backward()
        assert (chosen.grad < 0).all(), loss_type  # gradient descent raises log pi(y_w)
        assert (rejected.grad > 0).all(), loss_type  # and lowers log pi(y_l)


def test_sigmoid_gradient_weight_is_sigmoid_of_reward_error():
    # Eq. 8: dL/dlog pi(y_w) = -beta * sigmoid(r_hat(y_l) - r_hat(y_w))
    chosen = torch.tensor([-2.0], requires_grad=True)
    losses, c, r = dpo_loss(chosen, torch.tensor([-1.0]), torch.tensor([-2.5]), torch.tensor([-2.0]), beta=0.3)
    losses.sum().backward()
    assert chosen.grad.item() == pytest.approx(-0.3 * torch.sigmoid(r - c).item())


def test_rewards_are_detached():
    pc = torch.tensor([-1.0], requires_grad=True)
    _, chosen, rejected = dpo_loss(pc, PR.float(), RC.float(), RR.float())
    assert not chosen.requires_grad and not rejected.requires_grad


@pytest.mark.parametrize("kwargs, match", [({"loss_type": "kto"}, "unknown loss_type 'kto'"),
                                           ({"beta": 0.0}, "beta must be > 0"),
                                           ({"label_smoothing": 0.5}, "label_smoothing must be in"),
                                           ({"loss_type": "ipo", "label_smoothing": 0.1}, "not to 'ipo'")])
def test_bad_settings_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dpo_loss(PC, PR, RC, RR, **kwargs)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="four \\(B,\\) tensors"):
        dpo_loss(torch.zeros(2), torch.zeros(3), torch.zeros(2), torch.zeros(2))


def test_bradley_terry_loss_hand_values():
    losses = bradley_terry_loss(torch.tensor([2.0, 0.0, -1.0]), torch.tensor([1.0, 0.0, 1.0]))
    torch.testing.assert_close(losses, torch.tensor([softplus(-1.0), math.log(2), softplus(2.0)]))
    with pytest.raises(ValueError, match="differ in shape"):
        bradley_terry_loss(torch.zeros(2), torch.zeros(3))


def test_sequence_logps_masks_prompt_and_padding():
    # vocabulary of 3; logits chosen so that log-softmax rows are easy: row [0, 0, 0] -> log(1/3) everywhere,
    # row [log 2, 0, 0] -> p = (1/2, 1/4, 1/4)
    third, half, quarter = math.log(1 / 3), math.log(1 / 2), math.log(1 / 4)
    flat, peaked = [0.0, 0.0, 0.0], [math.log(2), 0.0, 0.0]
    logits = torch.tensor([[peaked, flat, peaked, flat],  # predicts tokens 1..3 of labels row 0
                           [flat, peaked, flat, flat]])  # row 1: last position is padding
    labels = torch.tensor([[2, 0, 0, 1], [1, 1, 0, 0]])
    mask = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 0]])  # row 0: prompt = 2 tokens; row 1: prompt 1, 1 pad
    # row 0 scores token 2 (=0, predicted by position 1: flat -> 1/3) and token 3 (=1, by position 2: peaked -> 1/4)
    # row 1 scores token 1 (=1, by position 0: flat -> 1/3) and token 2 (=0, by position 1: peaked -> 1/2)
    out = sequence_logps(logits, labels, mask)
    torch.testing.assert_close(out, torch.tensor([third + quarter, third + half]))
    torch.testing.assert_close(sequence_logps(logits, labels, mask, average=True), out / 2)
    # a different prompt or padding token changes nothing
    labels2 = labels.clone()
    labels2[0, 0], labels2[1, 3] = 1, 2
    torch.testing.assert_close(sequence_logps(logits, labels2, mask), out)


def test_sequence_logps_rejects_scoring_the_first_token_and_bad_shapes():
    with pytest.raises(ValueError, match="first token has no prediction"):
        sequence_logps(torch.zeros(1, 3, 4), torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 3))
    with pytest.raises(ValueError, match="logits \\(B, T, V\\)"):
        sequence_logps(torch.zeros(1, 3), torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 3))


def test_metrics_use_trl_names_and_values():
    m = preference_metrics(torch.tensor([1.0, 3.0]), torch.tensor([0.5, -0.1]), torch.tensor([0.1, 0.2]),
                           torch.tensor([-5.0, -7.0]), torch.tensor([-6.0, -8.0]))
    assert set(m) == {"loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
                      "logps/chosen", "logps/rejected"}
    assert m["rewards/accuracies"].item() == 0.5
    assert m["rewards/margins"].item() == pytest.approx(0.05)
    assert m["logps/chosen"].item() == -6.0 and m["loss"].item() == 2.0
