"""Chunked embedding into a memory-mapped .npy: the same file as encoding everything and `np.save`."""

from __future__ import annotations

import numpy as np
import pytest

from sidrec.embed import HashingEmbedder, embed_to_file


class Counting(HashingEmbedder):
    def __init__(self) -> None:
        super().__init__(dim=24)
        self.calls: list[int] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(len(texts))
        return super().encode(texts)


TEXTS = [f"item {i} shampoo {'red' if i % 3 else 'blue'} bottle {i * 7 % 11}" for i in range(103)]


@pytest.mark.parametrize("chunk", [1, 10, 103, 1000])
def test_chunked_memmap_file_equals_np_save_of_all_vectors(tmp_path, chunk):
    embedder = Counting()
    out = embed_to_file(embedder, TEXTS, tmp_path / "e.npy", chunk_size=chunk)
    np.save(tmp_path / "ref.npy", HashingEmbedder(dim=24).encode(TEXTS))
    assert (tmp_path / "e.npy").read_bytes() == (tmp_path / "ref.npy").read_bytes()
    assert isinstance(out, np.memmap) and out.shape == (103, 24) and out.dtype == np.float32
    assert max(embedder.calls) == min(chunk, 103) and sum(embedder.calls) == 103
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.npy", "ref.npy"]  # no temporary file left


def test_empty_catalog_and_bad_chunk_size(tmp_path):
    assert embed_to_file(HashingEmbedder(dim=8), [], tmp_path / "e.npy", chunk_size=5).shape == (0, 8)
    with pytest.raises(ValueError, match="embed.chunk_size=0"):
        embed_to_file(HashingEmbedder(dim=8), TEXTS, tmp_path / "f.npy", chunk_size=0)
