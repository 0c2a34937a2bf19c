"""`paperzoo reproduce registers --weights NAME=PATH ...`: the outlier claims measured on DINOv2-layout checkpoints the
test writes (tiny, random weights, with and without registers), on an image folder or the bundled photos; and the
clear errors for unusable input."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from paperzoo.cli import main
from paperzoo.registers import build_vit, load_dinov2
from paperzoo.registers.dinov2 import detect_layout
from paperzoo.registers.images import bundled_photos

OUTLIER_CLAIMS = ["registers.outliers_without_registers", "registers.outliers_on_redundant_patches",
                  "registers.outliers_hold_global_information"]


def tiny(registers: int) -> torch.nn.Module:
    torch.manual_seed(registers)
    return build_vit("vit_tiny", registers, img_size=28, depth=2)  # DINOv2 layout: 2x2 positional grid, patch 14


@pytest.fixture
def checkpoints(tmp_path):
    paths = {}
    for name, registers in (("tiny", 0), ("tiny_reg", 4)):
        paths[name] = tmp_path / f"{name}.pth"
        torch.save(tiny(registers).state_dict(), paths[name])
    return paths


@pytest.fixture
def image_folder(tmp_path):
    """20 images in two class subfolders (ImageNet-style)."""
    rng = np.random.default_rng(0)
    for i in range(20):
        folder = tmp_path / "images" / ("n01" if i % 2 else "n02")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    return tmp_path / "images"


def weights_args(paths) -> list[str]:
    return [arg for name, path in paths.items() for arg in ("--weights", f"{name}={path}")]


def test_layout_is_read_from_the_state_dict(checkpoints):
    state = torch.load(checkpoints["tiny_reg"], weights_only=True)
    assert detect_layout(state) == {"arch": "vit_tiny", "num_registers": 4, "depth": 2, "patch_size": 14}
    model = load_dinov2(checkpoints["tiny_reg"])
    assert (model.num_registers, len(model.blocks), model.embed_dim) == (4, 2, 192)
    assert load_dinov2(checkpoints["tiny"]).num_registers == 0


def test_analyze_vit_reads_the_layout_and_names_the_image_count(tmp_path, checkpoints, image_folder):
    out = tmp_path / "analysis"
    assert main(["analyze-vit", "--weights", str(checkpoints["tiny_reg"]), "--images", str(image_folder),
                 "--img-size", "56", "--max-images", "6", "--out", str(out)]) == 0
    values = json.loads((out / "analysis.json").read_text())
    assert (values["registers"], values["depth"], values["width"], values["images"]) == (4, 2, 192, 6)
    html = (out / "report.html").read_text()
    assert html.count("(6 images, 56 px)</h2>") == 6  # every figure's heading


def test_reproduce_measures_the_given_checkpoints(tmp_path, checkpoints, image_folder, capsys):
    out = tmp_path / "report"
    code = main(["reproduce", *OUTLIER_CLAIMS, "--preset", "smoke", *weights_args(checkpoints),
                 "--images", str(image_folder), "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    payload = json.loads((out / "results.json").read_text())
    results = {r["id"]: r for r in payload["claims"]}
    assert payload["run"]["weights"] == {name: str(path) for name, path in checkpoints.items()}
    outliers = results["registers.outliers_without_registers"]
    measured = outliers["measured"]
    assert measured["checkpoint_0reg"] == "tiny" and measured["checkpoint_reg"] == "tiny_reg"
    assert measured["registers"] == 4 and measured["depth"] == 2 and measured["width"] == 192
    assert measured["parameters"] == sum(p.numel() for p in tiny(0).parameters())
    assert measured["parameters_reg"] == measured["parameters"] + 4 * 192
    # 4 x 4 patches at smoke's 56 px (the paper's 224 at quick and full) of the 20 images; a fraction per image
    assert measured["images"] == 20 and measured["img_size"] == 56 and measured["patch_tokens"] == 20 * 16
    assert len(measured["outlier_fraction_0reg"]) == len(measured["outlier_fraction_4reg"]) == 20
    # the paper's absolute cut (norm > 150) beside the relative one, per image; a random 5M model's norms stay below
    assert measured["outlier_fraction_above_150_0reg"] == measured["outlier_fraction_above_150_4reg"] == [0.0] * 20
    # a 5M-parameter random model is below the paper's scale: not judged, and it says why
    assert outliers["verdict"] == "inconclusive" and "300M parameters" in outliers["reason"]
    assert [p["held"] for p in outliers["preconditions"]] == [False, True]  # scale no, enough images yes
    for r in results.values():
        assert r["verdict"] != "error", (r["id"], r["message"])
        assert "20 images from" in r["message"] and "56 px" in r["message"]  # the count beside every figure
        assert r["figures"] and all(p.endswith(".png") for p in r["figures"])
    info = results["registers.outliers_hold_global_information"]
    assert info["measured"]["labelled_images"] == 20  # two class folders: the class probe has labels
    assert info["measured"]["probe_splits"] == "resampled halves of the same images"  # corrected intervals
    assert info["preconditions"][0]["held"] is False  # but 20 images are fewer than the 40 it needs


def test_reproduce_on_the_bundled_photos(tmp_path, checkpoints, capsys):
    assert len(bundled_photos()) == 20  # scikit-image's 18 photos (a dependency) and scikit-learn's 2
    out = tmp_path / "report"
    assert main(["reproduce", OUTLIER_CLAIMS[0], "--preset", "smoke", *weights_args(checkpoints), "--out", str(out),
                 "--no-progress"]) == 0
    result = json.loads((out / "results.json").read_text())["claims"][0]
    assert result["measured"]["images"] == 20 and "20 bundled photos, 56 px" in result["message"]


@pytest.mark.parametrize("case, message", [
    ("malformed", "NAME=PATH"),
    ("missing", "no checkpoint at"),
    ("not_dinov2", "is not a DINOv2-layout state dict"),
    ("one", "takes two checkpoints"),
    ("both_plain", "one checkpoint without registers and one with"),
    ("other_size", "not the same model size"),
    ("other_paper", "capsnet takes no --weights"),
    ("images_only", "--images is for the checkpoints"),
    ("empty_images", "no image files"),
    ("bad_image", "is not a readable image"),
])
def test_reproduce_weights_bad_input(tmp_path, checkpoints, case, message, capsys):
    torch.save({"conv.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    torch.save(build_vit("vit_tiny", 4, img_size=28, depth=3).state_dict(), tmp_path / "deeper_reg.pth")
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.jpg").write_bytes(b"not a jpeg")
    plain, reg = f"a={checkpoints['tiny']}", f"b={checkpoints['tiny_reg']}"
    args = {"malformed": ["registers", "--weights", str(checkpoints["tiny"])],
            "missing": ["registers", "--weights", plain, "--weights", f"b={tmp_path / 'nope.pth'}"],
            "not_dinov2": ["registers", "--weights", plain, "--weights", f"b={tmp_path / 'other.pth'}"],
            "one": ["registers", "--weights", plain],
            "both_plain": ["registers", "--weights", plain, "--weights", f"b={checkpoints['tiny']}"],
            "other_size": ["registers", "--weights", plain, "--weights", f"b={tmp_path / 'deeper_reg.pth'}"],
            "other_paper": ["capsnet", "--weights", plain, "--weights", reg],
            "images_only": ["registers", "--images", str(tmp_path)],
            "empty_images": ["registers", "--weights", plain, "--weights", reg, "--images", str(tmp_path / "empty")],
            "bad_image": ["registers", "--weights", plain, "--weights", reg, "--images", str(tmp_path / "bad")],
            }[case]
    assert main(["reproduce", *args, "--preset", "smoke", "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # nothing ran


def test_weights_for_a_paper_that_failed_to_import_name_the_import_error():
    from paperzoo.catalog import Entry, Post
    from paperzoo.cli import _check_inputs
    from paperzoo.errors import UserError

    broken = Entry(Post(4, "registers", "ViT registers", "Darcet et al. 2024"),
                   import_error="ModuleNotFoundError: No module named 'skimage'")
    with pytest.raises(UserError, match="registers failed to import.*No module named 'skimage'"):
        _check_inputs([broken], [(broken, [])], {"a": "a.pth", "b": "b.pth"}, None)
