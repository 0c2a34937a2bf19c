"""Images for `analyze-vit`: a user folder (optionally one subfolder per class) or the real photos bundled with
scikit-image (when installed) and scikit-learn; resized and centre-cropped as DINOv2 expects (ImageNet
normalisation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from paperzoo.errors import DataError

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "cat", "hubble_deep_field", "immunohistochemistry")
SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def _rgb(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return array[..., :3]


def bundled_photos() -> dict[str, np.ndarray]:
    """name -> (H, W, 3) uint8 photos that ship inside installed packages (nothing is downloaded)."""
    photos = {}
    try:
        from skimage import data as skdata

        for name in SKIMAGE_PHOTOS:
            try:
                photos[name] = _rgb(getattr(skdata, name)())
            except Exception:  # some skimage images are fetched on demand; those are skipped
                continue
    except ImportError:
        pass
    from sklearn.datasets import load_sample_images

    sample = load_sample_images()
    for name, image in zip(sample.filenames, sample.images):
        photos[Path(name).stem] = _rgb(image)
    return photos


def folder_images(root: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """name -> image for every image file under `root`, and name -> class (the subfolder) when there are
    subfolders."""
    from PIL import Image

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"--images {root} is not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES)
    if not files:
        raise DataError(f"no image files ({', '.join(sorted(SUFFIXES))}) under {root}")
    images, classes = {}, {}
    for path in files:
        name = str(path.relative_to(root))
        images[name] = np.asarray(Image.open(path).convert("RGB"))
        if path.parent != root:
            classes[name] = path.parent.name
    return images, classes


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
