"""The chunked full-softmax cross-entropy equals the textbook one, values and gradients."""

import pytest
import torch
import torch.nn.functional as F

from sidrec.models.id_objectives import PAD, FullSoftmaxCE, sequence_loss


@pytest.mark.parametrize("m", [1, 127, 300])  # below, at and across the chunk size
def test_full_softmax_ce_matches_cross_entropy(m):
    g = torch.Generator().manual_seed(m)
    h = torch.randn(m, 16, generator=g, dtype=torch.float64).float().requires_grad_()
    table = torch.randn(50, 16, generator=g).requires_grad_()
    y = torch.randint(1, 50, (m,), generator=g)
    logits = h @ table.T
    logits = logits.masked_fill(torch.arange(50) == PAD, float("-inf"))
    ref = F.cross_entropy(logits, y)
    ref_h, ref_t = torch.autograd.grad(ref, (h, table))
    ours = FullSoftmaxCE.apply(h, table, y, False)
    got_h, got_t = torch.autograd.grad(ours, (h, table))
    assert torch.allclose(ours, ref, atol=1e-5)
    assert torch.allclose(got_h, ref_h, atol=1e-5)
    assert torch.allclose(got_t, ref_t, atol=1e-5)
    assert got_t[PAD].abs().max() < 1e-6  # padding is never a candidate, so it gets no gradient


def test_sequence_loss_ce_under_bf16_autocast_is_close():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(4, 6, 32, generator=g)
    targets = torch.randint(0, 200, (4, 6), generator=g)
    table = torch.randn(200, 32, generator=g) * 0.3
    exact = sequence_loss(hidden, targets, table, "ce", 0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = sequence_loss(hidden, targets, table, "ce", 0)
    assert low.dtype == torch.float32
    assert abs(float(low) - float(exact)) < 0.05 * float(exact)


@pytest.mark.parametrize("name", ["sasrec", "hstu"])
def test_cosine_scores_are_bounded_and_match_the_definition(make_id_model, name):
    """temperature > 0: score = cos(output, item) / temperature, so |score| <= 1 / t; padding stays -inf."""
    t = 0.05
    model = make_id_model(name, temperature=t).eval()
    inputs = torch.tensor([[0, 0, 3, 7, 1], [5, 2, 9, 4, 6]])
    with torch.no_grad():
        scores = model.score_all(inputs)
        h = model.hidden(inputs)[:, -1]
        expected = F.cosine_similarity(h[:, None, :], model.item.weight[None, 1:, :], dim=-1) / t
    assert torch.isneginf(scores[:, 0]).all()
    assert scores[:, 1:].abs().max() <= 1 / t + 1e-4
    torch.testing.assert_close(scores[:, 1:], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["sasrec", "hstu"])
def test_cosine_model_overfits_one_batch(make_id_model, make_id_batch, name):
    from id_contract import check_overfits

    model = make_id_model(name, temperature=0.05)
    batch = make_id_batch(16)
    assert check_overfits(model, batch) < 0.2


def test_negative_temperature_fails_clearly(make_id_model):
    with pytest.raises(ValueError, match="model.sasrec.temperature must be >= 0"):
        make_id_model("sasrec", temperature=-1.0)
