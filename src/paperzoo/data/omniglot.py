"""Reader for a real Omniglot copy in its published folder layout (Lake et al., Science 2015;
github.com/brendenlake/omniglot): `images_background/<alphabet>/<character>/*.png` (30 alphabets) and
`images_evaluation/<alphabet>/<character>/*.png` (20 alphabets), 105x105 black strokes on white.

Omniglot cannot be downloaded on these machines; users who have it pass its folder. Images are inverted (ink = 255)
and resized to `size` x `size` like the few-shot benchmarks (28x28). Splits are by alphabet: the evaluation
alphabets are the meta-test split (Lake's background/evaluation division), and a seeded choice of the background
alphabets (Omniglot's 100 of 1,623 classes, as a share of alphabets) is meta-val.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from paperzoo.data.glyphs import SPLIT_FRACTIONS, CharacterSet
from paperzoo.errors import DataError

PARTS = ("images_background", "images_evaluation")


def _drawing(file: Path, size: int) -> np.ndarray:
    """One drawing as a (size, size) uint8 grey image; an unreadable file is a DataError naming it."""
    from PIL import Image

    try:
        with Image.open(file) as img:
            return np.asarray(img.convert("L").resize((size, size), Image.BOX), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as e:  # PIL: not an image, truncated, or corrupt chunks
        raise DataError(f"{file} is not a readable PNG drawing ({e}); Omniglot's character folders hold only "
                        "PNG drawings: delete this file, or extract the Omniglot archive again") from None


def omniglot(root: str | Path, size: int = 28, seed: int = 0) -> CharacterSet:
    """The Omniglot folder `root` as a `CharacterSet`: images (N, 1, size, size) uint8 (ink = 255), one class per
    character, split by alphabet (evaluation alphabets = test; a seeded share of the background alphabets = val).
    A missing layout or an unreadable drawing is a `DataError` naming it."""
    root = Path(root)
    parts = [root / p for p in PARTS if (root / p).is_dir()]
    if not parts:
        raise DataError(f"{root} has neither {PARTS[0]}/ nor {PARTS[1]}/; expected Omniglot's layout "
                        f"<root>/{PARTS[0]}/<alphabet>/<character>/*.png")
    images, labels, class_names, class_alphabet, alphabets, part_of_alphabet = [], [], [], [], [], []
    for part in parts:
        for alphabet in sorted(p for p in part.iterdir() if p.is_dir()):
            alphabets.append(alphabet.name)
            part_of_alphabet.append(part.name)
            for character in sorted(p for p in alphabet.iterdir() if p.is_dir()):
                files = sorted(character.glob("*.png"))
                if not files:
                    continue
                for file in files:
                    images.append(255 - _drawing(file, size))  # ink = 255
                    labels.append(len(class_names))
                class_names.append(f"{alphabet.name}/{character.name}")
                class_alphabet.append(len(alphabets) - 1)
    if not class_names:
        raise DataError(f"no character folders with .png drawings under {root}")
    class_alphabet_t = torch.tensor(class_alphabet)
    background = [i for i, p in enumerate(part_of_alphabet) if p == PARTS[0]]
    test_alphabets = [i for i, p in enumerate(part_of_alphabet) if p == PARTS[1]]
    rng = np.random.default_rng(seed)
    share = SPLIT_FRACTIONS[1] / (SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1])
    n_val = max(1, round(share * len(background))) if len(background) > 1 else 0
    val_alphabets = sorted(rng.permutation(background)[:n_val].tolist())
    groups = {"train": sorted(set(background) - set(val_alphabets)), "val": val_alphabets, "test": test_alphabets}
    splits = {name: torch.isin(class_alphabet_t, torch.tensor(group, dtype=torch.long)).nonzero()[:, 0].tolist()
              for name, group in groups.items()}
    return CharacterSet(
        name="omniglot",
        images=torch.from_numpy(np.stack(images))[:, None],  # (N, 1, size, size)
        labels=torch.tensor(labels),
        class_names=tuple(class_names),
        class_alphabet=class_alphabet_t,
        alphabets=tuple(alphabets),
        splits=splits,
    )
