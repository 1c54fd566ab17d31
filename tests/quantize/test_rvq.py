from __future__ import annotations

import dataclasses

import torch

from sidrec.config import QuantizeConfig
from sidrec.quantize import RVQ, build_quantizer
from sidrec.quantize.rvq import ResidualCodebooks

CFG = QuantizeConfig(name="rvq", levels=3, codebook_size=8, kmeans_iters=20, epochs=15, batch_size=64)


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b) ** 2).sum(1).mean())


def test_codes_shape_range_and_new_data(make_data):
    x = make_data()
    q = build_quantizer(CFG, 16, seed=0)
    assert isinstance(q, RVQ)
    q.fit(x)
    codes = q.encode(x)
    assert codes.shape == (256, 3) and codes.dtype == torch.int64
    assert int(codes.min()) >= 0 and int(codes.max()) < 8
    new = q.encode(make_data(n=20, seed=3))
    assert new.shape == (20, 3) and int(new.max()) < 8
    assert q.decode(codes).shape == (256, 16)


def test_error_does_not_increase_with_levels(make_data):
    # Prefixes of one fit: after k-means init, level l's codebook loss pulls each code to the mean of
    # the level-l residuals assigned to it (online k-means), so adding a level cannot raise the
    # training error by more than optimisation noise. A small slack keeps the check honest but robust.
    x = make_data()
    q = build_quantizer(CFG, 16, seed=0).fit(x)
    codes = q.encode(x)
    errs = [_mse(q.decode(codes[:, :level]), x) for level in (1, 2, 3)]
    assert _mse(torch.zeros_like(x), x) > errs[0] >= errs[1] * 0.99 and errs[1] >= errs[2] * 0.99
    assert errs[2] < 0.5 * errs[0]


def test_training_improves_on_kmeans_init(make_data):
    x = make_data()
    init = build_quantizer(dataclasses.replace(CFG, epochs=0), 16, seed=0).fit(x)
    trained = build_quantizer(CFG, 16, seed=0).fit(x)
    assert _mse(trained.decode(trained.encode(x)), x) <= 1.05 * _mse(init.decode(init.encode(x)), x)


def test_deterministic_and_state_round_trip(make_data, tmp_path):
    x = make_data()
    a = build_quantizer(CFG, 16, seed=4).fit(x)
    b = build_quantizer(CFG, 16, seed=4).fit(x)
    assert torch.equal(a.encode(x), b.encode(x))
    torch.save(a.state_dict(), tmp_path / "rvq.pt")
    fresh = build_quantizer(CFG, 16, seed=4)
    fresh.load_state_dict(torch.load(tmp_path / "rvq.pt"))
    assert torch.equal(fresh.encode(x), a.encode(x))


def test_reset_dead_moves_codes_to_batch_residuals():
    rq = ResidualCodebooks(levels=2, codebook_size=4, dim=3, beta=0.25)
    opt = torch.optim.Adam(rq.parameters(), lr=1e-2)
    rq.codebooks.data.normal_()
    residuals = [torch.randn(5, 3), torch.randn(5, 3)]  # (B, D) per level
    rq(residuals[0]).loss.backward()
    opt.step()  # creates Adam moments
    before = rq.codebooks.detach().clone()
    dead = torch.tensor([[False, True, False, False], [True, False, False, True]])  # (L, K)
    n = rq.reset_dead(dead, residuals, torch.Generator().manual_seed(0), opt)
    assert n == 3
    assert torch.equal(rq.codebooks[~dead], before[~dead])
    for level, code in dead.nonzero().tolist():
        row = rq.codebooks[level, code]
        assert any(torch.equal(row, r) for r in residuals[level])
        assert not opt.state[rq.codebooks]["exp_avg"][level, code].any()


def test_fit_resets_dead_codes_each_epoch_but_the_last(make_data, monkeypatch):
    calls = []
    original = ResidualCodebooks.reset_dead

    def spy(self, dead, residuals, gen, opt):
        calls.append(dead.clone())
        return original(self, dead, residuals, gen, opt)

    monkeypatch.setattr(ResidualCodebooks, "reset_dead", spy)
    cfg = dataclasses.replace(CFG, epochs=3, dead_code_threshold=1e9)  # every code counts as dead
    build_quantizer(cfg, 16, seed=0).fit(make_data())
    assert len(calls) == 2 and all(d.shape == (3, 8) and bool(d.all()) for d in calls)
