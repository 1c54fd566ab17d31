"""Quantizing large catalogs: fit on a seeded sample, encode and score in chunks of rows.

The item vectors may be a memory-mapped `.npy` (10^7 x 384 float32 is 15.4 GB): only the sample
(`quantize.fit_sample` rows) and one chunk of rows are in memory at a time. Chunks of a file-backed
array are read with plain file reads rather than through the mapping, so pages already used do not
stay in the process's resident set. A catalog no larger than the sample is fitted on every row, in
file order: exactly the in-memory result (Beauty's 12k items, the default sample 65,536).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

CHUNK = 1 << 16  # rows encoded at once (96 MiB of 384-d float32)


def sample_rows(n: int, size: int, seed: int) -> np.ndarray | None:
    """Sorted row indices of a seeded sample of `size` of `n` rows; None when every row is used (size 0 or >= n)."""
    if size < 0:
        raise ValueError(f"quantize.fit_sample={size}: give a number of items (0 = fit on every item)")
    if size == 0 or n <= size:
        return None
    return np.sort(np.random.default_rng([seed, n]).choice(n, size=size, replace=False))


def _file_backed(x: np.ndarray) -> bool:
    """A whole .npy mapped from a file (not a view of one): its rows can be read with file reads."""
    base = getattr(x, "base", None)
    return isinstance(x, np.memmap) and isinstance(base, mmap.mmap) and x.flags.c_contiguous and bool(x.filename)


def read_rows(x: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Rows start:stop of x (N, D) as an in-memory array; a file-backed memmap is read, not paged in."""
    if _file_backed(x):
        row = x.dtype.itemsize * int(np.prod(x.shape[1:]))
        count = (stop - start) * int(np.prod(x.shape[1:]))
        out = np.fromfile(x.filename, dtype=x.dtype, count=count, offset=x.offset + start * row)
        return out.reshape((stop - start, *x.shape[1:]))
    return np.array(x[start:stop])


def take_rows(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """x[rows] (sorted row indices); from a file-backed memmap one read per row, so no page stays mapped."""
    if not _file_backed(x):
        return np.asarray(x[rows])
    out = np.empty((len(rows), *x.shape[1:]), dtype=x.dtype)
    row = out[0].nbytes if len(rows) else 0
    with open(x.filename, "rb", buffering=0) as f:
        fd = f.fileno()
        for i, r in enumerate(rows.tolist()):
            out[i] = np.frombuffer(os.pread(fd, row, x.offset + r * row), dtype=x.dtype).reshape(x.shape[1:])
    return out


def fit_points(x: np.ndarray, size: int, seed: int) -> torch.Tensor:
    """The rows a quantizer is fitted on: a seeded sample of `size` rows, or all rows in order. (M, D) float32."""
    rows = sample_rows(x.shape[0], size, seed)
    points = read_rows(x, 0, x.shape[0]) if rows is None else take_rows(x, rows)
    return torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))


def chunks(n: int, chunk: int, desc: str) -> Iterator[tuple[int, int]]:
    """(start, stop) row ranges covering n rows, with a progress bar when there is more than one."""
    starts = range(0, n, chunk)
    for start in tqdm(starts, desc=desc, disable=len(starts) <= 1, mininterval=2):
        yield start, min(start + chunk, n)


def encode_chunked(quantizer, x: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """`quantizer.encode` over x (N, D) in chunks of rows: int64 codes (N, L)."""
    out = np.empty((x.shape[0], quantizer.levels), dtype=np.int64)
    for start, stop in chunks(x.shape[0], chunk, "encode"):
        out[start:stop] = quantizer.encode(torch.from_numpy(read_rows(x, start, stop))).cpu().numpy()
    return out


def reconstruction_mse(quantizer, x: np.ndarray, codes: np.ndarray, chunk: int = CHUNK) -> float:
    """Mean over items of ||decode(codes) - x||^2, in chunks (the same float32 mean as in one piece)."""
    per_row = []
    for start, stop in chunks(x.shape[0], chunk, "reconstruction"):
        xb = torch.from_numpy(read_rows(x, start, stop))
        per_row.append(((quantizer.decode(torch.from_numpy(codes[start:stop])) - xb) ** 2).sum(1))
    return float(torch.cat(per_row).mean()) if per_row else float("nan")


__all__ = [
    "CHUNK",
    "chunks",
    "encode_chunked",
    "fit_points",
    "read_rows",
    "reconstruction_mse",
    "sample_rows",
    "take_rows",
]
