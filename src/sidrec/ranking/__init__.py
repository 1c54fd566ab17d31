"""Generative ranking behind the retriever: an HSTU ranker over events, the `rank` stage, the two-stage recommender.

`rank.enabled=true` adds the `rank` stage after evaluate; `sidrec.load` and `sidrec serve` then rank the
retriever's candidates with it (`two_stage.TwoStageRecommender`).
"""

from sidrec.ranking.model import RANKERS, HSTURanker, RankerShape
from sidrec.ranking.two_stage import TwoStageRecommender, rerank

__all__ = ["RANKERS", "HSTURanker", "RankerShape", "TwoStageRecommender", "rerank"]
