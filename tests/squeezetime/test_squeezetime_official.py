"""Loading official SqueezeTime checkpoints: files written in the layout of xinghaochen/SqueezeTime (an mmaction2
Recognizer3D: backbone `SqueezeTime` with its ResNet in `.net`, head `I2DHead`), checked against a functional
forward written from the official code's definitions, so a wrong name map cannot pass by construction."""

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from paperzoo.errors import DataError, UserError
from paperzoo.squeezetime import SqueezeTime, from_official, load_squeezetime

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def official_shapes(frames: int, width: int, layers: tuple[int, ...], classes: int, pos: int) -> dict:
    """Names and shapes of the official Recognizer3D state dict (`generate_model(50, ...)`, pos_dim
    [pos, pos/2, pos/4, pos/8], I2DHead): 755 backbone tensors + 2 head tensors for the K400 model."""
    shapes = {}

    def conv(name, c_out, c_in, k, bias=False):
        shapes[name + ".weight"] = (c_out, c_in, k, k)
        if bias:
            shapes[name + ".bias"] = (c_out,)

    def bn(name, c):
        shapes.update({f"{name}.{leaf}": ((c,) if leaf != "num_batches_tracked" else ()) for leaf in BN})

    net = "backbone.net."
    conv(net + "conv1", width, 3 * frames, 5)
    bn(net + "bn1", width)
    dim = width
    for i, blocks in enumerate(layers):
        planes = width * 2 ** i
        for j in range(blocks):
            b = f"{net}layer{i + 1}.{j}."
            if i > 0 and j == 0:  # stride 2: depthwise 2x2 conv (with bias) + BN first
                conv(b + "downsample.0", dim, 1, 2, bias=True)
                bn(b + "downsample.1", dim)
            conv(b + "conv1", planes, dim, 1)
            bn(b + "bn1", planes)
            c = b + "conv2."  # the CTL module
            conv(c + "param_conv.1", planes, planes, 1)
            bn(c + "param_conv.2", planes)
            conv(c + "param_conv.4", planes, planes, 1)
            conv(c + "temporal_conv", planes, planes, 1)
            conv(c + "spatial_conv.short_conv", planes, planes, 3, bias=True)
            conv(c + "spatial_conv.glo_conv.0", 16, planes, 3, bias=True)
            bn(c + "spatial_conv.glo_conv.1", 16)
            conv(c + "spatial_conv.glo_conv.3", 16, 16, 7, bias=True)
            bn(c + "spatial_conv.glo_conv.4", 16)
            conv(c + "spatial_conv.glo_conv.6", planes, 16, 3, bias=True)
            shapes[c + "spatial_conv.pos_embed"] = (1, 16, pos >> i, pos >> i)
            bn(b + "bn2", planes)
            conv(b + "conv3", 4 * planes, planes, 1)
            bn(b + "bn3", 4 * planes)
            if j == 0 and dim != 4 * planes:
                conv(b + "shortcut_conv.0", 4 * planes, dim, 1)
                bn(b + "shortcut_conv.1", 4 * planes)
            dim = 4 * planes
    shapes.update({"cls_head.fc_cls.weight": (classes, dim), "cls_head.fc_cls.bias": (classes,)})
    return shapes


def official_state(shapes: dict, seed: int = 0) -> dict:
    """Random weights with trained-looking BN statistics (positive variances)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(1000)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=g) + 0.5
        else:
            state[name] = torch.randn(shape, generator=g) * 0.3
    return state


def official_forward(sd: dict, clips: torch.Tensor) -> torch.Tensor:
    """The official eval-mode forward (ResNet.forward, Bottleneck, Conv2d = CTL, SpatialConv = IOI, I2DHead)."""
    def conv(name, x, **kw):
        return F.conv2d(x, sd[name + ".weight"], sd.get(name + ".bias"), **kw)

    def bn(name, x):
        return F.batch_norm(x, sd[name + ".running_mean"], sd[name + ".running_var"], sd[name + ".weight"],
                            sd[name + ".bias"], False, 0.0, 1e-5)

    def ctl(c, x):
        param = torch.sigmoid(conv(c + "param_conv.4", F.relu(bn(c + "param_conv.2", conv(
            c + "param_conv.1", F.adaptive_avg_pool2d(x, 1))))))
        s = c + "spatial_conv."
        hidden = F.relu(bn(s + "glo_conv.1", conv(s + "glo_conv.0", x * param, padding=1)))
        pos = sd[s + "pos_embed"]
        if pos.shape[-2:] != hidden.shape[-2:]:
            pos = F.interpolate(pos, size=hidden.shape[-2:], mode="bilinear", align_corners=True)
        hidden = F.relu(bn(s + "glo_conv.4", conv(s + "glo_conv.3", hidden + pos, padding=3)))
        gate = torch.sigmoid(conv(s + "glo_conv.6", hidden, padding=1))
        return conv(c + "temporal_conv", param * x) + conv(s + "short_conv", x, padding=1) * gate

    n, _, _, h, w = clips.shape
    net = "backbone.net."
    x = F.max_pool2d(F.relu(bn(net + "bn1", conv(net + "conv1", clips.reshape(n, -1, h, w), stride=2,
                                                 padding=2))), 3, 2, 1)
    for i in range(1, 5):
        j = 0
        while f"{net}layer{i}.{j}.conv1.weight" in sd:
            b = f"{net}layer{i}.{j}."
            if b + "downsample.0.weight" in sd:
                x = bn(b + "downsample.1", conv(b + "downsample.0", x, stride=2, groups=x.shape[1]))
            out = F.relu(bn(b + "bn1", conv(b + "conv1", x)))
            out = F.relu(bn(b + "bn2", ctl(b + "conv2.", out)))
            out = bn(b + "bn3", conv(b + "conv3", out))
            shortcut = b + "shortcut_conv."
            residual = bn(shortcut + "1", conv(shortcut + "0", x)) if shortcut + "0.weight" in sd else x
            x = F.relu(out + residual)
            j += 1
    return F.linear(x.mean((2, 3)), sd["cls_head.fc_cls.weight"], sd["cls_head.fc_cls.bias"])


TINY = dict(frames=4, width=8, layers=(1, 2, 1, 1), classes=5, pos=8)  # SqueezeTime(5, 4, 0.125, 32, (1, 2, 1, 1))


def mmengine_checkpoint(state: dict) -> dict:
    """What mmengine's CheckpointHook writes: the weights beside training bookkeeping that is not tensors (numpy
    scalars, its log-history objects), which `torch.load(weights_only=True)` alone refuses."""
    module = types.ModuleType("mmengine_history_stub")
    history = type("HistoryBuffer", (), {"__module__": "mmengine_history_stub"})
    module.HistoryBuffer = history
    buffer = history()
    buffer.log = np.array([0.5, 0.25])
    sys.modules["mmengine_history_stub"] = module  # only while saving: loading never imports it
    return {"meta": {"epoch": 100, "seed": np.int64(0), "mmengine_version": "0.10.3"},
            "message_hub": {"log_scalars": {"train/loss": buffer}}, "state_dict": state,
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.015}]}}


def save_mmengine(path, state):
    try:
        torch.save(mmengine_checkpoint(state), path)
    finally:
        del sys.modules["mmengine_history_stub"]


def test_k400_official_names_map_one_to_one_onto_ours():
    shapes = official_shapes(16, 64, (3, 4, 6, 3), 400, 56)
    assert len(shapes) == 757  # 755 backbone tensors + the head
    with torch.device("meta"):
        ours = {k: tuple(v.shape) for k, v in SqueezeTime(400).state_dict().items()}
        mapped = from_official({k: torch.empty(s) for k, s in shapes.items()})
    assert {k: tuple(v.shape) for k, v in mapped.items()} == ours
    params = {k: s for k, s in shapes.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    backbone = sum(torch.Size(s).numel() for k, s in params.items() if k.startswith("backbone."))
    assert backbone == 28_887_088  # the official backbone's parameters (tests/squeezetime/test_squeezetime_size.py)


def test_mmengine_checkpoint_loads_and_gives_the_official_output(tmp_path):
    state = official_state(official_shapes(**TINY))
    path = tmp_path / "SqueezeTime_tiny.pth"
    save_mmengine(path, state)
    model = load_squeezetime(path)
    assert not model.training and (model.num_frames, model.fc.out_features) == (4, 5)
    clips = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(clips), official_forward(state, clips), atol=1e-4, rtol=1e-4)
        other_size = torch.randn(1, 3, 4, 48, 40)  # position encodings interpolated the same way
        torch.testing.assert_close(model(other_size), official_forward(state, other_size), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("layout", ["flat", "module_prefix", "model_wrapper", "safetensors"])
def test_other_layouts_load(tmp_path, layout):
    state = official_state(official_shapes(**TINY), seed=1)
    path = tmp_path / ("w.safetensors" if layout == "safetensors" else "w.pth")
    if layout == "safetensors":
        save_file(state, path)
    elif layout == "module_prefix":  # saved from a DistributedDataParallel wrapper
        torch.save({"state_dict": {"module." + k: v for k, v in state.items()}}, path)
    else:
        torch.save({"model": state} if layout == "model_wrapper" else state, path)
    clips = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(load_squeezetime(path)(clips), official_forward(state, clips), atol=1e-4,
                                   rtol=1e-4)


def test_backbone_only_file_with_a_new_head(tmp_path):
    # the ImageNet pre-training is loaded into the official ResNet itself: names from conv1 / layer1, no head
    state = official_state(official_shapes(**TINY), seed=2)
    backbone = {k.removeprefix("backbone.net."): v for k, v in state.items() if k.startswith("backbone.")}
    path = tmp_path / "in1k.pth"
    torch.save(backbone, path)
    with pytest.raises(DataError, match=r"no classification head(.|\n)*head=False, num_classes=N"):
        load_squeezetime(path)
    model = load_squeezetime(path, num_classes=7, head=False)
    assert model.fc.out_features == 7
    clips = torch.randn(2, 3, 4, 32, 32)
    state["cls_head.fc_cls.weight"], state["cls_head.fc_cls.bias"] = model.fc.weight, model.fc.bias
    with torch.no_grad():
        torch.testing.assert_close(model(clips), official_forward(state, clips), atol=1e-4, rtol=1e-4)
    torch.save(state, path)  # a full file, its 5-way head dropped for a new 7-way one
    assert load_squeezetime(path, num_classes=7, head=False).fc.out_features == 7
    with pytest.raises(UserError, match="pass num_classes"):
        load_squeezetime(path, head=False)


def test_mismatches_are_listed_in_one_data_error(tmp_path):
    state = official_state(official_shapes(**TINY))
    del state["backbone.net.layer2.1.conv2.spatial_conv.pos_embed"]
    state["backbone.net.layer2.1.conv2.extra.weight"] = torch.zeros(3)
    state["cls_head.fc_cls.bias"] = torch.zeros(6)
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(DataError) as info:
        load_squeezetime(path)
    message = str(info.value)
    assert "missing keys (1): stages.1.1.body.3.ioi.pos_embed" in message
    assert "unexpected keys (1): layer2.1.conv2.extra.weight" in message
    assert "shape mismatches (1): fc.bias: (6,) vs model (5,)" in message
    with pytest.raises(DataError, match="shape mismatches .*fc.weight: \\(5, 256\\) vs model \\(9, 256\\)"):
        del state["backbone.net.layer2.1.conv2.extra.weight"]
        state["backbone.net.layer2.1.conv2.spatial_conv.pos_embed"] = torch.zeros(1, 16, 4, 4)
        state["cls_head.fc_cls.bias"] = torch.zeros(5)
        torch.save(state, path)
        load_squeezetime(path, num_classes=9)


def test_unreadable_files_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="no checkpoint at .*nothing is downloaded"):
        load_squeezetime(tmp_path / "missing.pth")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(DataError, match="not a readable checkpoint"):
        load_squeezetime(tmp_path / "text.pth")
    torch.save({"conv.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(DataError, match="no SqueezeTime stem"):
        load_squeezetime(tmp_path / "other.pth")
    state = official_state(official_shapes(**TINY))
    state["backbone.net.bn1.weight"] = [1.0]
    torch.save(state, tmp_path / "list.pth")
    with pytest.raises(DataError, match="not a tensor: backbone.net.bn1.weight"):
        load_squeezetime(tmp_path / "list.pth")
    with pytest.raises(DataError, match="its 12 stem input channels are not frames x in_channels=5"):
        state["backbone.net.bn1.weight"] = torch.ones(8)
        torch.save(state, tmp_path / "ok.pth")
        load_squeezetime(tmp_path / "ok.pth", in_channels=5)


class _RunsCode:
    """Unpickling this would create the file `path`: what a malicious checkpoint could do instead."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return Path.touch, (self.path,)


def test_a_legacy_non_zip_file_loads_and_code_in_one_does_not_run(tmp_path):
    """Files saved before torch 1.6 (or with _use_new_zipfile_serialization=False) are not zip archives: they load
    with weights_only alone, which still refuses anything but tensors and containers (issue #37)."""
    state = official_state(official_shapes(**TINY), seed=1)
    path = tmp_path / "legacy.pth"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    clips = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(load_squeezetime(path)(clips), official_forward(state, clips), atol=1e-4,
                                   rtol=1e-4)
    torch.save({**state, "x": _RunsCode(tmp_path / "ran")}, tmp_path / "code.pth", _use_new_zipfile_serialization=False)
    with pytest.raises(DataError, match="not a readable checkpoint"):
        load_squeezetime(tmp_path / "code.pth")
    assert not (tmp_path / "ran").exists()
