"""Use a trained run from Python: `sidrec.load(run_dir).recommend(["B0001", ...], k=10)`.

`Model` speaks original item and user ids; the recommenders underneath speak item_idx (1..N).
It reaches the trained model only through `pipeline.build_recommender` and the Recommender
protocol `recommend(histories, k, users)`, so it works for SID models and item-ID models alike.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from sidrec import catalog, io
from sidrec.config import Config
from sidrec.data.schema import ITEM, ITEM_IDX, TEXT, USER, USER_IDX
from sidrec.metrics import events_read
from sidrec.recommender import recommend_lists, session_items

# How each surface says "find an id" and "drop the unknown ones": the Python API, the CLI, the HTTP API.
SURFACES = {
    "python": ("Model.search(text) finds ids by title", "pass skip_unknown=True to drop them"),
    "cli": ("items.parquet in the run directory lists them", "pass --skip-unknown to drop them"),
    "http": ("GET /items?q= searches titles", 'send "skip_unknown": true to drop them'),
}


class UnknownItemsError(ValueError, KeyError):
    """Item ids that the run's catalogue does not contain (`.items` lists them); a ValueError, and a KeyError
    for lookups by id."""

    def __init__(self, items: list[str], what: str = "in history") -> None:
        self.items, self.what = items, what
        super().__init__(self.explain("python"))

    def explain(self, surface: str) -> str:
        """The message as `surface` (python | cli | http) should say it."""
        items, (find, skip) = self.items, SURFACES[surface]
        shown = ", ".join(repr(i) for i in items[:10]) + (f" and {len(items) - 10} more" if len(items) > 10 else "")
        return f"unknown item ids {self.what}: {shown}; use ids of the run's catalogue ({find}) or {skip}"

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


@dataclass(frozen=True)
class Recommendation:
    """One recommended item: original id, 1-based rank, score (higher is better), title, Semantic ID."""

    item_id: str
    rank: int
    score: float | None  # log-probability of the SID (SID models) or the model score; None for a popularity fill
    title: str
    sid: tuple[int, ...] | None  # None for item-ID models (SASRec, HSTU)

    def to_dict(self) -> dict:
        sid = list(self.sid) if self.sid is not None else None  # dataclasses.asdict deep-copies: slow when serving
        return {"item_id": self.item_id, "rank": self.rank, "score": self.score, "title": self.title, "sid": sid}


def _titles(items: pl.DataFrame, template: str) -> list[str]:
    """Display titles: the `{title}` field when the text template starts with it, else the whole text."""
    texts = items[TEXT].to_list()
    if template.startswith("{title}"):
        sep = template[len("{title}") :].split("{", 1)[0]
        if sep:
            return [t.split(sep, 1)[0] for t in texts]
    return texts


class Model:
    """A trained run, loaded once: recommendations by original item ids, plus catalogue look-ups.

    Build it with `sidrec.load(run_dir)`. Thread-compatible: `recommend_batch` holds no state
    between calls, but callers serialise calls into one torch model (the server does).
    """

    def __init__(
        self, run_dir: str | Path, device: str = "cpu", beam_width: int | None = None, allow_unfinished: bool = False
    ) -> None:
        from sidrec.pipeline import build_recommender

        self.run_dir = Path(run_dir)
        self._device, self._beam_width, self._allow_unfinished = device, beam_width, allow_unfinished
        if not (self.run_dir / io.MODEL).exists():
            raise ValueError(
                f"{self.run_dir} has no trained model ({io.MODEL}); run `sidrec run --out {run_dir}` first"
            )
        self.config: Config = io.load_run_config(self.run_dir)
        if beam_width is not None:  # serving may trade ranking quality for speed (k above it: popularity-filled)
            if beam_width < 1:
                raise ValueError(f"beam_width={beam_width}: give a positive number of beams, e.g. 10")
            fewer = dataclasses.replace(self.config.eval, beam_width=beam_width)
            self.config = dataclasses.replace(self.config, eval=fewer)
        start = time.perf_counter()
        self.catalog_version = catalog.version(self.run_dir)  # before reading the catalog: a later addition is seen
        self.recommender, self.meta = build_recommender(self.config, self.run_dir, device, allow_unfinished)
        self.load_seconds = time.perf_counter() - start
        items = catalog.items(self.run_dir).sort(ITEM_IDX)  # the trained items, then any added since
        self.item_ids: list[str] = [str(i) for i in items[ITEM].to_list()]  # row r is item_idx r + 1
        self.titles: list[str] = _titles(items, io.text_template(self.run_dir, self.config))
        self._titles_lower = [t.lower() for t in self.titles]
        self.index: dict[str, int] = {item: r + 1 for r, item in enumerate(self.item_ids)}
        users = pl.read_parquet(self.run_dir / io.SEQUENCES, columns=[USER_IDX, USER])
        self.users: dict[str, int] = dict(zip(map(str, users[USER].to_list()), users[USER_IDX].to_list(), strict=True))
        has_sids = (self.run_dir / io.SIDS).exists() and self.is_sid_model
        self.sids: np.ndarray | None = catalog.sids(self.run_dir) if has_sids else None

    def add_items(self, path: str | Path) -> dict:
        """Add the items of a JSONL file (`item_id` and text fields per line) to this run, without retraining
        (`sidrec.catalog.add_items`), and reload so that they are recommended; returns what was added."""
        added = catalog.add_items(self.run_dir, path)
        self.refresh()
        return added

    def changed(self) -> bool:
        """Whether items were added to the run since this model loaded (the server then reloads it)."""
        return catalog.version(self.run_dir) != self.catalog_version

    def refresh(self) -> bool:
        """Reload the run if items were added since it loaded; returns whether it did. The new state is built
        aside and then swapped in: items only append, so a request in flight sees old or new ids, both valid."""
        if not self.changed():
            return False
        fresh = Model(self.run_dir, self._device, self._beam_width, self._allow_unfinished)
        self.__dict__.update(fresh.__dict__)
        return True

    @property
    def is_sid_model(self) -> bool:
        from sidrec.models import needs_sids

        return needs_sids(self.config.model.name)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def item(self, item_id: str) -> dict:
        """{item_id, title, sid} of one catalogue item (UnknownItemsError, a KeyError, if unknown)."""
        if str(item_id) not in self.index:
            error = UnknownItemsError([str(item_id)], "")
            error.args = (f"unknown item id {str(item_id)!r}; Model.search(text) finds ids by title",)
            raise error
        idx = self.index[str(item_id)]
        sid = None if self.sids is None else [int(c) for c in self.sids[idx - 1]]
        return {"item_id": self.item_ids[idx - 1], "title": self.titles[idx - 1], "sid": sid}

    def search(self, query: str, limit: int = 20) -> list[dict]:
        """Items whose title contains every word of `query` (case-insensitive), catalogue order; or whose id is it."""
        words = query.lower().split()
        if not words:
            return []
        hits = []
        if query.strip() in self.index:
            hits.append(self.index[query.strip()])
        for r, title in enumerate(self._titles_lower):
            if len(hits) >= limit:
                break
            if r + 1 not in hits and all(w in title for w in words):
                hits.append(r + 1)
        return [self.item(self.item_ids[i - 1]) for i in hits]

    def encode_history(self, history: Sequence[str], skip_unknown: bool = False) -> np.ndarray:
        """Original item ids -> item_idx, oldest first; unknown ids raise UnknownItemsError (or are skipped)."""
        if isinstance(history, str | bytes):
            raise ValueError(f"a history is a list of item ids, oldest first, not one string: write [{history!r}]")
        unknown = [str(i) for i in history if str(i) not in self.index]
        if unknown and not skip_unknown:
            raise UnknownItemsError(list(dict.fromkeys(unknown)))
        return np.asarray([self.index[str(i)] for i in history if str(i) in self.index], dtype=np.int64)

    def recommend(
        self,
        history: Sequence[str],
        k: int = 10,
        *,
        user: str | None = None,
        exclude_history: bool = False,
        skip_unknown: bool = False,
        times: Sequence[int] | None = None,
        actions: Sequence[int] | None = None,
    ) -> list[Recommendation]:
        """Top-k items for one history of original item ids (oldest first).

        Args:
            history: item ids the user interacted with, in time order; the model reads the last
                `data.max_history` of them.
            k: how many items to return (1..number of items).
            user: the original user id, for models with user tokens; unknown or None uses no user.
            exclude_history: drop items already in the history (the evaluation protocol does not).
            skip_unknown: drop history ids the catalogue lacks instead of raising UnknownItemsError.
            times: each history event's timestamp (seconds), one per history item, for a model that reads them
                (HSTU's `time_bias`); without them such a model ranks without that input.
            actions: each history event's action (e.g. its rating), likewise (HSTU's `actions`).
        """
        events = {name: [v] for name, v in (("times", times), ("actions", actions)) if v is not None}
        batch = self.recommend_batch(
            [history], k, users=[user], exclude_history=exclude_history, skip_unknown=skip_unknown, **events
        )
        return batch[0]

    def recommend_list(
        self, history: Sequence[str], n: int = 0, *, user: str | None = None, skip_unknown: bool = False
    ) -> list[Recommendation]:
        """One whole list of n items for a history, in list order. A generator trained on sessions
        (`train.target_items` m > 1, OneRec) writes its best session of m items in one beam search, filled from its
        next-item ranking when n > m; any other model gives its top n. n = 0: m items (10 for a next-item model)."""
        m = session_items(self.recommender)
        n = n or (m if m > 1 else 10)
        if not 1 <= n <= self.n_items:
            raise ValueError(f"n must be between 1 and the number of items ({self.n_items}), got {n}")
        h = self.encode_history(history, skip_unknown)
        if len(h) == 0:
            raise ValueError("the history is empty: give at least one known item id")
        user_idx = np.asarray([self.users.get(str(user), 0)], dtype=np.int64)
        with torch.inference_mode():
            items = recommend_lists(self.recommender, [h[-self.config.data.max_history :]], user_idx, n)[0]
        return [
            Recommendation(item_id=self.item_ids[i - 1], rank=rank, score=None, title=self.titles[i - 1],
                           sid=None if self.sids is None else tuple(int(c) for c in self.sids[i - 1]))
            for rank, i in enumerate((int(i) for i in items if i > 0), start=1)
        ]  # fmt: skip

    def recommend_batch(
        self,
        histories: Sequence[Sequence[str]],
        k: int = 10,
        *,
        users: Sequence[str | None] | None = None,
        exclude_history: bool = False,
        skip_unknown: bool = False,
        times: Sequence[Sequence[int]] | None = None,
        actions: Sequence[Sequence[int]] | None = None,
    ) -> list[list[Recommendation]]:
        """`recommend` for many histories in one model call (one beam search)."""
        encoded = [self.encode_history(h, skip_unknown) for h in histories]
        events = {}
        for name, given in (("times", times), ("actions", actions)):
            if given is None:
                continue
            if len(given) != len(histories):
                raise ValueError(f"{name}: give one list per history, one value per history item")
            events[name] = [self.encode_events(h, **{name: g})[name] for g, h in zip(given, histories, strict=True)]
        return self.recommend_encoded(encoded, k, users=users, exclude_history=exclude_history, events=events)

    def encode_events(self, history: Sequence[str], **given: Sequence[int] | None) -> dict[str, np.ndarray]:
        """Per-event values (times=, actions=: one per history id) kept in step with `encode_history`: the values of
        ids the catalogue lacks go with them. ValueError when a list's length differs from the history's."""
        known = np.asarray([str(i) in self.index for i in history], dtype=bool)
        out = {}
        for name, values in given.items():
            if values is None:
                continue
            if len(values) != len(history):
                raise ValueError(f"{name}: give one list per history, one value per history item "
                                 f"({len(values)} values for {len(history)} items)")  # fmt: skip
            out[name] = np.asarray(values, dtype=np.int64)[known]
        return out

    def recommend_encoded(
        self,
        histories: list[np.ndarray],
        k: int,
        *,
        users: Sequence[str | None] | None = None,
        exclude_history: bool | Sequence[bool] = False,
        events: dict[str, list[np.ndarray]] | None = None,
    ) -> list[list[Recommendation]]:
        """`recommend_batch` over item_idx histories (each non-empty); `exclude_history` may differ per row;
        `events`: per-event columns (times, actions) in step with the histories."""
        if not 1 <= k <= self.n_items:
            raise ValueError(f"k must be between 1 and the number of items ({self.n_items}), got {k}")
        for row, h in enumerate(histories):
            if len(h) == 0:
                raise ValueError(f"history {row} is empty: give at least one known item id")
        excl = [exclude_history] * len(histories) if isinstance(exclude_history, bool) else list(exclude_history)
        # An unknown or missing user reads as user_idx 0; only models with user tokens look at it.
        user_idx = np.asarray([self.users.get(str(u), 0) for u in (users or [None] * len(histories))], dtype=np.int64)
        # Excluding history items needs up to that many extra candidates beyond k.
        drop = max((len(set(h.tolist())) for h, e in zip(histories, excl, strict=True) if e), default=0)
        want = min(self.n_items, k + drop)
        cut = self.config.data.max_history
        reads = events_read(self.recommender)  # others ignore the events
        events = {n: [v[-cut:] for v in vs] for n, vs in (events or {}).items() if n in reads}
        extra = {"events": events} if events else {}
        with torch.inference_mode():
            rec = self.recommender.recommend([h[-cut:] for h in histories], want, user_idx, **extra)
        out = []
        for row, h in enumerate(histories):
            seen = set(h.tolist()) if excl[row] else set()
            picks = [
                (int(i), float(s)) for i, s in zip(rec.items[row], rec.scores[row], strict=True) if int(i) not in seen
            ]
            out.append(
                [
                    Recommendation(
                        item_id=self.item_ids[i - 1],
                        rank=rank,
                        score=s if np.isfinite(s) else None,
                        title=self.titles[i - 1],
                        sid=None if self.sids is None else tuple(int(c) for c in self.sids[i - 1]),
                    )
                    for rank, (i, s) in enumerate(picks[:k], start=1)
                ]
            )
        return out


def load(
    run_dir: str | Path, device: str = "cpu", beam_width: int | None = None, allow_unfinished: bool = False
) -> Model:
    """Load a trained run directory (written by `sidrec run --out DIR`) for recommendations.

    `beam_width` overrides the run's `eval.beam_width` for SID models (fewer beams: faster, and items
    past the beams come from popularity). A run whose training was stopped before it finished is refused
    unless `allow_unfinished` (its model is then the best epoch so far).
    """
    return Model(run_dir, device, beam_width, allow_unfinished)


def run(config: str | None = None, out: str | Path = "runs/beauty", force: bool = False, **overrides) -> dict:
    """Run the whole pipeline, like `sidrec run CONFIG key=value ... --out OUT`; returns the run record.

    `overrides` use `__` for the dot: `sidrec.run("toy", out="runs/toy", train__epochs=1)`.
    """
    from sidrec import pipeline
    from sidrec.config import load_config

    pairs = [f"{key.replace('__', '.')}={value}" for key, value in overrides.items()]
    cfg = load_config(config, pairs)
    return pipeline.run(cfg, out, force, command=f"sidrec.run({config!r}, out={str(out)!r}, {overrides})")


__all__ = ["Model", "Recommendation", "UnknownItemsError", "load", "run"]
