"""The default text encoder (all-MiniLM-L6-v2 from the bundled package): sidrec's own progress bar, same vectors."""

from __future__ import annotations

import numpy as np

from sidrec.config import EmbedConfig
from sidrec.embed import build_embedder


def test_progress_is_sidrecs_bar_per_batch_and_the_vectors_are_the_librarys(capsys):
    texts = [f"item number {i}; a category > another" for i in range(40)]
    embedder = build_embedder(EmbedConfig(batch_size=16))
    vectors = embedder.encode(texts)
    err = capsys.readouterr().err
    assert "embed: 100%" in err and "3/3" in err and "Batches" not in err and "Loading weights" not in err
    direct = embedder._load().encode(texts, batch_size=16, normalize_embeddings=True, convert_to_numpy=True)
    assert vectors.shape == (40, 384) and np.array_equal(vectors, direct.astype(np.float32))
