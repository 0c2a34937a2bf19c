"""`paperzoo analyze-vit` on a tiny random model written by the test, and its clear errors."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from paperzoo.cli import main
from paperzoo.registers import build_vit
from paperzoo.registers.images import preprocess


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "tiny_reg2.pth"
    torch.save(build_vit("vit_tiny", 2, img_size=28).state_dict(), path)
    return path


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(tmp_path / "imgs" / cls / f"{i}.png")
    return tmp_path / "imgs"


def test_analyze_vit_writes_the_report(tmp_path, checkpoint, images, capsys):
    out = tmp_path / "report"
    code = main(["analyze-vit", "--weights", str(checkpoint), "--arch", "vit_tiny", "--registers", "2",
                 "--images", str(images), "--img-size", "56", "--out", str(out)])
    assert code == 0
    html = (out / "report.html").read_text()
    for section in ("Token norms per layer", "High-norm tokens per layer", "Norm map", "[CLS] attention", "Probes",
                    "position_acc_normal"):
        assert section in html
    values = json.loads((out / "analysis.json").read_text())
    assert values["images"] == 4 and values["registers"] == 2
    assert 0 <= values["outlier_fraction"] <= 1
    assert "report:" in capsys.readouterr().out


def test_analyze_vit_bad_inputs(tmp_path, checkpoint, images, capsys):
    base = ["analyze-vit", "--weights", str(checkpoint), "--arch", "vit_tiny", "--registers", "2", "--images",
            str(images), "--out", str(tmp_path / "r")]
    assert main(base + ["--img-size", "50"]) == 2
    assert "not a multiple of the patch size 14" in capsys.readouterr().err
    assert main(base[:6] + ["0"] + base[7:]) == 2  # the checkpoint has 2 registers
    assert "pass num_registers=2" in capsys.readouterr().err
    assert main(["analyze-vit", "--weights", str(tmp_path / "nope.pth")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(base[:6] + ["2", "--images", str(tmp_path / "empty")]) == 2
    assert "no image files" in capsys.readouterr().err


def test_preprocess_resizes_and_centre_crops():
    image = np.zeros((40, 80, 3), dtype=np.uint8)
    image[:, 30:50] = 255  # a white band in the middle columns
    x = preprocess([image], 20)  # shorter side 40 -> 20, width 80 -> 40, centre crop columns 10..30
    assert x.shape == (1, 3, 20, 20)
    assert x[0, :, :, 10].min() > 0.99 and x[0, :, :, 0].max() < 0.01


def test_analyze_vit_does_not_replace_an_analysis_unasked(tmp_path, checkpoint, images, capsys):
    base = ["analyze-vit", "--weights", str(checkpoint), "--arch", "vit_tiny", "--registers", "2", "--images",
            str(images), "--img-size", "28", "--out", str(tmp_path / "r")]
    assert main(base) == 0
    first = (tmp_path / "r" / "analysis.json").read_text()
    assert main(base + ["--threshold", "1"]) == 2
    assert "already holds an analysis" in capsys.readouterr().err
    assert (tmp_path / "r" / "analysis.json").read_text() == first
    assert main(base + ["--threshold", "1", "--overwrite"]) == 0
    assert json.loads((tmp_path / "r" / "analysis.json").read_text()) != json.loads(first)
