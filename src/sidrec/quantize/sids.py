"""From quantizer codes to unique Semantic IDs, and statistics on both.

Deduplication (several items can share all L codes):
- `tiger` (TIGER, Rajput et al., NeurIPS 2023): append one column, 0 for the first item of each group
  of identical code tuples and 1, 2, ... for the next ones in row order. The extra digit can exceed
  codebook_size - 1 when a group is larger than the codebook; `sid_stats` reports its max.
- `random`: keep L columns; each colliding item after the first re-draws its last code uniformly among
  the codes not used by any item under the same (L-1)-code prefix.
- `none`: codes unchanged (SIDs may collide); at decoding, a beam on a shared SID yields one of its items
  drawn at random (seeded) and the others follow once every beam has placed one (GRID, Table 7).
"""

from __future__ import annotations

import logging
import math

import numpy as np

logger = logging.getLogger(__name__)

DEDUP_METHODS = ("tiger", "random", "none")
EXTRA_DIGIT = frozenset({"tiger"})  # the methods that append a digit to every SID (TIGER's collision counter)


def _check_codes(codes: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] < 1:
        raise ValueError(f"codes must be a 2-D (N, L) integer array with L >= 1, got shape {codes.shape}")
    if codes.size and not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"codes must be integers, got dtype {codes.dtype}")
    return codes.astype(np.int64, copy=False)


def _group_ids(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group index of each row (N,) and size of each group (G,) for identical rows.

    Groups are numbered in the lexicographic order of their rows, as `np.unique(codes, axis=0)` does;
    rows of non-negative codes are packed into one int64 key first (mixed radix, so the order is the
    same), which sorts 10^7 rows in about a second instead of a structured-array sort.
    """
    if codes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    radix = codes.max(0).astype(np.int64) + 1  # (L,)
    if codes.min() >= 0 and float(np.prod(radix.astype(np.float64))) < 2.0**62:
        key = np.zeros(codes.shape[0], dtype=np.int64)
        for level in range(codes.shape[1]):
            key = key * radix[level] + codes[:, level]  # (N,)
        _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    else:
        _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return inverse.reshape(-1), counts


def _dedup_tiger(codes: np.ndarray) -> np.ndarray:
    inverse, _ = _group_ids(codes)  # (N,)
    order = np.argsort(inverse, kind="stable")  # rows grouped, row order kept inside a group
    sorted_groups = inverse[order]  # (N,)
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]  # first position of each group
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))  # (N,)
    digit = np.empty(len(order), dtype=np.int64)
    digit[order] = rank
    return np.concatenate([codes, digit[:, None]], axis=1)  # (N, L+1)


def _dedup_random(codes: np.ndarray, codebook_size: int, seed: int) -> np.ndarray:
    out = codes.copy()
    if codes.size and codes.max() >= codebook_size:
        raise ValueError(f"codes reach {codes.max()} but codebook_size is {codebook_size}")
    used: dict[tuple[int, ...], set[int]] = {}
    for row in codes.tolist():  # every code present anywhere is taken, also by later rows
        used.setdefault(tuple(row[:-1]), set()).add(row[-1])
    seen: set[tuple[int, ...]] = set()
    rng = np.random.default_rng(seed)
    for i, row in enumerate(codes.tolist()):
        key = tuple(row)
        if key not in seen:
            seen.add(key)
            continue
        prefix = key[:-1]
        taken = used[prefix]
        free = np.setdiff1d(np.arange(codebook_size), np.fromiter(taken, dtype=np.int64))
        if free.size == 0:
            raise ValueError(
                f"dedup=random: all {codebook_size} last-level codes under prefix {list(prefix)} are taken "
                f"(item row {i}); use quantize.dedup=tiger, which appends a collision digit instead"
            )
        new = int(rng.choice(free))
        out[i, -1] = new
        taken.add(new)
        seen.add((*prefix, new))
    return out


def deduplicate(codes: np.ndarray, method: str, codebook_size: int, seed: int) -> np.ndarray:
    """Make every item's Semantic ID unique.

    Args:
        codes: (N, L) integer codes in [0, codebook_size).
        method: `tiger` | `random` | `none` (see module docstring).
        codebook_size: K, the codes available per level (used by `random`).
        seed: seed of the `random` re-draws.

    Returns:
        int64 SIDs: (N, L + 1) for `tiger`, (N, L) otherwise.
    """
    codes = _check_codes(codes)
    if method not in DEDUP:
        raise ValueError(f"unknown quantize.dedup '{method}'; choose one of {', '.join(DEDUP_METHODS)}")
    return DEDUP[method](codes, codebook_size, seed)


def _tiger(codes: np.ndarray, codebook_size: int, seed: int) -> np.ndarray:
    sids = _dedup_tiger(codes)
    if sids.shape[0] and sids[:, -1].max() >= codebook_size:
        logger.warning(
            "dedup=tiger: a collision group has %d items, more than codebook_size=%d; the dedup digit "
            "exceeds the per-level code range",
            int(sids[:, -1].max()) + 1,
            codebook_size,
        )
    return sids


# quantize.dedup -> (codes, codebook_size, seed) -> SIDs
DEDUP = {"tiger": _tiger, "random": _dedup_random, "none": lambda codes, codebook_size, seed: codes}


def extend_unique(
    taken: np.ndarray, codes: np.ndarray, method: str, codebook_size: int, seed: int, limit: int | None = None
) -> np.ndarray:
    """SIDs for new items' (A, L) codes, unique against the (N, L [+1]) SIDs `taken`, which stay as they are:
    `deduplicate` over the taken items then the new ones (every method keeps the first of each code tuple and the
    rows' order, so the taken rows come out as they were). `limit`: how many values a collision digit may take."""
    codes, taken = _check_codes(codes), np.asarray(taken)
    both = np.concatenate([taken[:, : codes.shape[1]], codes])
    new = deduplicate(both, method, codebook_size, seed + len(taken))[len(taken) :]
    if method in EXTRA_DIGIT and limit is not None and new.size and int(new[:, -1].max()) >= limit:
        i = int(np.argmax(new[:, -1] >= limit))
        raise ValueError(
            f"new item {i + 1}: {int(new[i, -1]) + 1} items share its codes {codes[i].tolist()}, more than the trained "
            f"model's collision digit holds ({limit}); retrain to add it"
        )
    return new


def _perplexity(col: np.ndarray) -> float:
    if col.size == 0:
        return 0.0
    p = np.unique(col, return_counts=True)[1] / col.size  # (used,)
    return float(math.exp(-(p * np.log(p)).sum()))


def sid_stats(codes: np.ndarray, sids: np.ndarray, codebook_size: int) -> dict:
    """Code usage and collision statistics (plain JSON-serialisable types).

    Args:
        codes: (N, L) quantizer codes before deduplication.
        sids: (N, L') Semantic IDs after deduplication (L' = L or L + 1).
        codebook_size: K.

    Returns:
        dict with `n_items`, `levels`, `codebook_size`, `per_level` (list of {level, codes_used, usage,
        perplexity, max_items_per_code}), `collision_rate` (share of items whose L-code tuple another item shares),
        `collision_groups` (tuples shared by >= 2 items), `max_collision_group` (largest group size),
        `unique_sid_share` (distinct SIDs / N), `dedup_extra_levels` (L' - L) and `dedup_max` (max of
        the appended digit, 0 without one).
    """
    codes = _check_codes(codes)
    sids = _check_codes(sids)
    n, levels = codes.shape
    if sids.shape[0] != n:
        raise ValueError(f"codes and sids disagree on the number of items: {n} vs {sids.shape[0]}")
    per_level = []
    for level in range(levels):
        used = int(np.unique(codes[:, level]).size)
        per_level.append(
            {
                "level": level + 1,
                "codes_used": used,
                "usage": used / codebook_size,
                "perplexity": _perplexity(codes[:, level]),
                "max_items_per_code": int(np.bincount(codes[:, level]).max()) if n else 0,  # balance: ceil(N / K)
            }
        )
    _, counts = _group_ids(codes)  # (G,)
    shared = counts[counts > 1]
    extra = int(sids.shape[1] - levels)
    return {
        "n_items": int(n),
        "levels": int(levels),
        "codebook_size": int(codebook_size),
        "per_level": per_level,
        "collision_rate": float(shared.sum() / n) if n else 0.0,
        "collision_groups": int(shared.size),
        "max_collision_group": int(counts.max()) if n else 0,
        "unique_sid_share": float(_group_ids(sids)[1].size / n) if n else 0.0,
        "dedup_extra_levels": extra,
        "dedup_max": int(sids[:, -1].max()) if extra > 0 and n else 0,
    }


__all__ = ["EXTRA_DIGIT", "DEDUP_METHODS", "deduplicate", "extend_unique", "sid_stats"]
