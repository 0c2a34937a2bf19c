"""BatchNorm1d/2d against torch's, the hand-written backward, state dicts, and the error cases."""

import inspect
import itertools
import re

import pytest
import torch
import torch.nn.functional as F

from paperzoo.batchnorm import BatchNorm1d, BatchNorm2d, BatchNormFunction, batch_norm

CASES = list(itertools.product((0.1, None, 0.0), (True, False), (True, False),
                               ((BatchNorm1d, torch.nn.BatchNorm1d, (8, 3)),
                                (BatchNorm1d, torch.nn.BatchNorm1d, (4, 3, 6)),
                                (BatchNorm2d, torch.nn.BatchNorm2d, (4, 3, 5, 5)))))


@pytest.mark.parametrize("momentum,affine,track,kinds", CASES)
@pytest.mark.parametrize("backward", ["autograd", "manual"])
def test_matches_torch_over_training_then_eval(momentum, affine, track, kinds, backward):
    ours_cls, torch_cls, shape = kinds
    torch.manual_seed(0)
    ours = ours_cls(3, momentum=momentum, affine=affine, track_running_stats=track, backward=backward)
    ref = torch_cls(3, momentum=momentum, affine=affine, track_running_stats=track)
    if affine:
        with torch.no_grad():
            for m in (ours, ref):
                m.weight.copy_(torch.tensor([0.5, 1.5, -2.0]))
                m.bias.copy_(torch.tensor([0.1, -0.3, 1.0]))
    for step in range(6):
        x = (torch.randn(*shape) * (step + 1) + step).requires_grad_()
        x_ref = x.detach().clone().requires_grad_()
        g = torch.randn(*shape)
        y, y_ref = ours(x), ref(x_ref)
        assert torch.allclose(y, y_ref, atol=1e-5)
        y.backward(g)
        y_ref.backward(g)
        assert torch.allclose(x.grad, x_ref.grad, atol=1e-5)
        if affine:
            assert torch.allclose(ours.weight.grad, ref.weight.grad, atol=1e-4)
            assert torch.allclose(ours.bias.grad, ref.bias.grad, atol=1e-4)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for key, value in ref.state_dict().items():
        assert torch.allclose(ours.state_dict()[key].double(), value.double(), atol=1e-5), key
    ours.eval(), ref.eval()
    x = torch.randn(*shape)
    assert torch.allclose(ours(x), ref(x), atol=1e-5)


def test_running_variance_is_unbiased_and_counted_by_hand():
    bn = BatchNorm1d(1, momentum=None)
    batches = [torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [4.0]])]
    for x in batches:
        bn(x)
    assert bn.num_batches_tracked.item() == 2
    # cumulative average of the batch means (2, 2) and of the unbiased variances (2, 8)
    assert bn.running_mean.item() == pytest.approx(2.0)
    assert bn.running_var.item() == pytest.approx(5.0)


def test_normalised_output_by_hand():
    y = BatchNorm1d(1, affine=False, eps=1e-12)(torch.tensor([[1.0], [3.0]]))  # eps must be positive in training
    assert torch.allclose(y, torch.tensor([[-1.0], [1.0]]))  # mean 2, biased std 1


def test_functional_matches_torch_functional():
    torch.manual_seed(0)
    x, w, b = torch.randn(6, 4, 3), torch.randn(4), torch.randn(4)
    rm, rv, rm2, rv2 = torch.zeros(4), torch.ones(4), torch.zeros(4), torch.ones(4)
    assert torch.allclose(batch_norm(x, rm, rv, w, b, True, 0.3), F.batch_norm(x, rm2, rv2, w, b, True, 0.3),
                          atol=1e-5)
    assert torch.allclose(rm, rm2) and torch.allclose(rv, rv2)
    assert torch.allclose(batch_norm(x, rm, rv, w, b), F.batch_norm(x, rm2, rv2, w, b), atol=1e-5)


def test_gradcheck_hand_written_backward():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 2, 2, dtype=torch.double, requires_grad=True)
    w = torch.randn(3, dtype=torch.double, requires_grad=True)
    b = torch.randn(3, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: BatchNormFunction.apply(x, w, b, 1e-5)[0], (x, w, b))
    x2 = torch.randn(5, 3, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: BatchNormFunction.apply(x, None, None, 1e-5)[0], (x2,))


def test_state_dict_round_trip_with_torch():
    torch.manual_seed(0)
    ref = torch.nn.BatchNorm2d(3)
    for _ in range(3):
        ref(torch.randn(4, 3, 2, 2) + 2)
    with torch.no_grad():
        ref.weight.mul_(3)
    ours = BatchNorm2d(3)
    ours.load_state_dict(ref.state_dict())
    back = torch.nn.BatchNorm2d(3)
    back.load_state_dict(ours.state_dict())
    ours.eval(), back.eval(), ref.eval()
    x = torch.randn(2, 3, 2, 2)
    assert torch.allclose(ours(x), ref(x), atol=1e-6) and torch.allclose(back(x), ref(x), atol=1e-6)
    assert back.num_batches_tracked.item() == 3


def test_error_cases():
    bn = BatchNorm1d(3)
    with pytest.raises(ValueError, match="more than one value per channel"):
        bn(torch.randn(1, 3))
    bn.eval()
    assert bn(torch.randn(1, 3)).shape == (1, 3)  # running statistics: a single example is fine
    with pytest.raises(ValueError, match="expected 3 channels"):
        bn(torch.randn(4, 5))
    with pytest.raises(ValueError, match="BatchNorm2d expects a 4D input"):
        BatchNorm2d(3)(torch.randn(4, 3))
    with pytest.raises(ValueError, match="backward must be"):
        BatchNorm2d(3, backward="fast")


def side_by_side(cls_pair=(BatchNorm2d, torch.nn.BatchNorm2d), **kwargs):
    torch.manual_seed(0)
    ours, ref = cls_pair[0](3, **kwargs), cls_pair[1](3, **kwargs)
    with torch.no_grad():
        for m in (ours, ref):
            if m.weight is not None:
                m.weight.copy_(torch.tensor([0.5, 1.5, -2.0]))
            if m.bias is not None:
                m.bias.copy_(torch.tensor([0.1, -0.3, 1.0]))
    return ours, ref


def test_constructor_accepts_what_torchs_accepts():
    ours = inspect.signature(BatchNorm2d).parameters
    for name, param in inspect.signature(torch.nn.BatchNorm2d).parameters.items():
        assert name in ours, name
        assert (ours[name].kind, ours[name].default) == (param.kind, param.default), name


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("backward", ["autograd", "manual"])
def test_bias_false_matches_torch(affine, backward):
    ours, ref = side_by_side(affine=affine, bias=False)
    ours.backward = backward
    assert ours.bias is None and list(ours.state_dict()) == list(ref.state_dict())
    assert "bias=False" in repr(ours)
    for _ in range(3):
        x = torch.randn(4, 3, 5, 5) * 2 + 1
        g = torch.randn(4, 3, 5, 5)
        y, y_ref = ours(x), ref(x)
        torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
        if affine:
            y.backward(g), y_ref.backward(g)
            torch.testing.assert_close(ours.weight.grad, ref.weight.grad, atol=1e-4, rtol=1e-4)
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, atol=1e-5, rtol=1e-5)
    ours.eval(), ref.eval()
    x = torch.randn(2, 3, 5, 5)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)


def test_legacy_state_dict_without_num_batches_tracked_loads_as_in_torch():
    source = torch.nn.BatchNorm2d(3)
    source(torch.randn(4, 3, 2, 2))
    legacy = source.state_dict()
    del legacy["num_batches_tracked"]
    legacy._metadata[""]["version"] = 1  # written before torch added the counter
    ours, ref = BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    for m in (ours, ref):
        m.num_batches_tracked.fill_(7)
        m.load_state_dict(legacy)  # strict: the counter is filled in with the module's own value
    assert ours.num_batches_tracked.item() == ref.num_batches_tracked.item() == 7
    torch.testing.assert_close(ours.running_mean, source.running_mean)
    assert ours.state_dict()._metadata[""]["version"] == ref.state_dict()._metadata[""]["version"]
    current = source.state_dict()
    del current["num_batches_tracked"]  # a current state dict that lost the counter: an error in both
    for m in (ours, ref):
        with pytest.raises(RuntimeError, match="num_batches_tracked"):
            m.load_state_dict(current)


@pytest.mark.parametrize("kinds", [(BatchNorm1d, torch.nn.BatchNorm1d, (0, 3)),
                                   (BatchNorm2d, torch.nn.BatchNorm2d, (0, 3, 4, 4)),
                                   (BatchNorm2d, torch.nn.BatchNorm2d, (2, 3, 0, 4))])
@pytest.mark.parametrize("backward", ["autograd", "manual"])
def test_empty_batch_in_training_matches_torch(kinds, backward):
    ours, ref = side_by_side(kinds[:2])
    ours.backward = backward
    for m in (ours, ref):
        m.running_mean.fill_(2.0)
        m.running_var.fill_(3.0)
    x = torch.randn(*kinds[2], requires_grad=True)
    y, y_ref = ours(x), ref(x)
    assert y.shape == y_ref.shape == kinds[2]
    y.sum().backward(), y_ref.sum().backward()
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value)  # running statistics unchanged, count + 1
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad)
    torch.testing.assert_close(ours.bias.grad, ref.bias.grad)
    ours.eval(), ref.eval()
    assert ours(torch.randn(*kinds[2])).shape == kinds[2]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("backward", ["autograd", "manual"])
def test_reduced_precision_input_with_fp32_parameters_matches_torch(dtype, backward):
    ours, ref = side_by_side()
    ours.backward = backward
    x = (torch.randn(4, 3, 5, 5) * 2 + 1).to(dtype).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = ours(x), ref(x_ref)
    assert y.dtype == y_ref.dtype == dtype
    torch.testing.assert_close(y, y_ref, atol=2e-2, rtol=2e-2)
    g = torch.randn(4, 3, 5, 5).to(dtype)
    y.backward(g), y_ref.backward(g)
    assert x.grad.dtype == x_ref.grad.dtype == dtype and ours.weight.grad.dtype == torch.float32
    torch.testing.assert_close(x.grad, x_ref.grad, atol=2e-2, rtol=2e-2)
    for key, value in ref.state_dict().items():
        assert ours.state_dict()[key].dtype == value.dtype, key
        torch.testing.assert_close(ours.state_dict()[key], value, atol=1e-4, rtol=1e-4)
    ours.eval(), ref.eval()
    y, y_ref = ours(x.detach()), ref(x.detach())
    assert y.dtype == y_ref.dtype == dtype
    torch.testing.assert_close(y, y_ref, atol=2e-2, rtol=2e-2)


# torch's own module-test inputs for BatchNorm2d (common_modules.module_inputs_torch_nn_BatchNorm2d): constructor
# arguments and input shape, the zero-batch case included
TORCH_BN2D_INPUTS = [((3,), {}, (2, 3, 6, 6)),
                     ((3, 1e-3, None), {}, (2, 3, 6, 6)),
                     ((3, 1e-3, 0.8), {}, (2, 3, 6, 6)),
                     ((3, 1e-3, 0.8, False), {}, (2, 3, 6, 6)),
                     ((3, 1e-3, 0.8, True, False), {}, (2, 3, 6, 6)),
                     ((5, 1e-3, 0.3, False), {}, (0, 5, 2, 2)),
                     ((3,), {"bias": False}, (2, 3, 6, 6)),
                     ((3,), {}, (2, 3, 0, 4))]


@pytest.mark.parametrize("args,kwargs,shape", TORCH_BN2D_INPUTS)
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("backward", ["autograd", "manual"])
def test_memory_format_matches_torch(args, kwargs, shape, memory_format, training, backward):
    """torch's test_memory_format: the output (and the input's gradient) keep the input's layout, empty or not."""
    ours = BatchNorm2d(*args, **kwargs, backward=backward).train(training)
    ref = torch.nn.BatchNorm2d(*args, **kwargs).train(training)
    torch.manual_seed(0)
    x = torch.randn(*shape).to(memory_format=memory_format).requires_grad_()
    x_ref = x.detach().clone(memory_format=torch.preserve_format).requires_grad_()
    y, y_ref = ours(x), ref(x_ref)
    assert y.stride() == y_ref.stride() and y.is_contiguous(memory_format=memory_format)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    g = torch.randn(*shape).to(memory_format=memory_format)
    y.backward(g), y_ref.backward(g)
    assert x.grad.stride() == x_ref.grad.stride()
    torch.testing.assert_close(x.grad, x_ref.grad, atol=1e-5, rtol=1e-5)


def test_empty_channels_last_batch_keeps_torchs_strides():
    x = torch.randn(0, 5, 2, 2).to(memory_format=torch.channels_last)
    assert BatchNorm2d(5)(x).stride() == torch.nn.BatchNorm2d(5)(x).stride() == (20, 1, 10, 5)
    assert BatchNorm2d(5).eval()(x).stride() == (20, 1, 10, 5)


@pytest.mark.parametrize("kinds", [(BatchNorm1d, torch.nn.BatchNorm1d, (2, 10)),
                                   (BatchNorm2d, torch.nn.BatchNorm2d, (2, 10, 5, 5))])
@pytest.mark.parametrize("eps", [-1.0, 0.0])
@pytest.mark.parametrize("mode", ["train", "eval", "eval_without_running_stats"])
def test_eps_errors_match_torch(kinds, eps, mode):
    """torch's module error inputs: eps <= 0 is refused with batch statistics, eps < 0 with running ones."""
    track = mode != "eval_without_running_stats"
    ours, ref = (cls(10, eps=eps, track_running_stats=track).train(mode == "train") for cls in kinds[:2])
    x = torch.randn(*kinds[2])
    if mode == "eval" and eps == 0.0:  # running statistics: eps = 0 is allowed
        torch.testing.assert_close(ours(x), ref(x))
        return
    with pytest.raises(ValueError, match="eps must be") as expected:
        ref(x)
    with pytest.raises(ValueError, match=f"^{re.escape(str(expected.value))}$"):
        ours(x)


def test_eps_refused_with_torchs_message():
    with pytest.raises(ValueError, match="batch_norm eps must be positive during training, but got -1.0"):
        BatchNorm2d(10, eps=-1.0)(torch.randn(2, 10, 5, 5))
    with pytest.raises(ValueError, match="batch_norm eps must be positive during training, but got 0.0"):
        batch_norm(torch.randn(4, 3), None, None, training=True, eps=0.0)
    with pytest.raises(ValueError, match="batch_norm eps must be non-negative, but got -0.5"):
        BatchNorm1d(3, eps=-0.5).eval()(torch.randn(4, 3))
    y = BatchNorm1d(1, eps=0.0).eval()(torch.tensor([[1.0], [3.0]]))  # running statistics 0 and 1: allowed
    torch.testing.assert_close(y, torch.tensor([[1.0], [3.0]]))
