import numpy as np
import pytest
import torch
from PIL import Image

from paperzoo.data.episodes import check_disjoint
from paperzoo.data.glyphs import FONT_DIRS, GlyphConfig, find_fonts, glyph_set, script_of
from paperzoo.data.omniglot import omniglot
from paperzoo.errors import DataError

SMALL = GlyphConfig(max_alphabets=6, max_per_alphabet=8, min_per_alphabet=5, renderings=10)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("PAPERZOO_CACHE", str(tmp_path_factory.mktemp("cache1")))
    try:
        yield glyph_set(SMALL, progress=False)
    finally:
        mp.undo()


def test_script_of_unicode_names():
    assert script_of("A") == "LATIN"
    assert script_of("\u0531") == "ARMENIAN"  # ARMENIAN CAPITAL LETTER AYB
    assert script_of("\U00010330") == "GOTHIC"  # GOTHIC LETTER AHSA
    assert script_of("a") is None  # lowercase: would duplicate the capital after size normalisation
    assert script_of("\u00c1") is None  # LATIN CAPITAL LETTER A WITH ACUTE
    assert script_of("1") is None and script_of("\U0001d400") is None  # digit; MATHEMATICAL BOLD CAPITAL A


def test_glyph_set_counts_and_shapes(small):
    counts = torch.bincount(small.labels)
    assert small.images.shape == (len(small.labels), 1, 28, 28) and small.images.dtype == torch.uint8
    assert (counts == SMALL.renderings).all()
    per_alphabet = torch.bincount(small.class_alphabet)
    assert len(small.alphabets) <= 6 and len(per_alphabet) == len(small.alphabets)
    assert ((per_alphabet >= SMALL.min_per_alphabet) & (per_alphabet <= SMALL.max_per_alphabet)).all()
    # every rendering has ink, and renderings of one class differ from each other
    assert (small.images.flatten(1).amax(1) > 64).all()
    first = small.images[small.labels == 0].float()
    assert (first[1:] - first[0]).abs().amax() > 50


def test_glyph_splits_are_by_alphabet(small):
    check_disjoint(small.splits)
    assert sorted(sum(small.splits.values(), [])) == list(range(small.num_classes))
    alphabets = {name: set(small.class_alphabet[c].tolist()) for name, c in small.splits.items()}
    assert not alphabets["train"] & alphabets["test"] and not alphabets["val"] & alphabets["test"]


def test_glyph_build_is_deterministic(small, tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERZOO_CACHE", str(tmp_path))
    again = glyph_set(SMALL, progress=False)
    assert torch.equal(again.images, small.images) and again.class_names == small.class_names
    other = glyph_set(GlyphConfig(**{**SMALL.__dict__, "seed": 1}), progress=False)
    assert not torch.equal(other.images[:10], small.images[:10]) or other.class_names != small.class_names


def test_dejavu_fallback_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERZOO_CACHE", str(tmp_path))
    dejavu = [d for d in FONT_DIRS if "dejavu" in str(d)]
    if not dejavu[0].is_dir():
        pytest.skip("DejaVu fonts not installed (apt-get install fonts-dejavu-core)")
    fonts, note = find_fonts(dejavu)
    assert fonts and "Noto fonts not found" in note
    chars = glyph_set(GlyphConfig(max_alphabets=3, max_per_alphabet=5, min_per_alphabet=5, renderings=3),
                      font_dirs=dejavu, progress=False)
    assert "Noto fonts not found" in chars.notes and len(chars.alphabets) == 3


def test_no_fonts_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no fonts to render glyphs"):
        find_fonts([tmp_path])


def _write_tree(root):
    rng = np.random.default_rng(0)
    layout = {"images_background": {"Alpha": 2, "Beta": 2, "Gamma": 1}, "images_evaluation": {"Delta": 2}}
    for part, alphabets in layout.items():
        for alphabet, n_chars in alphabets.items():
            for c in range(n_chars):
                folder = root / part / alphabet / f"character{c + 1:02d}"
                folder.mkdir(parents=True)
                for d in range(3):
                    img = np.full((105, 105), 255, np.uint8)  # Omniglot: black strokes on white
                    img[rng.integers(0, 90):, 40:60] = 0
                    Image.fromarray(img).save(folder / f"{c:04d}_{d:02d}.png")


def test_omniglot_reader_on_a_tiny_tree(tmp_path):
    _write_tree(tmp_path)
    chars = omniglot(tmp_path)
    assert chars.num_classes == 7 and chars.images.shape == (21, 1, 28, 28)
    assert torch.equal(torch.bincount(chars.labels), torch.full((7,), 3))
    assert chars.alphabets == ("Alpha", "Beta", "Gamma", "Delta")
    assert chars.class_names[-1] == "Delta/character02"
    assert chars.images[:, 0, 27, 0].max() == 0 and chars.images[:, 0, 27, 14].min() == 255  # inverted: ink 255
    assert chars.splits["test"] == [5, 6]  # the evaluation alphabet
    assert len(chars.splits["val"]) >= 1
    check_disjoint(chars.splits)


def test_omniglot_reader_errors(tmp_path):
    with pytest.raises(DataError, match="neither images_background"):
        omniglot(tmp_path)
    (tmp_path / "images_background" / "Alpha").mkdir(parents=True)
    with pytest.raises(DataError, match="no character folders"):
        omniglot(tmp_path)


@pytest.mark.parametrize("damage", [lambda png: b"not an image", lambda png: png[:len(png) // 2]],
                         ids=["not-png", "truncated-png"])
def test_omniglot_reader_names_an_unreadable_drawing(tmp_path, damage):
    _write_tree(tmp_path)
    bad = tmp_path / "images_background" / "Beta" / "character02" / "0001_01.png"
    bad.write_bytes(damage(bad.read_bytes()))
    with pytest.raises(DataError, match=r"0001_01\.png is not a readable PNG drawing .*delete this file, or extract "
                                        r"the Omniglot archive again"):
        omniglot(tmp_path)
