"""Mixture-of-experts feed-forward: top-k routing over E MLP experts, with a load-balancing loss.

Shazeer et al., "Outrageously Large Neural Networks: The Sparsely-Gated Mixture-of-Experts Layer"
(ICLR 2017) for top-k gating; the auxiliary loss of the Switch Transformer (Fedus et al., JMLR 2022):
aux = E * sum_e f_e * P_e, with f_e the share of (token, slot) assignments routed to expert e and P_e
the mean router probability of e. It is 1 under uniform routing, its minimum, and grows as routing
concentrates. Each token's output is the sum of its k experts' outputs weighted by their router
probabilities renormalised over the k. With E = 1 the layer is exactly the dense MLP.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sidrec.models.layers import MLP, Dropout


@dataclass(frozen=True)
class MoEConfig:
    """`model.<name>.*` of a generator whose feed-forward may be a mixture of experts (tiger, decoder)."""

    experts: int = 0  # mixture-of-experts feed-forward with this many experts (0 = dense MLP)
    expert_top_k: int = 2  # experts each token is routed to
    moe_aux_weight: float = 0.01  # weight of the load-balancing loss (Switch Transformer) in the training loss


class MoE(nn.Module):
    def __init__(self, *, d_model: int, d_ff: int, dropout: float, experts: int, top_k: int) -> None:
        super().__init__()
        if experts < 1 or top_k < 1:
            raise ValueError(
                f"experts and expert_top_k (model.<tiger|decoder>.*) must be >= 1, got {experts} and {top_k}"
            )
        self.n_experts, self.top_k = experts, min(top_k, experts)
        self.router = nn.Linear(d_model, experts, bias=False)
        self.experts = nn.ModuleList(MLP(d_model=d_model, d_ff=d_ff, dropout=0.0) for _ in range(experts))
        self.dropout = Dropout(dropout)
        self.aux_loss = torch.zeros(())  # of the last forward pass
        self.register_buffer("load", torch.zeros(experts), persistent=False)  # assignments since reset_load

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(-1, x.shape[-1])
        probs = self.router(flat).float().softmax(dim=-1)  # (N, E)
        weight, index = probs.topk(self.top_k, dim=-1)  # (N, k)
        weight = weight / weight.sum(dim=-1, keepdim=True)
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            rows, slot = (index == e).nonzero(as_tuple=True)
            if len(rows):
                y = expert(flat[rows]) * weight[rows, slot, None]
                out = out.index_add(0, rows, y.to(out.dtype))
        counts = torch.bincount(index.reshape(-1), minlength=self.n_experts).float()
        self.aux_loss = self.n_experts * ((counts / counts.sum()) * probs.mean(dim=0)).sum()
        if self.training:
            self.load += counts.detach()
        return self.dropout(out.reshape(x.shape))

    def reset_load(self) -> Tensor:
        """The share of assignments each expert took since the last reset (then zeroed)."""
        share = self.load / self.load.sum().clamp(min=1.0)
        self.load.zero_()
        return share


def feed_forward(*, d_model: int, d_ff: int, dropout: float, experts: int = 0, top_k: int = 2) -> nn.Module | None:
    """A mixture of `experts` MLPs for a block's `ff`, or None (experts = 0): the block builds its dense MLP."""
    if experts == 0:
        return None
    return MoE(d_model=d_model, d_ff=d_ff, dropout=dropout, experts=experts, top_k=top_k)


def aux_loss(model: nn.Module) -> Tensor | None:
    """Mean load-balancing loss over the model's MoE layers (of their last forward pass); None without any."""
    losses = [m.aux_loss for m in model.modules() if isinstance(m, MoE)]
    return torch.stack(losses).mean() if losses else None


def expert_load(model: nn.Module) -> list[list[float]]:
    """Per MoE layer, the share of assignments per expert since the last call (then reset)."""
    return [[round(v, 4) for v in m.reset_load().tolist()] for m in model.modules() if isinstance(m, MoE)]


class ExpertReporting:
    """For a generator whose `shape.experts` may be > 0: the training loop's two optional hooks (`train`)."""

    @property
    def unused_parameters(self) -> bool:
        """Whether a training step may leave parameters without a gradient (experts no token was routed to)."""
        return self.shape.experts > 0

    def epoch_metrics(self) -> dict:
        """Logged once per training epoch: each MoE layer's share of assignments per expert (then reset)."""
        return {"expert_load": expert_load(self)} if self.shape.experts else {}


__all__ = ["ExpertReporting", "MoE", "MoEConfig", "aux_loss", "expert_load", "feed_forward"]
