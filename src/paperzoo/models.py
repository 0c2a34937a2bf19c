"""One registry of paperzoo's models: `list_models()`, `create_model(name, **kwargs)`, `model_info(name)` and
`transforms_for(name)` (timm's habit: a plain dict of names, one loop for the tests).

Every paper builds its models its own way (`build_vit(arch, R)`, `build_video_model(name, classes)`, a class and its
config); the registry names each one and says what it takes: `model_info(name).input` describes the input tensors
(shapes, dtype, range, normalisation) and `transforms_for(name)` gives the preprocessing that turns a raw image, clip
or text into that input. Keyword arguments go to the model's own constructor (or its config dataclass), e.g.
`create_model("vit_small_reg4", img_size=224)` or `create_model("capsnet", image_size=36)`. Nothing downloads:
the weights are random unless you load a checkpoint (`paperzoo.registers.load_dinov2`,
`paperzoo.squeezetime.load_squeezetime`, the engine's checkpoints).

The paper modules are imported when a model is built, not when this module is.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""The per-channel mean of ImageNet's RGB images in [0, 1] (DINOv2's and SqueezeTime's normalisation)."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""The per-channel standard deviation that goes with `IMAGENET_MEAN`."""


def _as_float_images(image: Any, channels: int) -> torch.Tensor:
    """A PIL image, an (H, W[, C]) numpy array or a (C, H, W) / (B, C, H, W) tensor -> float (B?, C, H, W) in [0, 1]
    with `channels` channels (RGB averaged to grey, grey repeated to RGB)."""
    if not torch.is_tensor(image):
        import numpy as np

        array = np.asarray(image)
        if array.ndim not in (2, 3):
            raise ValueError(f"expected an image (H, W) or (H, W, C), got an array of shape {array.shape}")
        image = torch.from_numpy(array.copy())
        image = image[None] if image.dim() == 2 else image.permute(2, 0, 1)  # (C, H, W)
    if image.dim() not in (3, 4):
        raise ValueError(f"expected an image (C, H, W) or a batch (B, C, H, W), got shape {tuple(image.shape)}")
    image = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
    have = image.shape[-3]
    if have == 4:  # RGBA: drop alpha
        image, have = image[..., :3, :, :], 3
    if have != channels:
        if have == 3 and channels == 1:
            image = image.mean(dim=-3, keepdim=True)
        elif have == 1:
            image = image.expand(*image.shape[:-3], channels, *image.shape[-2:])
        else:
            raise ValueError(f"cannot turn {have} channels into {channels}")
    return image


@dataclass(frozen=True)
class ImageTransform:
    """Raw image -> model input: to float in [0, 1] (uint8 divided by 255), to `channels` channels, the shorter side
    resized to `resize` (bilinear, antialiased; 0 = no resizing), the centred `size` x `size` crop, then
    `(x - mean) / std` per channel. Takes a PIL image, an (H, W[, C]) array, or a (C, H, W) / (B, C, H, W) tensor;
    returns (C, size, size) or (B, C, size, size) float32."""

    size: int
    channels: int = 3
    resize: int = 0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    def __call__(self, image: Any) -> torch.Tensor:
        x = _as_float_images(image, self.channels)
        single = x.dim() == 3
        x = x[None] if single else x  # (B, C, H, W)
        if self.resize:
            h, w = x.shape[-2:]
            scale = self.resize / min(h, w)
            shape = (max(self.resize, round(h * scale)), max(self.resize, round(w * scale)))
            x = F.interpolate(x, size=shape, mode="bilinear", align_corners=False, antialias=scale < 1)
        h, w = x.shape[-2:]
        if h < self.size or w < self.size:
            raise ValueError(f"the image is {h}x{w}, smaller than the model's {self.size}x{self.size}: resize it "
                             "first (or use a transform with `resize`)")
        top, left = (h - self.size) // 2, (w - self.size) // 2
        x = x[..., top:top + self.size, left:left + self.size]
        mean = torch.tensor(self.mean).view(-1, 1, 1)
        std = torch.tensor(self.std).view(-1, 1, 1)
        x = (x - mean) / std
        return x[0] if single else x


@dataclass(frozen=True)
class VideoTransform:
    """Raw clip -> model input: frames as `paperzoo.data.video.read_video` returns them, (T, H, W, 3) uint8, or a
    float (3, T, H, W) clip in [0, 1]; the shorter side resized to `short_side`, the centred `crop` x `crop`,
    normalised per channel. Returns (3, T, crop, crop) float32. Choosing the T frames (e.g. 16 at interval 4,
    `paperzoo.data.video.sample_indices`) comes before."""

    crop: int = 224
    short_side: int = 256
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        from paperzoo.data.video import center_crop, resize_short

        if clip.dim() != 4:
            raise ValueError(f"expected frames (T, H, W, 3) uint8 or a clip (3, T, H, W), got {tuple(clip.shape)}")
        if clip.dtype == torch.uint8:
            if clip.shape[-1] != 3:
                raise ValueError(f"uint8 frames must be (T, H, W, 3), got {tuple(clip.shape)}")
            clip = clip.permute(3, 0, 1, 2).float() / 255.0  # (3, T, H, W)
        clip = center_crop(resize_short(clip.float(), self.short_side), self.crop)  # (3, T, crop, crop)
        mean = torch.tensor(self.mean).view(-1, 1, 1, 1)
        std = torch.tensor(self.std).view(-1, 1, 1, 1)
        return (clip - mean) / std


@dataclass(frozen=True)
class TextTransform:
    """Text -> `TinyGPT` input: each string encoded by paperzoo's character tokenizer (`CharTokenizer`), with BOS
    first, right-padded; returns {"input_ids": (B, T) int64, "attention_mask": (B, T) int64 (1 = token)}, to call
    the model as `model(**inputs)`. T is the longest string + 1, at most `context` (longer texts keep their
    beginning)."""

    context: int = 64

    def __call__(self, texts: str | list[str]) -> dict[str, torch.Tensor]:
        from paperzoo.dpo.model import CharTokenizer

        tokenizer = CharTokenizer()
        texts = [texts] if isinstance(texts, str) else list(texts)
        ids = [tokenizer.encode(t, add_special_tokens=True)[: self.context] for t in texts]
        length = max(map(len, ids))
        input_ids = torch.full((len(ids), length), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(ids), length), dtype=torch.long)
        for row, seq in enumerate(ids):
            input_ids[row, :len(seq)] = torch.tensor(seq)
            mask[row, :len(seq)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}


@dataclass(frozen=True)
class ModelInfo:
    """One registered model: `create_model(name)` calls `build(**kwargs)`.

    `input` and `output` say what `forward` takes and returns; `transform` builds the preprocessing of
    `transforms_for(name)` (None where the input is not an image, a clip or a text, e.g. episodes of images or
    token ids of questions); `tiny` are constructor arguments for a small instance and `example(batch)` the
    arguments of a forward pass of that tiny instance (the registry's tests run every model this way)."""

    name: str
    paper: str
    summary: str
    input: str
    output: str
    build: Callable[..., nn.Module]
    tiny: dict = field(default_factory=dict)
    example: Callable[[int], tuple[tuple, dict]] = lambda batch: ((), {})
    transform: Callable[[], Callable] | None = None


_REGISTRY: dict[str, ModelInfo] = {}


def register(info: ModelInfo) -> ModelInfo:
    """Add `info` to the registry under `info.name` (a name can be registered once)."""
    if info.name in _REGISTRY:
        raise ValueError(f"model {info.name!r} is registered twice")
    _REGISTRY[info.name] = info
    return info


def list_models(paper: str | None = None) -> list[str]:
    """The registered model names, sorted; with `paper` (a paperzoo module: "registers", "squeezetime", ...)
    only that paper's."""
    if paper is not None and paper not in {info.paper for info in _REGISTRY.values()}:
        papers = sorted({info.paper for info in _REGISTRY.values()})
        raise ValueError(f"no models of paper {paper!r}; papers with models: {', '.join(papers)}")
    return sorted(name for name, info in _REGISTRY.items() if paper is None or info.paper == paper)


def model_info(name: str) -> ModelInfo:
    """The registry entry of `name`: paper, summary, input and output, builder; an unknown name is a `ValueError`
    that suggests the closest names."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} See paperzoo.list_models() for all "
                         f"{len(_REGISTRY)} names")
    return _REGISTRY[name]


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """A new model `name` with random weights; `kwargs` go to its constructor (or config), e.g.
    `create_model("vit_small_reg4", img_size=224)`. See `model_info(name)` for its input and output."""
    info = model_info(name)
    try:
        return info.build(**kwargs)
    except TypeError as e:
        raise TypeError(f"create_model({name!r}, ...): {e}. Its constructor: {info.summary}") from None


def transforms_for(name: str) -> Callable:
    """The preprocessing that turns a raw image, clip or text into what model `name` takes (`ImageTransform`,
    `VideoTransform` or `TextTransform`, with the sizes and normalisation of the model's defaults); a
    `ValueError` for a model whose input is none of those."""
    info = model_info(name)
    if info.transform is None:
        raise ValueError(f"{name} takes {info.input}: there is no single raw input to preprocess")
    return info.transform()


# --- the models ----------------------------------------------------------------------------------------------------

def _images(channels: int, size: int) -> Callable[[int], tuple[tuple, dict]]:
    return lambda batch: ((torch.rand(batch, channels, size, size),), {})


def _vit(arch: str, registers: int) -> Callable[..., nn.Module]:
    def build(**kwargs):
        from paperzoo.registers import build_vit

        return build_vit(arch, kwargs.pop("num_registers", registers), **kwargs)

    return build


_VIT_SIZES = {"vit_tiny": "ViT-Ti/14 (DeiT-Ti size, 5.7M)", "vit_small": "ViT-S/14 (22M)", "vit_base": "ViT-B/14 (86M)",
              "vit_large": "ViT-L/14 (300M)", "vit_giant2": "ViT-g/14 (1.1B, SwiGLU)"}
for _arch, _size in _VIT_SIZES.items():
    for _registers in (0, 4):
        register(ModelInfo(
            name=_arch + (f"_reg{_registers}" if _registers else ""), paper="registers",
            summary=f"DINOv2 {_size}" + (f" with {_registers} registers" if _registers else "") +
                    "; build_vit(arch, num_registers, **overrides) (img_size, num_classes, ...)",
            input="images (B, 3, H, W) float, RGB in [0, 1] normalised with ImageNet's mean/std; H, W multiples of "
                  "14 (518 by default; the positional embedding is interpolated for other sizes)",
            output="(B, D) normalised [CLS] features (or (B, num_classes) logits with num_classes > 0); "
                   "forward_features(x) gives DINOv2's dict with the register and patch tokens",
            build=_vit(_arch, _registers),
            tiny=dict(img_size=28, patch_size=14, depth=1, embed_dim=32, num_heads=2),
            example=_images(3, 28),
            transform=lambda: ImageTransform(size=224, channels=3, resize=256, mean=IMAGENET_MEAN,
                                             std=IMAGENET_STD)))


def _capsnet(**kwargs):
    from paperzoo.capsnet import CapsNet, CapsNetConfig

    return CapsNet(CapsNetConfig(**kwargs))


def _capsnet_baseline(**kwargs):
    from paperzoo.capsnet import BaselineCNN, BaselineConfig

    return BaselineCNN(BaselineConfig(**kwargs))


register(ModelInfo(
    name="capsnet", paper="capsnet",
    summary="CapsNet with dynamic routing; CapsNetConfig fields as keywords (image_size=36 for MultiMNIST)",
    input="images (B, 1, 28, 28) float in [0, 1] (image_size x image_size), not normalised; forward(images, "
          "labels=None): with labels (B,) the decoder reconstructs the true class's capsule",
    output="(lengths (B, 10), capsules (B, 10, 16), reconstruction (B, 1, 28, 28))",
    build=_capsnet, tiny=dict(conv_channels=8, primary_types=2, decoder_hidden=(16, 16)),
    example=_images(1, 28), transform=lambda: ImageTransform(size=28, channels=1, resize=28)))
register(ModelInfo(
    name="capsnet_baseline", paper="capsnet",
    summary="the CapsNet paper's CNN baseline; BaselineConfig fields as keywords",
    input="images (B, 1, 28, 28) float in [0, 1] (image_size x image_size), not normalised",
    output="(B, 10) logits",
    build=_capsnet_baseline, tiny=dict(channels=(4, 4, 4), hidden=(8, 8)),
    example=_images(1, 28), transform=lambda: ImageTransform(size=28, channels=1, resize=28)))


def _video(name: str) -> Callable[..., nn.Module]:
    def build(num_classes: int = 400, **kwargs):
        from paperzoo.squeezetime import build_video_model

        return build_video_model(name, num_classes, **kwargs)

    return build


_VIDEO = {"squeezetime": "SqueezeTime-50 (the paper's K400 model)",
          "squeezetime_conv": "SqueezeTime with a plain convolution as its CTL (ablation)",
          "squeezetime_tfc": "SqueezeTime with TFC but no IOI branch (ablation)",
          "r3d": "R3D-18, a 3D ResNet", "r2plus1d": "R(2+1)D-18, a factorised 3D ResNet",
          "tsn": "TSN: a 2D ResNet-18 per frame, scores averaged", "tsm": "TSM: TSN with the temporal shift"}
for _name, _what in _VIDEO.items():
    register(ModelInfo(
        name=_name, paper="squeezetime",
        summary=f"{_what}; build_video_model(name, num_classes=400, num_frames=16, image_size=224, width_mult=1.0, "
                "scale='paper' or 'tiny', in_channels=3)",
        input="clips (B, 3, T, H, W) float, RGB in [0, 1] normalised with ImageNet's mean/std; T = num_frames "
              "(16), H = W = image_size (224): 16 frames at interval 4, short side 256, centre crop 224",
        output="(B, num_classes) logits",
        build=_video(_name), tiny=dict(num_classes=4, num_frames=4, image_size=32, scale="tiny", width_mult=0.25),
        example=lambda batch: ((torch.rand(batch, 3, 4, 32, 32),), {}),
        transform=lambda: VideoTransform(crop=224, short_side=256)))


def _episodes(batch: int, ways: int = 3, shots: int = 1, queries: int = 2, size: int = 28):
    support_x = torch.rand(batch, ways * shots, 1, size, size)  # (T, S, 1, H, W)
    support_y = torch.arange(ways).repeat_interleave(shots).repeat(batch, 1)  # (T, S)
    query_x = torch.rand(batch, ways * queries, 1, size, size)  # (T, Q, 1, H, W)
    return (support_x, support_y, query_x), {}


def _conv4(**kwargs):
    from paperzoo.metalearning import Conv4

    return Conv4(**kwargs)


def _conv4_classifier(n_out: int = 5, **kwargs):
    from paperzoo.metalearning import ConvClassifier

    return ConvClassifier(n_out, **kwargs)


def _protonet(channels: int = 64, in_channels: int = 1):
    from paperzoo.metalearning import Conv4, ProtoNet

    return ProtoNet(Conv4(in_channels, channels))


def _maml(n_way: int = 5, channels: int = 64, in_channels: int = 1, image_size: int = 28, **kwargs):
    from paperzoo.metalearning import MAML, ConvClassifier

    return MAML(ConvClassifier(n_way, in_channels, channels, image_size, episodic=True), **kwargs)


_GLYPHS = "images (B, 1, 28, 28) float in [0, 1] (glyphs or Omniglot, ink = 1; `as_float` converts uint8)"
_EPISODES = ("episodes: support_x (T, S, 1, 28, 28) float in [0, 1], support_y (T, S) class indices 0..N-1, "
             "query_x (T, Q, 1, 28, 28)")
register(ModelInfo(
    name="conv4", paper="metalearning", summary="the Conv-4 few-shot encoder; Conv4(in_channels=1, channels=64, "
                                                "episodic=False)",
    input=_GLYPHS, output="(B, channels * (H/16) * (W/16)) features: (B, 64) at 28x28",
    build=_conv4, tiny=dict(channels=4), example=_images(1, 28),
    transform=lambda: ImageTransform(size=28, channels=1, resize=28)))
register(ModelInfo(
    name="conv4_classifier", paper="metalearning",
    summary="Conv-4 and a linear or cosine head (MAML's learner, the transfer baseline); ConvClassifier(n_out=5, "
            "in_channels=1, channels=64, image_size=28, episodic=False, head='linear')",
    input=_GLYPHS, output="(B, n_out) logits",
    build=_conv4_classifier, tiny=dict(channels=4), example=_images(1, 28),
    transform=lambda: ImageTransform(size=28, channels=1, resize=28)))
register(ModelInfo(
    name="protonet", paper="metalearning", summary="Prototypical Networks on a Conv-4 encoder (channels=64)",
    input=_EPISODES, output="(T, Q, N) logits: negative squared distances to the N class prototypes",
    build=_protonet, tiny=dict(channels=4), example=_episodes))
register(ModelInfo(
    name="maml", paper="metalearning",
    summary="MAML around a Conv-4 classifier with episodic batch norm; n_way=5, channels=64, and MAML's "
            "keywords (inner_lr, inner_steps, first_order, learn_inner_lr, bn, task_chunk)",
    input=_EPISODES, output="(T, Q, n_way) logits of the queries after adapting to each task's support set",
    build=_maml, tiny=dict(n_way=3, channels=4), example=_episodes))


def _tinygpt(**kwargs):
    from paperzoo.dpo import TinyGPT, TinyGPTConfig

    return TinyGPT(TinyGPTConfig(**kwargs))


register(ModelInfo(
    name="tinygpt", paper="dpo",
    summary="paperzoo's small causal LM (the DPO pipeline's policy and reference); TinyGPTConfig fields as keywords "
            "(vocab_size=100, context=64, hidden_size=96, layers=2, heads=4)",
    input="input_ids (B, T) int64 token ids < vocab_size, T <= context; attention_mask (B, T), 1 = token "
          "(CharTokenizer's ids fit the default vocabulary)",
    output="an output with .logits (B, T, vocab_size), as a transformers causal LM",
    build=_tinygpt, tiny=dict(hidden_size=16, layers=1, heads=2, context=8),
    example=lambda batch: ((torch.randint(0, 100, (batch, 8)),), {}),
    transform=lambda: TextTransform(context=64)))


def _multimodal(modalities: tuple[str, ...] = ("image", "audio"), **kwargs):
    from paperzoo.gblend import MultiModalNet
    from paperzoo.gblend.method import INPUT_SIZES

    return MultiModalNet({m: INPUT_SIZES[m] for m in modalities}, **kwargs)


register(ModelInfo(
    name="multimodal_net", paper="gblend",
    summary="the late/mid-fusion network with a head per modality (Gradient-Blending); modalities=('image', 'audio'), "
            "hidden=256, dim=128, classes=10, fusion='late', dropout=0.0",
    input="keyword inputs per modality: image=(B, 1, 28, 28) and audio=(B, 1, 40, 51) log-mel spectrograms (AV-digits), "
          "flattened inside",
    output="{head: (B, classes) logits} for 'image', 'audio' and 'fused'",
    build=_multimodal, tiny=dict(hidden=8, dim=4),
    example=lambda batch: ((), {"image": torch.rand(batch, 1, 28, 28), "audio": torch.rand(batch, 1, 40, 51)})))


def _saaa(dim: int = 64, glimpses: int = 2, word_dim: int = 32):
    from paperzoo.causal_vqa import ANSWERS, SAAA
    from paperzoo.causal_vqa.data import WORDS

    return SAAA(len(WORDS), len(ANSWERS), dim, glimpses, word_dim)


register(ModelInfo(
    name="saaa", paper="causal_vqa",
    summary="the SAAA-style VQA model over the generated scenes' vocabulary and answers; dim=64, glimpses=2, "
            "word_dim=32",
    input="images (B, 3, 32, 32) float in [0, 1] (normalised inside), questions (B, L) token ids, 0 = padding "
          "(paperzoo.causal_vqa.data.encode_question)",
    output="(B, len(ANSWERS)) logits over the answers",
    build=_saaa, tiny=dict(dim=8, word_dim=4),
    example=lambda batch: ((torch.rand(batch, 3, 32, 32), torch.randint(1, 10, (batch, 6))), {})))


def _conv_encoder(**kwargs):
    from paperzoo.multiview_ssl import ConvEncoder

    return ConvEncoder(**kwargs)


def _mnist_mlp(**kwargs):
    from paperzoo.multigpu import MnistMLP

    return MnistMLP(**kwargs)


def _small_cnn(**kwargs):
    from paperzoo.batchnorm import small_cnn

    return small_cnn(**kwargs)


_DIGITS = "images (B, 1, 28, 28) float in [0, 1] (MNIST-style digits), not normalised"
register(ModelInfo(
    name="multiview_conv_encoder", paper="multiview_ssl",
    summary="the two-view SSL encoder; ConvEncoder(channels=32, feature_dim=128)",
    input=_DIGITS, output="(B, feature_dim) representations",
    build=_conv_encoder, tiny=dict(channels=4, feature_dim=8), example=_images(1, 28),
    transform=lambda: ImageTransform(size=28, channels=1, resize=28)))
register(ModelInfo(
    name="mnist_mlp", paper="multigpu", summary="the multi-GPU post's MLP; MnistMLP(hidden=256, classes=10)",
    input=_DIGITS, output="(B, classes) logits",
    build=_mnist_mlp, tiny=dict(hidden=8), example=_images(1, 28),
    transform=lambda: ImageTransform(size=28, channels=1, resize=28)))
register(ModelInfo(
    name="bn_small_cnn", paper="batchnorm",
    summary="the batch-norm study's CNN; small_cnn(norm='batch', 'group' or 'none', channels=(16, 32), groups=8, "
            "classes=10)",
    input="images (B, 1, H, W) float (any size: global average pooling)", output="(B, classes) logits",
    build=_small_cnn, tiny=dict(channels=(4, 8), groups=2), example=_images(1, 28),
    transform=lambda: ImageTransform(size=28, channels=1, resize=28)))
