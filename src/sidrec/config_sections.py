"""The sections of the stages after training: `rank` (a generative ranker behind the retriever), `reward` (a
reward model of whole sessions) and `align` (preference alignment of a SID generator to that reward, OneRec's IPA).
`config.Config` holds them beside the sections of the main run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RankConfig:
    """`rank.*`: a generative ranker behind the retriever, predicting the user's action on a candidate (`ranking`)."""

    enabled: bool = False  # train it after evaluate (`sidrec rank`); load / serve then rank the retrieved candidates
    name: str = "hstu"  # the ranker (sidrec.ranking.RANKERS)
    candidates: int = 100  # retrieved items the ranker reorders per user
    liked: int = 4  # an action >= this counts as liked (MovieLens: rated 4+)
    holdout: int = 5  # each user's last 2 x holdout events give no training label: validation, then test (AUC)
    max_events: int = 50  # the most recent events the ranker reads (two tokens each: item, then action)
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 2
    d_head: int = 32
    dropout: float = 0.2
    time_bias: bool = True  # relative attention bias by time bucket (needs timestamps in the data)
    rating_weight: float = 0.5  # weight of the action-regression tower's squared error beside the liked tower's BCE
    negatives: int = 4  # items per event the user did not choose, for the engaged tower (0: no such tower), drawn
    negatives_from: str = "mixed"  # from the retriever's top `pool` before the event | popular | mixed (half each)
    pool: int = 50
    weights: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)  # of the ranker's score beside the retriever's (blend)
    select: str = "liked"  # the weight with the best validation NDCG@10 on liked | all targets ranks and serves
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    patience: int = 5  # validation passes without an AUC gain before stopping


@dataclass(frozen=True)
class RewardConfig:
    """`reward.*`: a reward model R(u, S) of a session S of items for user u (`sidrec.align.reward`, OneRec 3.4)."""

    enabled: bool = False  # train it after `train` (align.rounds > 0 trains it too); evaluate then scores the lists
    liked: int = 4  # an action >= this counts as liked (MovieLens: rated 4+): the tower's label
    session: int = 5  # items per training session: consecutive items of a user's training sequence
    max_history: int = 50  # the most recent events (item, action) the model attends over
    d_model: int = 64
    n_heads: int = 2
    d_head: int = 32
    dropout: float = 0.1
    rating_weight: float = 0.5  # weight of the action-regression tower's squared error beside the liked tower's BCE
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    patience: int = 3  # validation passes without an AUC gain before stopping


@dataclass(frozen=True)
class AlignConfig:
    """`align.*`: iterative preference alignment (IPA, OneRec sec. 3.4) of a trained SID generator with DPO."""

    rounds: int = 0  # alignment rounds (0 = off); each round's reference model is the previous round's
    share: float = 0.1  # training users sampled per round (OneRec: 1%)
    sessions: int = 8  # N sessions beam-searched per sampled user; the reward's best is chosen, its worst rejected
    lam: float = 1.0  # weight of the DPO loss beside the next-token loss (lambda)
    beta: float = 0.1  # DPO's temperature
    epochs: int = 2  # passes over a round's preference pairs
    batch_size: int = 32  # preference pairs per step (each step also takes a batch of next-token examples)
    lr: float = 1e-4


__all__ = ["AlignConfig", "RankConfig", "RewardConfig"]
