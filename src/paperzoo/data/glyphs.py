"""An Omniglot-like set of real character classes, rendered offline from the installed fonts.

Omniglot (Lake, Salakhutdinov, Tenenbaum, Science 2015: 1,623 characters of 50 alphabets, 20 drawings each; the
few-shot benchmark of Vinyals et al. 2016, arXiv 1606.04080, Snell et al. 2017, arXiv 1703.05175, and Finn et al.
2017, arXiv 1703.03400) cannot be downloaded here. This module builds its stand-in from fonts that Debian packages:

  classes     the letters (Unicode categories Lu and Lo, no "... WITH <diacritic>" variants, no lowercase) of every
              script the fonts cover; the script, read from the Unicode character name ("ARMENIAN CAPITAL LETTER
              AYB" -> ARMENIAN), is the alphabet; at most `max_per_alphabet` letters spread over each script;
              classes whose clean renderings are near pixel-duplicates of an earlier class are dropped
  renderings  `renderings` images per class, cycling over every installed font that has the letter (Noto Sans,
              Noto Serif and script-specific Noto styles, GNU Unifont, DejaVu) with a random stroke width
              (thinner / as is / thicker) and a small random affine map (rotation, shear, scale, shift), 28x28
  splits      by alphabet, like Omniglot's background/evaluation alphabets: meta-train, meta-val and meta-test
              alphabets are disjoint (fractions 1100/100/423 of Omniglot's classes)

Font licences: Noto (fonts-noto-core) SIL Open Font License 1.1; GNU Unifont (fonts-unifont) GPL-2+ with the font
embedding exception, or SIL OFL 1.1; DejaVu (fonts-dejavu-core/-extra) the Bitstream Vera / Arev free licence.
Without the Noto fonts the builder falls back to DejaVu and Unifont (fewer scripts) and says so in `notes`.

The set is built once per configuration and cached under `cache_dir("glyphs")` (a progress bar shows the build).
"""

from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from paperzoo.data.cache import cache_dir
from paperzoo.errors import DataError

FONT_DIRS = (Path("/usr/share/fonts/truetype/noto"), Path("/usr/share/fonts/opentype/unifont"),
             Path("/usr/share/fonts/truetype/unifont"), Path("/usr/share/fonts/truetype/dejavu"))
DEJAVU_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
                "DejaVuSansMono.ttf")
UNIFONT_FILES = ("unifont.otf", "unifont_upper.otf", "unifont.ttf")
NOTO_SKIP = ("Display", "Mono", "Symbols", "Math", "Music", "Numerals", "Siyaq", "Emoji", "SignWriting")
# words of a Unicode name that end the script part: "OLD ITALIC LETTER A" -> "OLD ITALIC"
SCRIPT_SKIP = ("MATHEMATICAL", "FULLWIDTH", "HALFWIDTH", "CJK COMPATIBILITY")  # styled copies of other scripts
NAME_KEYWORDS = ("LETTER", "CAPITAL", "SYLLABLE", "SYLLABICS", "CHARACTER", "IDEOGRAPH", "HIEROGLYPH", "SIGN",
                 "LIGATURE", "VOWEL", "CONSONANT", "LOGOGRAM")
CANVAS, BOX = 56, 40  # glyphs are fitted into a 40x40 box on a 56x56 canvas, augmented, then pooled to 28x28
SPLIT_FRACTIONS = (1100 / 1623, 100 / 1623, 423 / 1623)  # Omniglot's meta-train / val / test class shares


@dataclass
class CharacterSet:
    """Images of character classes grouped into alphabets (the glyph set or a real Omniglot folder).

    images (N, 1, H, W) uint8 (ink = 255), labels (N,) class indices, class_alphabet (C,) alphabet index of each
    class; `splits` maps "train"/"val"/"test" to class indices whose alphabets are disjoint."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    class_alphabet: torch.Tensor
    alphabets: tuple[str, ...]
    splits: dict[str, list[int]]
    notes: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def float_images(self) -> torch.Tensor:
        return self.images.float() / 255.0  # (N, 1, H, W) in [0, 1]

    def split(self, name: str) -> list[int]:
        if name not in self.splits:
            raise DataError(f"unknown split {name!r}; choose from {sorted(self.splits)}")
        return self.splits[name]


@dataclass(frozen=True)
class GlyphConfig:
    """What `glyph_set` renders (cached per config): how many letters per script and renderings per letter, the image
    size and the seed."""

    max_per_alphabet: int = 20
    """At most this many letters (classes) per script."""
    min_per_alphabet: int = 10
    """Scripts with fewer distinct letters are left out."""
    renderings: int = 20
    """Images per letter, cycling over the fonts that have it."""
    max_alphabets: int = 0
    """0 = every script found; else a seeded choice of that many (small sets for tests)."""
    size: int = 28
    """Side of the images in pixels (a divisor of the drawing canvas)."""
    seed: int = 0
    """Seed of the letter choice, the strokes and the small affine maps."""

    def validate(self) -> None:
        if self.renderings < 1 or self.min_per_alphabet < 1 or self.max_per_alphabet < self.min_per_alphabet:
            raise DataError(f"bad glyph config {self}: need renderings >= 1 and "
                            "max_per_alphabet >= min_per_alphabet >= 1")
        if CANVAS % self.size:
            raise DataError(f"glyph size must divide {CANVAS}, got {self.size}")


def script_of(char: str) -> str | None:
    """The script part of a letter's Unicode name, or None for what is not a standalone base letter."""
    if unicodedata.category(char) not in ("Lu", "Lo"):
        return None
    name = unicodedata.name(char, "")
    if not name or " WITH " in name:
        return None
    words = name.split()
    for i, word in enumerate(words):
        if i > 0 and word.startswith(NAME_KEYWORDS):
            script = " ".join(words[:i])
            return None if script.startswith(SCRIPT_SKIP) else script
    return None


def find_fonts(font_dirs=FONT_DIRS) -> tuple[list[Path], str]:
    """The font files to render with, and a note when the Noto fonts are missing (fallback to DejaVu/Unifont)."""
    noto, others = [], []
    for folder in map(Path, font_dirs):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            stem = path.stem
            if stem.startswith("Noto") and stem.endswith(("-Regular", "-Bold")) and path.suffix == ".ttf":
                if not any(skip in stem for skip in NOTO_SKIP):
                    noto.append(path)
            elif path.name in DEJAVU_FILES or path.name in UNIFONT_FILES:
                others.append(path)
    fonts = noto + others
    if not fonts:
        raise DataError("no fonts to render glyphs from: install them with "
                        "`apt-get install fonts-noto-core fonts-unifont fonts-dejavu-core`")
    note = "" if noto else ("Noto fonts not found (fonts-noto-core): glyphs rendered from DejaVu/Unifont only, "
                            "so fewer scripts")
    return fonts, note


def _font_cmaps(fonts: list[Path]) -> dict[Path, set[int]]:
    from fontTools.ttLib import TTFont

    return {path: set(TTFont(path, lazy=True)["cmap"].getBestCmap()) for path in fonts}


def _choose_letters(cmaps: dict[Path, set[int]], cfg: GlyphConfig) -> dict[str, list[int]]:
    """script -> code points (sorted), each script capped at max_per_alphabet letters spread over its range."""
    by_script: dict[str, set[int]] = {}
    for codepoints in cmaps.values():
        for cp in codepoints:
            if 0xD800 <= cp <= 0xDFFF:
                continue
            script = script_of(chr(cp))
            if script:
                by_script.setdefault(script, set()).add(cp)
    chosen = {}
    for script in sorted(by_script):
        cps = sorted(by_script[script])
        if len(cps) < cfg.min_per_alphabet:
            continue
        picks = np.linspace(0, len(cps) - 1, min(cfg.max_per_alphabet, len(cps))).round().astype(int)
        chosen[script] = [cps[i] for i in picks]
    if cfg.max_alphabets:
        names = sorted(chosen)
        keep = np.random.default_rng(cfg.seed).permutation(len(names))[: cfg.max_alphabets]
        chosen = {names[i]: chosen[names[i]] for i in sorted(keep)}
    return chosen


def _render(font, char: str) -> np.ndarray | None:
    """The letter fitted (aspect kept) into a BOX x BOX square at the centre of a CANVAS x CANVAS image."""
    from PIL import Image, ImageDraw

    size = font.size
    img = Image.new("L", (3 * size, 3 * size), 0)
    ImageDraw.Draw(img).text((size, size), char, fill=255, font=font)
    bbox = img.getbbox()
    if bbox is None:
        return None
    crop = img.crop(bbox)
    w, h = crop.size
    scale = BOX / max(w, h)
    crop = crop.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
    out = Image.new("L", (CANVAS, CANVAS), 0)
    out.paste(crop, ((CANVAS - crop.size[0]) // 2, (CANVAS - crop.size[1]) // 2))
    return np.asarray(out)


def _augment(base: torch.Tensor, cfg: GlyphConfig, generator: torch.Generator) -> torch.Tensor:
    """Random stroke width and affine map per image of (M, 1, CANVAS, CANVAS) floats, pooled to (M, 1, size, size)."""
    m = base.shape[0]
    stroke = torch.randint(-1, 2, (m,), generator=generator)  # -1 thinner, 0 as is, +1 thicker
    x = base.clone()
    x[stroke == 1] = F.max_pool2d(base[stroke == 1], 3, 1, 1)
    x[stroke == -1] = -F.max_pool2d(-base[stroke == -1], 3, 1, 1)
    u = lambda low, high: low + (high - low) * torch.rand(m, generator=generator)  # noqa: E731
    angle, shear = u(-0.2, 0.2), u(-0.2, 0.2)  # radians (about +-11 degrees), shear factor
    sx, sy = u(0.85, 1.1), u(0.85, 1.1)
    tx, ty = u(-0.08, 0.08), u(-0.08, 0.08)  # shift as a fraction of the half-canvas
    cos, sin = torch.cos(angle), torch.sin(angle)
    # output -> input sampling map: rotate, then shear, then scale (inverse of a forward affine)
    theta = torch.stack([torch.stack([cos / sx, (-sin + shear * cos) / sx, tx], 1),
                         torch.stack([sin / sy, (cos + shear * sin) / sy, ty], 1)], 1)  # (M, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    return F.avg_pool2d(x, CANVAS // cfg.size)  # (M, 1, size, size)


def _dedupe(clean: np.ndarray, threshold: float = 0.1) -> list[int]:
    """Indices of classes kept: a class whose clean image is within `threshold` (RMS, [0, 1] pixels) of an earlier
    kept class (e.g. Latin A, Greek Alpha, Cyrillic A) is dropped."""
    flat = torch.from_numpy(clean.reshape(len(clean), -1)).float() / 255.0
    close = (torch.cdist(flat, flat) / flat.shape[1] ** 0.5 <= threshold).tril(-1)  # (C, C): j < i and near
    kept = torch.ones(len(flat), dtype=torch.bool)
    for i in close.any(1).nonzero()[:, 0].tolist():  # only classes with an earlier near-duplicate need a look
        kept[i] = not (close[i] & kept).any()
    return kept.nonzero()[:, 0].tolist()


def _build(cfg: GlyphConfig, fonts: list[Path], note: str, progress: bool) -> dict:
    from PIL import ImageFont
    from tqdm.auto import tqdm

    cmaps = _font_cmaps(fonts)
    letters = _choose_letters(cmaps, cfg)
    loaded = {path: ImageFont.truetype(str(path), 2 * BOX) for path in fonts}
    classes, bases = [], []  # (script, cp); list of (F, CANVAS, CANVAS) uint8 per class
    total = sum(map(len, letters.values()))
    with tqdm(total=total, desc="rendering glyphs (once; cached)", disable=not progress, leave=False) as bar:
        for script, cps in letters.items():
            for cp in cps:
                renders = [r for path in fonts if cp in cmaps[path] for r in [_render(loaded[path], chr(cp))]
                           if r is not None and (r > 127).sum() >= 4]
                bar.update(1)
                if renders:
                    classes.append((script, cp))
                    bases.append(np.stack(renders))
    clean = np.stack([b[0] for b in bases])  # (C, CANVAS, CANVAS): first font, no augmentation
    clean = F.avg_pool2d(torch.from_numpy(clean)[:, None].float(), CANVAS // cfg.size)[:, 0].round().byte().numpy()
    keep = _dedupe(clean)
    classes, bases = [classes[i] for i in keep], [bases[i] for i in keep]
    counts: dict[str, int] = {}
    for script, _ in classes:
        counts[script] = counts.get(script, 0) + 1
    alphabets = sorted(s for s, n in counts.items() if n >= cfg.min_per_alphabet)
    kept = [i for i, (s, _) in enumerate(classes) if s in alphabets]
    classes, bases = [classes[i] for i in kept], [bases[i] for i in kept]

    generator = torch.Generator().manual_seed(cfg.seed)
    bank = torch.from_numpy(np.concatenate(bases))  # (all renders, CANVAS, CANVAS) uint8
    starts = np.cumsum([0] + [len(b) for b in bases[:-1]])
    # rendering r of a class uses its fonts in turn: font r mod (number of fonts that have the letter)
    source = torch.from_numpy(np.concatenate([s + np.arange(cfg.renderings) % len(b) for s, b in zip(starts, bases)]))
    chunks = [_augment(bank[idx][:, None].float() / 255.0, cfg, generator) for idx in source.split(2048)]
    images = (torch.cat(chunks) * 255).round().clamp(0, 255).byte()  # (C * R, 1, size, size)
    return {
        "images": images.numpy(),
        "labels": np.repeat(np.arange(len(classes)), cfg.renderings),
        "class_names": np.array([f"{s.title()}/U+{cp:04X}" for s, cp in classes]),
        "class_alphabet": np.array([alphabets.index(s) for s, _ in classes]),
        "alphabets": np.array([s.title() for s in alphabets]),
        "fonts_per_class": np.array([len(b) for b in bases]),
        "notes": np.array(note),
    }


def alphabet_splits(class_alphabet: torch.Tensor, num_alphabets: int, seed: int = 0,
                    fractions=SPLIT_FRACTIONS) -> dict[str, list[int]]:
    """Disjoint train/val/test alphabets (a seeded permutation, Omniglot's class shares), as class indices."""
    if num_alphabets < 3:
        raise DataError(f"an alphabet-level train/val/test split needs >= 3 alphabets, got {num_alphabets}")
    order = np.random.default_rng(seed).permutation(num_alphabets)
    n_val = max(1, round(fractions[1] * num_alphabets))
    n_test = max(1, round(fractions[2] * num_alphabets))
    groups = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
    return {name: torch.isin(class_alphabet, torch.as_tensor(group)).nonzero()[:, 0].tolist()
            for name, group in groups.items()}


def glyph_set(cfg: GlyphConfig = GlyphConfig(), font_dirs=FONT_DIRS, progress: bool = True) -> CharacterSet:
    """The rendered character set for `cfg`, built on first use and cached."""
    cfg.validate()
    fonts, note = find_fonts(font_dirs)
    key = json.dumps({"cfg": asdict(cfg), "fonts": [(p.name, p.stat().st_size) for p in fonts], "v": 1})
    path = cache_dir("glyphs") / f"glyphs-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
    if not path.exists():
        arrays = _build(cfg, fonts, note, progress)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    with np.load(path) as data:
        class_alphabet = torch.from_numpy(data["class_alphabet"]).long()
        alphabets = tuple(str(a) for a in data["alphabets"])
        return CharacterSet(
            name="glyphs",
            images=torch.from_numpy(data["images"]),
            labels=torch.from_numpy(data["labels"]).long(),
            class_names=tuple(str(c) for c in data["class_names"]),
            class_alphabet=class_alphabet,
            alphabets=alphabets,
            splits=alphabet_splits(class_alphabet, len(alphabets), cfg.seed),
            notes=str(data["notes"]),
        )
