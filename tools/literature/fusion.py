"""Rank fusion and score arithmetic for hybrid retrieval (pure functions)."""

from __future__ import annotations

from collections.abc import Sequence


def rrf_fuse(rankings: list[list[str]], k: int = 60) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: each id scores ``sum(1 / (k + rank))`` over the rankings it appears in.

    Ranks are 1-based; an id repeated within one ranking counts at its best rank only. The result
    is sorted by descending score, ties broken by the best rank reached and then by id so the
    output is deterministic.
    """
    if k < 0:
        raise ValueError("k must be non-negative")
    scores: dict[str, float] = {}
    best: dict[str, int] = {}
    for ranking in rankings:
        seen: set[str] = set()
        for rank, item in enumerate(ranking, start=1):
            if item in seen:
                continue
            seen.add(item)
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
            best[item] = min(best.get(item, rank), rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], best[kv[0]], kv[0]))


def rrf_max(n_rankings: int, k: int = 60) -> float:
    """The largest score ``rrf_fuse`` can give: first place in every ranking."""
    return n_rankings / (k + 1)


def best_rank_order(items: Sequence[str]) -> list[str]:
    """Collapse a ranked list of possibly repeated ids to first occurrences (chunk -> document)."""
    seen: set[str] = set()
    ordered: list[str] = []
    for item in items:
        if item not in seen:
            seen.add(item)
            ordered.append(item)
    return ordered
