"""What a family's dashboard section is built from (services/operator/routes/dashboard.py).

The registry (chain/families.py) says *whether* a family has a section (``Family.panel``: its key,
title, the contract it needs, its event counts); the family's own ``panel.py`` says *what* the
section shows beyond the counts: a function ``section(view) -> dict`` over a :class:`PanelView`.
The dashboard finds that function by convention (``services.<app>.families.<name>.panel``), so
adding a family's section touches its folder and its registry entry, not the dashboard.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from services.common.context import ServiceContext

T = TypeVar("T")


class Memo(Protocol):
    """``build()``, or what it gave on an earlier poll when the family's contracts (and ``extra``)
    have emitted nothing since: see ``_Tally.memo`` in the dashboard."""

    def __call__(self, build: Callable[[], T], *extra: Any) -> T: ...


@dataclass(frozen=True)
class PanelView:
    """What a section function reads: the service context (its clients by registry slot, the
    database), a memo keyed by the newest events of the family's contracts, and block times."""

    ctx: ServiceContext
    memo: Memo
    block_time: Callable[[int], int]


Section = Callable[[PanelView], dict[str, Any]]
