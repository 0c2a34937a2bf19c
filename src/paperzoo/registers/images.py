"""Images for the artifact analysis of Darcet et al. (arXiv 2309.16588) on DINOv2 checkpoints (`analyze-vit`,
`reproduce registers --weights`): a user folder (ImageNet-style: one subfolder per class) or the 20 real photos
bundled with scikit-image (a dependency) and scikit-learn; resized and centre-cropped as DINOv2 expects (ImageNet
normalisation). Every image of a user folder is checked before any is used: a file that is not an image, is cut
short, or is too large to decode safely (a decompression bomb) is a `DataError` naming it."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from paperzoo.errors import DataError

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
# scikit-image's photographs that ship in its wheel (drawings, masks and the fetched-on-demand ones left out)
SKIMAGE_PHOTOS = ("astronaut", "brick", "camera", "cell", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
                  "hubble_deep_field", "immunohistochemistry", "microaneurysms", "moon", "page", "retina", "rocket",
                  "text")
SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def _rgb(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return array[..., :3]


def bundled_photos() -> dict[str, np.ndarray]:
    """name -> (H, W, 3) uint8: the 20 photos that ship inside scikit-image and scikit-learn (nothing downloads)."""
    from skimage import data as skdata
    from sklearn.datasets import load_sample_images

    photos = {name: _rgb(getattr(skdata, name)()) for name in SKIMAGE_PHOTOS}
    sample = load_sample_images()
    for name, image in zip(sample.filenames, sample.images):
        photos[Path(name).stem] = _rgb(image)
    return photos


def folder_files(root: str | Path) -> list[str]:
    """The image files under `root` (any depth), as sorted paths relative to it."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"--images {root} is not a folder")
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.suffix.lower() in SUFFIXES)
    if not files:
        raise DataError(f"no image files ({', '.join(sorted(SUFFIXES))}) under {root}")
    return files


_UNREADABLE = (OSError, SyntaxError, ValueError, EOFError)  # what PIL raises for a damaged file


class _BombsRaise(warnings.catch_warnings):
    """PIL's decompression-bomb warning (an image of more than Image.MAX_IMAGE_PIXELS) raised as an error."""

    def __enter__(self):
        from PIL import Image

        super().__enter__()
        warnings.simplefilter("error", Image.DecompressionBombWarning)


def _unreadable(path: Path, e: Exception) -> DataError:
    from PIL import Image

    if isinstance(e, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return DataError(f"{path} is too large to decode safely ({e}); remove it from the --images folder")
    return DataError(f"{path} is not a readable image ({type(e).__name__}: {e}); remove or replace it")


def check_image(path: Path) -> None:
    """A `DataError` naming `path` unless it is an image PIL reads whole: not an image, cut short (a JPEG without
    its end marker is decoded to be sure), or a decompression bomb."""
    from PIL import Image

    try:
        with _BombsRaise():
            with Image.open(path) as image:
                kind = image.format
                image.verify()  # structure and checksums, without decoding
            if kind == "JPEG":
                with open(path, "rb") as f:
                    f.seek(-2, 2)
                    ended = f.read(2) == b"\xff\xd9"
                if not ended:
                    with Image.open(path) as image:
                        image.load()
    except (*_UNREADABLE, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise _unreadable(path, e) from None


def image_set(folder: str | Path | None, size: int, max_images: int,
              seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None, list[str]]:
    """(B, 3, size, size) images in [0, 1], their (B,) class indices (None unless every image sits in a class
    subfolder, as in an ImageNet-style folder) and names: the images under `folder`, or the bundled photos when it
    is None; a random `max_images` of them (fixed by `seed`) when there are more, in a random order (so that any
    split into halves mixes the classes of a folder sorted by class). Only those are read."""
    from PIL import Image

    if folder is None:
        photos = bundled_photos()
        names, read = sorted(photos), photos.__getitem__
    else:
        names = folder_files(folder)
        for name in names:  # all of them, so that a bad file is found before the run, whichever are picked
            check_image(Path(folder) / name)

        def read(name: str) -> np.ndarray:
            try:
                with _BombsRaise():
                    return np.asarray(Image.open(Path(folder) / name).convert("RGB"))
            except (*_UNREADABLE, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
                raise _unreadable(Path(folder) / name, e) from None
    pick = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed))[:max_images]
    names = [names[i] for i in pick.tolist()]
    classes = [Path(name).parent.name for name in names]
    labels = None
    if folder is not None and all(classes):
        index = {c: i for i, c in enumerate(sorted(set(classes)))}
        labels = torch.tensor([index[c] for c in classes])
    return preprocess([read(name) for name in names], size), labels, names


def preprocess(images: list[np.ndarray], size: int) -> torch.Tensor:
    """(H, W, 3) uint8 arrays -> (B, 3, size, size) in [0, 1]: shorter side resized to `size`, centre crop."""
    out = []
    for array in images:
        x = torch.from_numpy(np.array(array)).permute(2, 0, 1)[None].float() / 255  # (1, 3, H, W)
        h, w = x.shape[-2:]
        scale = size / min(h, w)
        x = F.interpolate(x, size=(max(size, round(h * scale)), max(size, round(w * scale))), mode="bilinear",
                          antialias=True, align_corners=False)
        top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
        out.append(x[..., top:top + size, left:left + size].clamp(0, 1))
    return torch.cat(out)


def normalize(raw: torch.Tensor) -> torch.Tensor:
    return (raw - IMAGENET_MEAN) / IMAGENET_STD
