"""Reader for the IDX format of MNIST, Fashion-MNIST and friends (plain or gzip).

Layout (LeCun's MNIST page): two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64), the number of dimensions, then each dimension as a big-endian int32, then the data
in C order, big-endian. Any deviation is a `DataError` that names the file and what is wrong.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from paperzoo.errors import DataError

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """The array of an IDX file (MNIST's format, gzipped when the name ends in .gz), with the shape and dtype of
    its header; a missing, truncated or malformed file is a `DataError` that says which."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"IDX file {path} does not exist")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"IDX file {path} is not a readable gzip file ({e}); download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number {raw[:4].hex() or 'empty'}; expected "
                        f"00 00 <type> <ndim> with type one of {', '.join(hex(t) for t in _TYPES)})")
    dtype, ndim = np.dtype(_TYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file {path} is truncated inside its header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"IDX file {path} holds {len(raw) - header} data bytes but its header {shape} needs "
                        f"{expected}: the file is truncated or corrupt; download it again")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write `array` as IDX (gzip when the name ends in .gz); used by tests and by users exporting data."""
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _TYPES.items()}
    array = np.ascontiguousarray(array)
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DataError(f"IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.dtype(_TYPES[code])).tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)
