"""TIGER: overfitting one batch, KV-cached decoding == teacher forcing, beam folding, attention impls, PAD."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sidrec.data.batches import encoder_inputs
from sidrec.models import TIGER, build_model
from sidrec.models.layers import attend
from sidrec.models.tiger import BOS, PAD
from sidrec.recommender import SIDRecommender, item_token_table

SIZES = (4, 4, 3)
N_ITEMS = 24


def random_sids(seed: int) -> np.ndarray:
    """(N_ITEMS, L) distinct SIDs."""
    flat = np.random.default_rng(seed).choice(int(np.prod(SIZES)), size=N_ITEMS, replace=False)
    return np.stack(np.unravel_index(flat, SIZES), axis=1).astype(np.int64)


def make_batch(model: TIGER, n: int = 8, seed: int = 0) -> tuple[dict[str, torch.Tensor], np.ndarray, list]:
    """Random histories of 1..5 items over N_ITEMS items with random distinct SIDs, and target codes."""
    rng = np.random.default_rng(seed)
    sids = random_sids(seed)
    histories = [rng.integers(1, N_ITEMS + 1, size=int(rng.integers(1, 6))) for _ in range(n)]
    targets = rng.integers(1, N_ITEMS + 1, size=n)
    tokens, positions = encoder_inputs(
        histories, item_token_table(sids, model.shape.offsets), max_history=model.shape.max_history
    )
    codes = torch.from_numpy(sids[targets - 1])
    return {"tokens": tokens, "positions": positions, "codes": codes}, sids, histories


def teacher_forced_logprobs(model: TIGER, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Per-level log-softmax of the full-sequence forward pass that `TIGER.loss` runs."""
    memory, bias = model.encode(batch["tokens"], batch["positions"])
    x = model.tok(model.decoder_inputs(batch["codes"])) + model.dec_pos.weight[None]
    for block, mkv in zip(model.decoder, model.memory_kv(memory), strict=True):
        x, _ = block(x, mkv, bias, model.causal)
    x = model.dec_norm(x)
    return [head(x[:, level]).log_softmax(-1) for level, head in enumerate(model.heads)]


def stepwise_logprobs(model: TIGER, batch: dict[str, torch.Tensor], codes: torch.Tensor, beams: int = 1):
    """Decode `codes` (B*beams, L) level by level with the KV cache; per-level log-probs."""
    memory, bias = model.encode(batch["tokens"], batch["positions"])
    kv, cache, out = model.memory_kv(memory), None, []
    for level in range(model.n_levels):
        if level == 0:
            tokens = torch.full((codes.shape[0],), BOS, dtype=torch.long)
        else:
            tokens = codes[:, level - 1] + model.shape.offsets[level - 1]
        logp, cache = model.decode_step(tokens, level, kv, bias, cache, beams=beams)
        out.append(logp)
    return out


def test_build_model_from_config():
    from sidrec.config import ModelConfig

    cfg = ModelConfig().replace(
        name="tiger", d_model=32, n_heads=2, d_head=16, d_ff=64, n_enc_layers=1, n_dec_layers=1, attention="math"
    )
    model = build_model(cfg, level_sizes=SIZES, max_history=6)
    assert model.shape.level_sizes == SIZES and model.shape.attention == "math"
    assert model.shape.vocab_size == 2 + sum(SIZES)
    assert model.shape.offsets == (2, 6, 10)
    with pytest.raises(ValueError, match="unknown model.name"):
        build_model(ModelConfig(name="caser"), level_sizes=SIZES, max_history=6)


def test_overfits_one_batch_and_decodes_the_targets(make_tiger):
    torch.manual_seed(0)
    model = make_tiger(SIZES)
    batch, sids, histories = make_batch(model, n=16, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    with torch.no_grad():
        first = float(model.loss(batch))
    for _ in range(150):
        loss = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        final = float(model.loss(batch))
    assert first > 1.0  # about log(4) at initialisation
    assert final < 0.05
    targets = {tuple(c) for c in batch["codes"].tolist()}
    assert len(targets) > 1
    expected = np.array([np.flatnonzero((sids == c).all(1))[0] + 1 for c in batch["codes"].numpy()])
    for width in (1, 4):  # greedy and beam
        rec = SIDRecommender(model, sids, beam_width=width, constrained=True, bf16=False)
        top = rec.recommend(histories, k=1).items[:, 0]
        assert (top == expected).mean() >= 0.9


@pytest.mark.parametrize("attention", ["math", "sdpa"])
def test_cached_decoding_equals_teacher_forcing(attention, make_tiger):
    model = make_tiger(SIZES, seed=1, attention=attention)
    batch, _, _ = make_batch(model, seed=2)
    with torch.no_grad():
        full = teacher_forced_logprobs(model, batch)
        loss = model.loss(batch)
    steps = stepwise_logprobs(model, batch, batch["codes"])
    for level in range(len(SIZES)):
        assert steps[level].shape == (8, SIZES[level])
        torch.testing.assert_close(steps[level], full[level], atol=1e-4, rtol=0)
    picked = torch.stack([steps[lvl].gather(1, batch["codes"][:, lvl : lvl + 1])[:, 0] for lvl in range(len(SIZES))])
    assert float(loss) == pytest.approx(float(-picked.mean(1).mean()), abs=1e-4)  # loss = mean CE over levels


def test_beams_folded_into_cross_attention_equal_repeated_memory(make_tiger):
    model = make_tiger(SIZES, seed=2)
    batch, _, _ = make_batch(model, n=3, seed=3)
    w = 5
    gen = torch.Generator().manual_seed(0)
    codes = torch.stack([torch.randint(0, k, (3 * w,), generator=gen) for k in SIZES], dim=1)  # (B*W, L)
    folded = stepwise_logprobs(model, batch, codes, beams=w)
    repeated_batch = {k: v.repeat_interleave(w, dim=0) for k, v in batch.items()}  # row b*W + j = user b
    repeated = stepwise_logprobs(model, repeated_batch, codes, beams=1)
    for a, b in zip(folded, repeated, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_attention_impls_agree(make_tiger):
    math_model = make_tiger(SIZES, seed=3, attention="math")
    sdpa_model = make_tiger(SIZES, seed=4, attention="sdpa")
    sdpa_model.load_state_dict(math_model.state_dict())
    batch, _, _ = make_batch(math_model, seed=4)
    with torch.no_grad():
        assert float(math_model.loss(batch)) == pytest.approx(float(sdpa_model.loss(batch)), abs=1e-5)
    for a, b in zip(
        stepwise_logprobs(math_model, batch, batch["codes"]),
        stepwise_logprobs(sdpa_model, batch, batch["codes"]),
        strict=True,
    ):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_attend_math_equals_sdpa_with_mask():
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, n, 8, generator=gen) for n in (4, 6, 6))
    bias = torch.zeros(2, 1, 1, 6)
    bias[0, ..., 4:] = -1e9
    torch.testing.assert_close(attend(q, k, v, bias, "math"), attend(q, k, v, bias, "sdpa"), atol=1e-5, rtol=0)
    torch.testing.assert_close(attend(q, k, v, None, "math"), attend(q, k, v, None, "sdpa"), atol=1e-5, rtol=0)
    masked = attend(q, k, v, bias, "math")[0]
    torch.testing.assert_close(masked, attend(q[:1], k[:1, :, :4], v[:1, :, :4], None, "math")[0], atol=1e-5, rtol=0)


def test_padding_does_not_change_the_output(make_tiger):
    model = make_tiger(SIZES, seed=5)
    batch, _, _ = make_batch(model, seed=5)
    extra = torch.zeros(batch["tokens"].shape[0], 7, dtype=torch.long)  # PAD tokens at position 0
    padded = {**batch, "tokens": torch.cat([batch["tokens"], extra + PAD], 1)}
    padded["positions"] = torch.cat([batch["positions"], extra], 1)
    for a, b in zip(
        stepwise_logprobs(model, batch, batch["codes"]),
        stepwise_logprobs(model, padded, batch["codes"]),
        strict=True,
    ):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    with torch.no_grad():
        assert float(model.loss(batch)) == pytest.approx(float(model.loss(padded)), abs=1e-5)


def test_history_alone_equals_history_in_a_padded_batch(make_tiger):
    model = make_tiger(SIZES, seed=6)
    sids = random_sids(6)
    table = item_token_table(sids, model.shape.offsets)
    short, long = np.array([3, 7]), np.array([1, 2, 3, 4, 5])
    alone = dict(zip(("tokens", "positions"), encoder_inputs([short], table, max_history=6), strict=True))
    pair = dict(zip(("tokens", "positions"), encoder_inputs([short, long], table, max_history=6), strict=True))
    assert pair["tokens"].shape[1] > alone["tokens"].shape[1]
    codes = torch.tensor([[1, 2, 0]])
    a = stepwise_logprobs(model, alone, codes)
    b = stepwise_logprobs(model, pair, codes.repeat(2, 1))
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x[0], y[0], atol=1e-5, rtol=0)


def test_empty_history_gives_finite_logprobs(make_tiger):
    model = make_tiger(SIZES, seed=7)
    table = item_token_table(random_sids(0), model.shape.offsets)
    tokens, positions = encoder_inputs([np.zeros(0, dtype=np.int64)], table, max_history=6)
    steps = stepwise_logprobs(model, {"tokens": tokens, "positions": positions}, torch.tensor([[0, 0, 0]]))
    for logp in steps:
        assert torch.isfinite(logp).all()
        assert float(logp.exp().sum()) == pytest.approx(1.0, abs=1e-5)
