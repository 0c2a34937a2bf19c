"""Loading the official SqueezeTime checkpoints (Zhai et al. 2024, arXiv 2405.08344) from a local file.

The released files of xinghaochen/SqueezeTime (`SqueezeTime_K400_71.64.pth`, K600, HMDB51) are mmengine checkpoints
of an mmaction2 `Recognizer3D`: {"meta", "state_dict", "message_hub", "optimizer", ...}, the weights named
`backbone.net.<ResNet name>` (the backbone `SqueezeTime` keeps its ResNet in `.net`) and `cls_head.fc_cls.*` (the
`I2DHead`). The ImageNet pre-training is loaded into the ResNet itself, so its names start at `conv1` / `layer1`.
Wrappers "state_dict" / "model" and the prefixes `module.`, `backbone.`, `net.`, `cls_head.` are all accepted.

Nothing is downloaded. A `.pth` is read with `torch.load(weights_only=True)`, which never runs code from the file;
the training bookkeeping mmengine pickles beside the weights (its log-history objects, numpy scalars) is read as
an inert placeholder and dropped, never constructed. A `.safetensors` file is read with safetensors.

The official ResNet's modules and ours (`SqueezeTime`), per block `layer{i}.{j}` -> `stages.{i-1}.{j}`:
  conv1, bn1 (stem)                     -> stem.0, stem.1
  conv1, bn1 / bn2 / conv3, bn3         -> body.0, body.1 / body.4 / body.6, body.7
  conv2 (the CTL `Conv2d`)              -> body.3 (`ChannelTimeConv`)
  conv2.param_conv.{1,2,4} (TFC w)      -> body.3.weights.net.{1,2,4}
  conv2.temporal_conv (TFC conv)        -> body.3.conv
  conv2.spatial_conv (IOI, pos_embed)   -> body.3.ioi; short_conv -> short_conv;
                                           glo_conv.{0,1} -> enter.{0,1}; glo_conv.{3,4,6} -> interact.{0,1,3}
  shortcut_conv, downsample             -> shortcut, downsample
  fc_cls (I2DHead)                      -> fc
The net's configuration is read from the shapes: frames from the stem's input channels, width from its output
channels, blocks per stage, `image_size` = 4 x the first stage's position-encoding size (56 -> 224), classes.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import torch
from safetensors.torch import load_file

from paperzoo.engine.checkpoint import state_dict_mismatches
from paperzoo.errors import DataError, UserError
from paperzoo.squeezetime.model import STAGE_WIDTHS, SqueezeTime

WRAPPER_PREFIXES = ("module.", "backbone.", "net.", "cls_head.")
TOP_MODULES = {"conv1": "stem.0", "bn1": "stem.1", "fc_cls": "fc"}
BLOCK_MODULES = {
    "conv1": "body.0", "bn1": "body.1", "conv2.param_conv.1": "body.3.weights.net.1",
    "conv2.param_conv.2": "body.3.weights.net.2", "conv2.param_conv.4": "body.3.weights.net.4",
    "conv2.temporal_conv": "body.3.conv", "conv2.spatial_conv": "body.3.ioi",
    "conv2.spatial_conv.short_conv": "body.3.ioi.short_conv", "conv2.spatial_conv.glo_conv.0": "body.3.ioi.enter.0",
    "conv2.spatial_conv.glo_conv.1": "body.3.ioi.enter.1", "conv2.spatial_conv.glo_conv.3": "body.3.ioi.interact.0",
    "conv2.spatial_conv.glo_conv.4": "body.3.ioi.interact.1",
    "conv2.spatial_conv.glo_conv.6": "body.3.ioi.interact.3", "bn2": "body.4", "conv3": "body.6", "bn3": "body.7",
    "shortcut_conv.0": "shortcut.0", "shortcut_conv.1": "shortcut.1",
    "downsample.0": "downsample.0", "downsample.1": "downsample.1"}
BLOCK = re.compile(r"layer([1-4])\.(\d+)\.(.+)")  # layer{i}.{j}.<module inside the block>
HEAD = ("fc.weight", "fc.bias")


class _Ignored:
    """Stands in for every non-torch object in a checkpoint: built from nothing, holding nothing."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state) -> None:
        pass


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The flat name -> tensor dict of a local `.pth` / `.safetensors` file, wrappers removed, names as stored."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no checkpoint at {path}: nothing is downloaded here; pass the path of a local SqueezeTime "
                        "file such as SqueezeTime_K400_71.64.pth (xinghaochen/SqueezeTime releases)")
    try:
        if path.suffix == ".safetensors":
            return load_file(path)
        # a zip checkpoint's foreign classes load as inert placeholders; a legacy (pre-1.6, non-zip) file cannot be
        # scanned for them, and loads with weights_only alone (tensors and containers; anything else is refused)
        unknown = torch.serialization.get_unsafe_globals_in_checkpoint(path) if zipfile.is_zipfile(path) else []
        with torch.serialization.safe_globals([(_Ignored, name) for name in unknown]):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise DataError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e})") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise DataError(f"{path} does not hold a state dict (name -> tensor), but a {type(state).__name__}")
    not_tensors = sorted(str(k) for k, v in state.items() if not torch.is_tensor(v))
    if not_tensors:
        raise DataError(f"{path}: entries that are not a tensor: {', '.join(not_tensors)}")
    return dict(state)


def _rename(name: str) -> str:
    """An official name (wrapper prefixes removed) -> ours; a name it does not know is returned unchanged."""
    module, _, leaf = name.rpartition(".")
    if module in TOP_MODULES:
        return f"{TOP_MODULES[module]}.{leaf}"
    block = BLOCK.fullmatch(module)
    if block and block[3] in BLOCK_MODULES:
        return f"stages.{int(block[1]) - 1}.{block[2]}.{BLOCK_MODULES[block[3]]}.{leaf}"
    return name


def _strip_wrappers(name: str) -> str:
    while name.startswith(WRAPPER_PREFIXES):
        name = name.split(".", 1)[1]
    return name


def from_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The official SqueezeTime's (or its mmaction2 recognizer's) state dict with `SqueezeTime`'s names."""
    return {_rename(_strip_wrappers(name)): value for name, value in state.items()}


def _configuration(state: dict[str, torch.Tensor], in_channels: int, source: str) -> dict:
    """SqueezeTime's constructor arguments read from the shapes of a state dict with our names."""
    if "stem.0.weight" not in state:
        raise DataError(f"{source}: no SqueezeTime stem (conv1.weight) among its {len(state)} tensors (first: "
                        f"{', '.join(list(state)[:5])}): is this a SqueezeTime checkpoint?")
    width, channels = state["stem.0.weight"].shape[:2]
    if channels % in_channels:
        raise DataError(f"{source}: its {channels} stem input channels are not frames x in_channels={in_channels}; "
                        "pass the in_channels the net was trained with")
    layers = tuple(len({k.split(".")[2] for k in state if k.startswith(f"stages.{i}.")}) for i in range(4))
    if min(layers) < 1:
        raise DataError(f"{source}: blocks per stage {layers}: every one of the four stages needs a block")
    pos = state.get("stages.0.0.body.3.ioi.pos_embed")
    return {"num_frames": channels // in_channels, "width_mult": width / STAGE_WIDTHS[0], "layers": layers,
            "image_size": 4 * pos.shape[-1] if pos is not None else 224, "in_channels": in_channels}


def check_state_dict(model: SqueezeTime, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise one `DataError` naming every missing key, unexpected key and shape mismatch."""
    mismatches = state_dict_mismatches(model, state)
    if mismatches:
        raise DataError("\n".join([f"{source} does not match SqueezeTime({model.fc.out_features}, "
                                   f"num_frames={model.num_frames}, in_channels={model.in_channels}):",
                                   *mismatches]))


def load_squeezetime(path: str | Path, num_classes: int | None = None, head: bool = True,
                     in_channels: int = 3) -> SqueezeTime:
    """`SqueezeTime` with the weights of a local official checkpoint, loaded strictly, in eval mode.

    head=True: the file's classifier is loaded (num_classes read from it; if given, it must agree).
    head=False: the file's classifier, if any, is dropped and a new `num_classes`-way one is initialised as in
    `SqueezeTime` (fine-tuning, or the backbone-only ImageNet file). Frames, width, blocks and position-encoding
    size are read from the checkpoint; clips are (B, in_channels, num_frames, H, W) normalised with the ImageNet
    mean/std, as in the official configs.
    """
    source = str(path)
    state = from_official(read_checkpoint(path))
    config = _configuration(state, in_channels, source)
    if not head:
        if num_classes is None:
            raise UserError("head=False puts a new classifier on the backbone: pass num_classes")
        state = {k: v for k, v in state.items() if k not in HEAD}
    elif not all(k in state for k in HEAD):
        raise DataError(f"{source} has no classification head (cls_head.fc_cls): pass head=False, num_classes=N "
                        "for a new N-way head on the loaded backbone")
    try:
        model = SqueezeTime(num_classes if num_classes is not None else state["fc.weight"].shape[0], **config)
    except ValueError as e:  # a configuration read from the file that SqueezeTime cannot build
        raise DataError(f"{source}: {e}") from None
    if not head:
        state.update({k: model.state_dict()[k] for k in HEAD})
    check_state_dict(model, state, source)
    model.load_state_dict(state, strict=True)
    return model.eval()
