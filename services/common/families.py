"""How an app is assembled from its families.

A family (prepaid, disburse, vouchers, collective, hardwallet, ...) is a folder of its own in each
app (``services/operator/families/<name>/``, ``services/gateway/families/<name>/``) holding its
routes, schemas, builders and service logic. The folder's ``__init__.py`` exports one
:class:`FamilyModule`; the app's ``families/__init__.py`` lists them, and the app includes their
routers and merges their builder tables at start-up. Nothing is registered by import side effect.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter

from services.common.operations import Builder


@dataclass(frozen=True)
class FamilyModule:
    """One family's share of an app: its routers and its operation builders (kind -> builder)."""

    name: str
    routers: tuple[APIRouter, ...] = ()
    builders: Mapping[str, Builder] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)


def merged_builders(modules: Iterable[FamilyModule]) -> dict[str, Builder]:
    """The builder tables of ``modules`` as one; a kind claimed twice is a programming error."""
    table: dict[str, Builder] = {}
    for module in modules:
        for kind, fn in module.builders.items():
            if kind in table:
                raise ValueError(f"operation kind {kind!r} is built by two families")
            table[kind] = fn
    return table
