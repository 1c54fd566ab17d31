from __future__ import annotations

import torch

from sidrec.config import QuantizeConfig
from sidrec.quantize import RVQ, build_quantizer
from sidrec.quantize.rvq import ResidualCodebooks

CFG = QuantizeConfig().replace(name="rvq", levels=3, codebook_size=8, kmeans_iters=20, epochs=15, batch_size=64)


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
    init = build_quantizer(CFG.replace(epochs=0), 16, seed=0).fit(x)
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


def test_reset_dead_moves_codes_onto_the_worst_served_points():
    rq = ResidualCodebooks(levels=2, codebook_size=4, dim=2, beta=0.25)
    opt = torch.optim.Adam(rq.parameters(), lr=1e-2)
    z = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0], [0.0, 3.0], [0.0, 0.2]])  # (N, D)
    rq.codebooks.data[0] = torch.tensor([[0.0, 0.0], [9.0, 9.0], [8.0, 9.0], [9.0, 8.0]])  # 1..3 unused
    rq.codebooks.data[1] = torch.tensor([[0.0, 0.0], [1.0, 1.0], [7.0, 7.0], [7.0, 6.0]])
    rq(z).loss.backward()
    opt.step()  # creates Adam moments
    level1 = rq.codebooks[1].detach().clone()
    n = rq.reset_dead(z, 1.0, opt)
    # level 0: the three dead codes take the three worst-served points, worst first
    assert torch.equal(rq.codebooks[0, 1:], z[[2, 3, 4]])
    assert n[0] == 3
    # level 1 sees the residuals after the level-0 resets; every reset code is zeroed in Adam
    state = opt.state[rq.codebooks]["exp_avg"]
    assert not state[0, 1:].any()
    assert n[1] == int((rq.codebooks[1] != level1).any(1).sum())
    used = [set(rq.assign(z)[:, level].tolist()) for level in range(2)]
    assert len(used[0]) == 4  # every level-0 code now serves a point


def test_reset_dead_with_more_dead_codes_than_points():
    rq = ResidualCodebooks(levels=1, codebook_size=8, dim=2, beta=0.25)
    opt = torch.optim.Adam(rq.parameters(), lr=1e-2)
    z = torch.randn(3, 2)
    n = rq.reset_dead(z, 1e9, opt)  # every code is dead, only 3 points to move them to
    assert n.tolist() == [3]
    assert torch.isfinite(rq.codebooks).all()


def test_fit_resets_dead_codes_each_epoch_but_the_last(make_data, monkeypatch):
    calls = []
    original = ResidualCodebooks.reset_dead

    def spy(self, z, threshold, opt):
        calls.append(z.shape)
        return original(self, z, threshold, opt)

    monkeypatch.setattr(ResidualCodebooks, "reset_dead", spy)
    cfg = CFG.replace(epochs=3, dead_code_threshold=1e9)  # every code counts as dead
    build_quantizer(cfg, 16, seed=0).fit(make_data())
    assert calls == [(256, 16), (256, 16)]  # the whole data set, after epochs 1 and 2
