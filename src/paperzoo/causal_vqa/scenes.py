"""CLEVR-like scenes where removing an object is exact, for "Towards Causal VQA" (Agarwal, Shetty, Fritz,
CVPR 2020, arXiv 1912.07538).

The paper removes COCO objects with a GAN inpainter (Sec. 3). Here a scene is a list of non-overlapping objects
(shape, colour, size, position) on a textured background that is a function of the scene's seed, drawn with
Pillow; the edited image is the same scene rendered without the object, so the edit is exact and leaves every other
pixel unchanged. A white cross is the "cue" object: no question ever mentions it, so it is always irrelevant, and a
data set can correlate it with answers (the spurious context of the paper's Sec. 1).

The cue is white so that a CNN trained from scratch can see it: brighter in every channel than any background
pixel (at most BACKGROUND_MAX) and unlike every object colour. An earlier gray cue (128, 128, 128) sat inside the
background's range and became ~0 after the model's input normalisation; whether a model picked it up then depended
on its initialisation (docs/causal_vqa.md).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from paperzoo.errors import UserError

COLORS = {"red": (215, 45, 45), "green": (40, 170, 60), "blue": (45, 85, 225), "yellow": (230, 205, 30)}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 3, "large": 4}  # half-width in pixels at image_size 32 (scaled for other sizes)
CUE = ("white", "cross")
CUE_RGB = (255, 255, 255)
BACKGROUND_LEVELS = (60, 200)  # the coarse background colours, per channel, before contrast and stripes
BACKGROUND_CONTRAST, BACKGROUND_OFFSET, STRIPES = 0.6, 40, 18
BACKGROUND_MAX = round(BACKGROUND_LEVELS[1] * BACKGROUND_CONTRAST + BACKGROUND_OFFSET + STRIPES)  # 178


@dataclass(frozen=True)
class Obj:
    """One object of a scene: `shape` (circle, square, triangle), `color`, `size` (small, large) and its centre
    `x`, `y` in pixels at the scene's image size."""

    shape: str
    color: str
    size: str
    x: int  # centre, pixels
    y: int

    @property
    def is_cue(self) -> bool:
        return (self.color, self.shape) == CUE


@dataclass(frozen=True)
class Scene:
    """Non-overlapping objects on a textured background drawn from `background_seed`; `render(scene)` draws it as a
    (3, image_size, image_size) float image in [0, 1], and `without(i)` is the exact edit that removes object i."""

    objects: tuple[Obj, ...]
    background_seed: int
    image_size: int = 32

    def without(self, index: int) -> "Scene":
        """The same scene without object `index` (every other pixel of its rendering unchanged)."""
        if not 0 <= index < len(self.objects):
            raise UserError(f"object index {index} out of range for a scene of {len(self.objects)} objects")
        return replace(self, objects=self.objects[:index] + self.objects[index + 1:])


def half_width(obj: Obj, image_size: int) -> int:
    return max(1, round(SIZES[obj.size] * image_size / 32))


def bbox(obj: Obj, image_size: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), inclusive."""
    r = half_width(obj, image_size)
    return obj.x - r, obj.y - r, obj.x + r, obj.y + r


def boxes_overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int], gap: int = 0) -> bool:
    return not (a[2] + gap < b[0] or b[2] + gap < a[0] or a[3] + gap < b[1] or b[3] + gap < a[1])


def background(seed: int, size: int) -> np.ndarray:
    """A smooth random colour texture with faint stripes, (size, size, 3) uint8, a function of `seed` only."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(*BACKGROUND_LEVELS, (4, 4, 3))
    smooth = np.kron(coarse, np.ones((size // 4 + 1, size // 4 + 1, 1)))[:size, :size]  # (size, size, 3)
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[:size, :size]
    stripes = STRIPES * np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * rng.uniform(0.5, 1.5))
    return np.clip(smooth * BACKGROUND_CONTRAST + BACKGROUND_OFFSET + stripes[..., None], 0, 255).astype(np.uint8)


def draw(canvas: ImageDraw.ImageDraw, obj: Obj, image_size: int) -> None:
    x0, y0, x1, y1 = bbox(obj, image_size)
    fill = CUE_RGB if obj.is_cue else COLORS[obj.color]
    if obj.shape == "circle":
        canvas.ellipse((x0, y0, x1, y1), fill=fill)
    elif obj.shape == "square":
        canvas.rectangle((x0, y0, x1, y1), fill=fill)
    elif obj.shape == "triangle":
        canvas.polygon([(obj.x, y0), (x1, y1), (x0, y1)], fill=fill)
    elif obj.shape == "cross":
        w = max(1, (x1 - x0) // 4)
        canvas.rectangle((obj.x - w, y0, obj.x + w, y1), fill=fill)
        canvas.rectangle((x0, obj.y - w, x1, obj.y + w), fill=fill)
    else:
        raise UserError(f"unknown shape {obj.shape!r}; shapes: {SHAPES + (CUE[1],)}")


def render(scene: Scene) -> Tensor:
    """The scene as a float image (3, H, W) in [0, 1]."""
    image = Image.fromarray(background(scene.background_seed, scene.image_size))
    canvas = ImageDraw.Draw(image)
    for obj in scene.objects:
        draw(canvas, obj, scene.image_size)
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255  # (3, H, W)


def area_fraction(obj: Obj, image_size: int) -> float:
    """Share of the image the object covers (its drawn pixels)."""
    image = Image.new("RGB", (image_size, image_size), (0, 0, 0))
    draw(ImageDraw.Draw(image), obj, image_size)
    return float((np.asarray(image.convert("L")) > 0).mean())


def place(rng: random.Random, objects: list[Obj], shape: str, color: str, size: str, image_size: int,
          tries: int = 50) -> Obj | None:
    """A new object at a random position that overlaps none of `objects` (1-pixel gap); None when full."""
    for _ in range(tries):
        r = half_width(Obj(shape, color, size, 0, 0), image_size)
        obj = Obj(shape, color, size, rng.randint(r, image_size - 1 - r), rng.randint(r, image_size - 1 - r))
        if not any(boxes_overlap(bbox(obj, image_size), bbox(o, image_size), gap=1) for o in objects):
            return obj
    return None


def random_scene(rng: random.Random, min_objects: int = 1, max_objects: int = 5, image_size: int = 32) -> Scene:
    """Random non-overlapping coloured objects (never the cue) on a random background."""
    objects: list[Obj] = []
    for _ in range(rng.randint(min_objects, max_objects)):
        obj = place(rng, objects, rng.choice(SHAPES), rng.choice(list(COLORS)), rng.choice(list(SIZES)), image_size)
        if obj is not None:
            objects.append(obj)
    return Scene(tuple(objects), rng.randrange(2 ** 31), image_size)


def add_cue(rng: random.Random, scene: Scene) -> Scene:
    """The scene with the white cross (the cue) added where it fits (unchanged when it does not)."""
    obj = place(rng, list(scene.objects), CUE[1], CUE[0], "large", scene.image_size)
    return scene if obj is None else replace(scene, objects=scene.objects + (obj,))
