"""RPG (parallel long-SID model): overfits, causal, exact scores equal brute force, save / load."""

from __future__ import annotations

import id_contract
import numpy as np
import pytest
import torch

from sidrec.config import ModelConfig
from sidrec.models import build_model, load_model
from sidrec.models.rpg import RPG, RPGShape

N, M, K = 30, 4, 8


def tiny(seed: int = 0, **overrides) -> RPG:
    torch.manual_seed(seed)
    codes = np.random.default_rng(seed).integers(0, K, (N, M))
    cfg = ModelConfig(
        **{"name": "rpg", "d_model": 32, "n_heads": 2, "d_head": 16, "d_ff": 64, "n_enc_layers": 1,
           "dropout": 0.0, "temperature": 0.1, **overrides}
    )  # fmt: skip
    return build_model(cfg, max_history=8, codes=codes, codebook_size=K)


@pytest.mark.parametrize("pooling", ["mean", "concat"])
def test_overfits_a_batch(make_id_batch, pooling):
    model = tiny(pooling=pooling)
    batch = make_id_batch(n=8, n_items=N, max_len=8)
    start = model.loss(batch).item()
    assert id_contract.check_overfits(model, batch, steps=200) < 0.25 * start


def test_causal_and_padding():
    model = tiny().eval()
    id_contract.check_causal(model, n_items=N)
    id_contract.check_padding(model)


def test_exact_scores_are_the_mean_digit_log_probability():
    model = tiny().eval()
    inputs = torch.randint(0, N + 1, (5, 8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logp = model.digit_logprobs(inputs)  # (B, M, K)
        scores = model.score_all(inputs)
    assert logp.shape == (5, M, K)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(5, M))
    codes = model.codes[1:]  # (N, M)
    brute = torch.stack([logp[:, m, codes[:, m]] for m in range(M)], -1).mean(-1)  # (B, N)
    torch.testing.assert_close(scores[:, 1:], brute, rtol=1e-5, atol=1e-5)
    assert torch.isneginf(scores[:, 0]).all()


def test_loss_is_the_mean_of_the_digit_cross_entropies(make_id_batch):
    model = tiny().eval()
    batch = make_id_batch(n=4, n_items=N, max_len=8)
    keep = batch["targets"] > 0
    with torch.no_grad():
        logits = model.digit_logits(model.hidden(batch["inputs"])[keep])  # (M, P, K)
        labels = model.codes[batch["targets"][keep]]  # (P, M)
        per_digit = [torch.nn.functional.cross_entropy(logits[m], labels[:, m]) for m in range(M)]
        torch.testing.assert_close(model.loss(batch), torch.stack(per_digit).mean())


def test_heads_start_as_identity_and_save_load_keeps_codes(tmp_path):
    model = tiny()
    h = torch.randn(3, 32)
    torch.testing.assert_close(model.heads(h), h[None].expand(M, -1, -1))
    path = tmp_path / "model.pt"
    torch.save({"model": "rpg", "shape": model.config_dict(), "state_dict": model.state_dict()}, path)
    loaded, _ = load_model(str(path))
    assert torch.equal(loaded.codes, model.codes)
    inputs = torch.randint(1, N + 1, (2, 8))
    torch.testing.assert_close(loaded.score_all(inputs), model.eval().score_all(inputs))


def test_bad_settings_name_the_fix():
    with pytest.raises(ValueError, match="quantize.dedup=random"):
        RPG(RPGShape(n_items=3, n_digits=2, codebook_size=4)).set_codes(torch.tensor([[0, 1], [2, 3], [1, 4]]))
    with pytest.raises(ValueError, match="model.temperature must be > 0"):
        RPG(RPGShape(n_items=3, n_digits=2, codebook_size=4, temperature=0.0))
    with pytest.raises(ValueError, match="model.pooling"):
        RPG(RPGShape(n_items=3, n_digits=2, codebook_size=4, pooling="max"))
