import gzip

import numpy as np
import pytest

from paperzoo.data import idx_dataset, read_idx, write_idx
from paperzoo.errors import DataError


def test_round_trip_of_each_dtype_plain_and_gzip(tmp_path):
    rng = np.random.default_rng(0)
    for dtype in (np.uint8, np.int16, np.int32, np.float32, np.float64):
        array = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
        for name in ("a.idx", "a.idx.gz"):
            write_idx(tmp_path / name, array)
            back = read_idx(tmp_path / name)
            assert back.dtype == array.dtype and np.array_equal(back, array)


def test_header_bytes_follow_the_mnist_layout(tmp_path):
    write_idx(tmp_path / "x", np.zeros((2, 3), dtype=np.uint8))
    raw = (tmp_path / "x").read_bytes()
    assert raw[:4] == bytes([0, 0, 0x08, 2])
    assert raw[4:12] == (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    assert len(raw) == 12 + 6


def test_truncated_file_is_a_clear_error(tmp_path):
    write_idx(tmp_path / "x", np.arange(100, dtype=np.uint8).reshape(10, 10))
    raw = (tmp_path / "x").read_bytes()
    (tmp_path / "x").write_bytes(raw[:-7])
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_idx(tmp_path / "x")
    (tmp_path / "y").write_bytes(raw[:6])
    with pytest.raises(DataError, match="truncated inside its header"):
        read_idx(tmp_path / "y")


def test_wrong_magic_and_bad_gzip_are_clear_errors(tmp_path):
    (tmp_path / "x").write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(DataError, match="bad magic number"):
        read_idx(tmp_path / "x")
    (tmp_path / "y.gz").write_bytes(gzip.compress(b"0123456789")[:-4])
    with pytest.raises(DataError, match="not a readable gzip file"):
        read_idx(tmp_path / "y.gz")
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "missing")


def test_idx_dataset_reads_an_mnist_layout_folder(tmp_path):
    images = np.arange(4 * 28 * 28, dtype=np.int64).reshape(4, 28, 28) % 256
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images.astype(np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([3, 1, 4, 1], dtype=np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images[:2].astype(np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([5, 9], dtype=np.uint8))
    split = idx_dataset(tmp_path)
    assert split.train_x.shape == (4, 1, 28, 28) and split.test_x.shape == (2, 1, 28, 28)
    assert split.train_y.tolist() == [3, 1, 4, 1] and split.test_y.tolist() == [5, 9]
    assert float(split.train_x[0, 0, 9, 3]) == pytest.approx(1.0)  # flat index 255 = row 9, col 3 holds 255
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="has no t10k-labels-idx1-ubyte"):
        idx_dataset(tmp_path)


def test_mismatched_images_and_labels_are_reported(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 2, 2), dtype=np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(2, dtype=np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((1, 2, 2), dtype=np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(1, dtype=np.uint8))
    with pytest.raises(DataError, match=r"train images \(3, 2, 2\) and labels \(2,\) do not match"):
        idx_dataset(tmp_path)
