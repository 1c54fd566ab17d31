"""Large catalogs: fit on a sample, encode in chunks (from a memory-mapped file), equal to in memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sidrec.quantize import RQKMeans
from sidrec.quantize.sids import _group_ids, deduplicate
from sidrec.quantize.stream import encode_chunked, fit_points, read_rows, reconstruction_mse, sample_rows, take_rows


@pytest.fixture
def on_disk(tmp_path, make_data):
    x = make_data(n=700, dim=16, seed=3).numpy()
    np.save(tmp_path / "x.npy", x)
    return x, np.load(tmp_path / "x.npy", mmap_mode="r")


def fitted(points: torch.Tensor) -> RQKMeans:
    return RQKMeans(dim=16, levels=3, codebook_size=8, kmeans_iters=10, seed=1).fit(points)


def test_chunked_encode_of_a_memmap_equals_in_memory_encode(on_disk):
    x, mapped = on_disk
    q = fitted(torch.from_numpy(x))
    whole = q.encode(torch.from_numpy(x)).numpy()
    for chunk in (1, 64, 333, 700, 10_000):
        assert np.array_equal(encode_chunked(q, mapped, chunk=chunk), whole)
        assert np.array_equal(encode_chunked(q, x, chunk=chunk), whole)
    err = float(((q.decode(torch.from_numpy(whole)) - torch.from_numpy(x)) ** 2).sum(1).mean())
    assert reconstruction_mse(q, mapped, whole) == err
    assert reconstruction_mse(q, mapped, whole, chunk=100) == pytest.approx(err, rel=1e-6)


def test_a_catalog_within_the_sample_is_fitted_on_every_row_in_order(on_disk):
    x, mapped = on_disk
    assert sample_rows(700, 700, 0) is None and sample_rows(700, 0, 0) is None
    assert torch.equal(fit_points(mapped, 65536, 0), torch.from_numpy(x))
    a, b = fitted(fit_points(mapped, 65536, 0)), fitted(torch.from_numpy(x))
    assert torch.equal(a.codebooks, b.codebooks)


def test_a_larger_catalog_is_fitted_on_a_seeded_sample(on_disk):
    x, mapped = on_disk
    rows = sample_rows(700, 200, 5)
    assert len(rows) == 200 and np.all(np.diff(rows) > 0)  # sorted, distinct
    assert np.array_equal(rows, sample_rows(700, 200, 5)) and not np.array_equal(rows, sample_rows(700, 200, 6))
    assert torch.equal(fit_points(mapped, 200, 5), torch.from_numpy(x[rows]))
    codes = encode_chunked(fitted(fit_points(mapped, 200, 5)), mapped, chunk=128)
    assert codes.shape == (700, 3) and codes.min() >= 0 and codes.max() < 8
    with pytest.raises(ValueError, match="quantize.fit_sample=-1"):
        sample_rows(700, -1, 0)


def test_read_rows_of_a_memmap_slice_and_of_an_array(on_disk):
    x, mapped = on_disk
    assert np.array_equal(read_rows(mapped, 10, 20), x[10:20])
    assert np.array_equal(read_rows(mapped[100:], 5, 9), x[105:109])  # a view: read through the mapping
    assert np.array_equal(read_rows(x, 690, 700), x[690:])
    rows = np.array([0, 3, 4, 699])
    assert np.array_equal(take_rows(mapped, rows), x[rows]) and np.array_equal(take_rows(x, rows), x[rows])
    assert take_rows(mapped, rows[:0]).shape == (0, 16)


def test_packed_group_ids_equal_a_row_unique(make_sids):
    rng = np.random.default_rng(0)
    for codes in (rng.integers(0, 4, size=(500, 3)), rng.integers(0, 300, size=(200, 4)), np.zeros((5, 2), int)):
        _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
        got_inverse, got_counts = _group_ids(codes)
        assert np.array_equal(got_inverse, inverse.reshape(-1)) and np.array_equal(got_counts, counts)
    huge = np.array([[2**40, 1], [2**40, 1], [0, 2**30]])  # radix product past int64: the row unique
    assert _group_ids(huge)[1].tolist() == [1, 2]
    codes = rng.integers(0, 3, size=(300, 3))
    sids = deduplicate(codes, "tiger", 3, 0)
    assert len({tuple(r) for r in sids.tolist()}) == 300
