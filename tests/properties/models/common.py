"""What the family models share: outcomes, token moves, days and weighted strategies."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

HOUR = 3_600
DAY = 24 * HOUR
OFFSET = 8 * HOUR  # DigitalCash days start at midnight Beijing time
BPS = 10_000

Outcome = tuple[str, tuple[Any, ...]] | None  # None: success; else (custom error, its arguments)
# A token transfer (from, to, fen), or a family's payFor (family, to, fen, owner, merchant only).
Move = tuple[str, str, int] | tuple[str, str, int, str, bool]


def day(ts: int) -> int:
    return (ts + OFFSET) // DAY


def spread(lo: int, hi: int, simplest: int) -> st.SearchStrategy[int]:
    """Integers lo..hi whose simplest value (drawn most often, shrunk to) is ``simplest``."""
    n = hi - lo + 1
    return st.integers(0, n - 1).map(lambda k: lo + (simplest - lo + k) % n)


def weighted(*options: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of ``options``, in proportion to their weights; the first is the simplest. (``st.one_of``
    drops repeated strategies, so repeating one there does not weigh it.)"""
    slots = [strategy for weight, strategy in options for _ in range(weight)]
    return st.integers(0, len(slots) - 1).flatmap(lambda i: slots[i])
