"""The model registry: every registered model builds at a tiny size, runs forward and backward; create_model passes
its arguments on; the preprocessing gives what each model takes; the docs page runs and lists the registry."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import paperzoo
from paperzoo.models import IMAGENET_MEAN, IMAGENET_STD, ImageTransform, TextTransform, VideoTransform, model_info

ROOT = Path(__file__).resolve().parent.parent


def _tensors(out) -> list[torch.Tensor]:
    if torch.is_tensor(out):
        return [out]
    if isinstance(out, dict):
        return [v for v in out.values() if torch.is_tensor(v)]
    if isinstance(out, (tuple, list)):
        return [t for item in out for t in _tensors(item)]
    return [out.logits]  # a causal LM's output


def test_the_registry_covers_every_papers_models():
    names = paperzoo.list_models()
    assert {"vit_tiny", "vit_small_reg4", "vit_giant2_reg4", "capsnet", "capsnet_baseline", "squeezetime",
            "squeezetime_conv", "squeezetime_tfc", "r3d", "r2plus1d", "tsn", "tsm", "conv4", "protonet", "maml",
            "tinygpt"} <= set(names)
    assert names == sorted(names) and len(names) == len(set(names))
    assert paperzoo.list_models("squeezetime") == sorted(["squeezetime", "squeezetime_conv", "squeezetime_tfc", "r3d",
                                                         "r2plus1d", "tsn", "tsm"])
    with pytest.raises(ValueError, match="no models of paper 'causal'; papers with models: batchnorm, capsnet"):
        paperzoo.list_models("causal")


@pytest.mark.parametrize("name", paperzoo.list_models())
def test_every_model_runs_forward_and_backward_at_a_tiny_size(name):
    info = model_info(name)
    torch.manual_seed(0)
    model = paperzoo.create_model(name, **info.tiny)
    args, kwargs = info.example(2)
    outputs = _tensors(model(*args, **kwargs))
    assert outputs and all(t.shape[0] == 2 for t in outputs), [tuple(t.shape) for t in outputs]
    assert all(torch.isfinite(t).all() for t in outputs)
    sum(t.float().sum() for t in outputs).backward()
    # DINOv2's mask token is used only with masks (masked image modelling)
    silent = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None and n != "mask_token"]
    assert not silent, f"parameters without a gradient: {silent[:5]}"


def test_create_model_passes_its_arguments_to_the_constructor():
    vit = paperzoo.create_model("vit_small_reg4", img_size=224)
    assert vit.num_registers == 4 and vit.embed_dim == 384
    assert tuple(vit.pos_embed.shape) == (1, 1 + 16 * 16, 384)  # registers get no position
    assert paperzoo.create_model("vit_tiny", num_registers=2, depth=1).num_registers == 2
    caps = paperzoo.create_model("capsnet", image_size=36, conv_channels=8, primary_types=2)
    assert caps.cfg.image_size == 36 and caps.cfg.primary_capsules == 2 * 10 * 10
    video = paperzoo.create_model("tsm", num_classes=7, scale="tiny", width_mult=0.25, num_frames=4)
    assert video(torch.rand(1, 3, 4, 32, 32)).shape == (1, 7)
    with pytest.raises(ValueError, match=r"unknown model 'vit_smal'. Did you mean: vit_small"):
        paperzoo.create_model("vit_smal")
    with pytest.raises(TypeError, match="create_model\\('capsnet', ...\\)"):
        paperzoo.create_model("capsnet", no_such_setting=1)


def test_image_transform_resizes_crops_and_normalises():
    photo = np.full((300, 400, 3), 51, dtype=np.uint8)  # 51 / 255 = 0.2 in every channel
    x = paperzoo.transforms_for("vit_base")(photo)
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    expected = (0.2 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(x[:, 100, 100], expected, atol=1e-6)
    grey = ImageTransform(size=28, channels=1, resize=28)(torch.rand(2, 3, 56, 84))
    assert grey.shape == (2, 1, 28, 28)
    # the centred crop: a one-pixel line in the middle of a 5-wide image stays in the middle of a 3-wide crop
    line = torch.zeros(1, 3, 5)
    line[0, :, 2] = 1
    assert ImageTransform(size=3, channels=1)(line)[0, 1].tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="smaller than the model's 28x28"):
        ImageTransform(size=28, channels=1)(torch.rand(1, 20, 20))


def test_video_transform_turns_decoded_frames_into_a_normalised_clip():
    frames = torch.full((4, 240, 320, 3), 255, dtype=torch.uint8)
    clip = VideoTransform(crop=224, short_side=256)(frames)
    assert clip.shape == (3, 4, 224, 224)
    expected = (1.0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(clip[:, 0, 0, 0], expected, atol=1e-5)
    assert isinstance(paperzoo.transforms_for("squeezetime"), VideoTransform)


def test_text_transform_tokenises_with_bos_and_pads():
    from paperzoo.dpo import CharTokenizer

    tok = CharTokenizer()
    out = TextTransform(context=64)(["hi", "a"])
    assert out["input_ids"].tolist() == [[tok.bos_token_id, *tok.encode("hi")],
                                         [tok.bos_token_id, *tok.encode("a"), tok.pad_token_id]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    model = paperzoo.create_model("tinygpt")
    assert model(**out).logits.shape == (2, 3, 100)  # TinyGPTConfig.vocab_size


def test_models_without_a_raw_input_say_so():
    with pytest.raises(ValueError, match="protonet takes episodes"):
        paperzoo.transforms_for("protonet")


def test_import_paperzoo_stays_light():
    code = "import sys, paperzoo; assert 'torch' not in sys.modules; paperzoo.list_models; assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_docs_page_example_runs_and_the_site_lists_every_model():
    page = (ROOT / "docs" / "models.md").read_text()
    assert "<!-- models:table -->" in page
    (block,) = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    exec(compile(block, "docs/models.md", "exec"), {})
    spec = __import__("importlib.util").util.spec_from_file_location("docs_hooks", ROOT / "scripts" / "docs_hooks.py")
    hooks = __import__("importlib.util").util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    table = hooks.models_table()
    rows = [line for line in table.splitlines()[2:]]
    assert len(rows) == len(paperzoo.list_models())
    for row, name in zip(rows, paperzoo.list_models()):
        assert row.startswith(f"| `{name}` | [{model_info(name).paper}](") and row.count(" | ") == 5, row
