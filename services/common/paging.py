"""Cursor paging for every listing of both services: one helper, the same rules everywhere.

A listing returns ``{"items": [...], "next_cursor": ..., "limit": n}`` in a stable order by the
resource's id (ascending). ``next_cursor`` is opaque (base64url of the listing's name and the last
id seen); pass it back as ``cursor`` with the same filters for the next page; ``null`` means the end.
A page may hold fewer than ``limit`` items and still have a ``next_cursor`` (filters decided item by
item scan a bounded number of rows per request), so clients stop on ``next_cursor`` only.

Ids, not offsets: an object created while a client pages never shifts a page, and a deep page
costs one indexed range scan. A cursor of another listing, or one that does not decode, is a 422
``invalid-cursor`` problem, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from services.common.problems import Problem

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# Rows examined per request at most, for filters decided row by row (chain state, scopes).
SCAN_FACTOR = 10


class Page(BaseModel, Generic[T]):
    """One page of a listing."""

    items: list[T]
    next_cursor: str | None = Field(
        description="pass as `cursor` (same filters) for the next page; null: no more items"
    )
    limit: int


@dataclass(frozen=True)
class PageQuery:
    """The paging query parameters every listing takes."""

    cursor: str | None
    limit: int


def _page_query(
    cursor: Annotated[
        str | None,
        Query(max_length=400, description="`next_cursor` of the previous page; omit for the first page"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"items per page, at most {MAX_LIMIT}")] = (
        DEFAULT_LIMIT
    ),
) -> PageQuery:
    return PageQuery(cursor, limit)


Paging = Annotated[PageQuery, Depends(_page_query)]


def encode_cursor(listing: str, after: str | int) -> str:
    raw = json.dumps({"l": listing, "a": after}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _bad_cursor(why: str) -> Problem:
    return Problem(422, "invalid-cursor", "The cursor is invalid", why)


def decode_cursor(listing: str, cursor: str | None, kind: type[str] | type[int]) -> str | int | None:
    """The last id of the previous page, or None for the first page (422 if it does not decode)."""
    if cursor is None:
        return None
    try:
        doc = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _bad_cursor("not a cursor this service issued") from None
    if not isinstance(doc, dict) or doc.get("l") != listing:
        raise _bad_cursor(f"not a cursor of this listing ({listing})")
    after = doc.get("a")
    if type(after) is not kind or (kind is int and not -(2**63) < after < 2**63):  # type: ignore[operator]
        raise _bad_cursor("not a cursor this service issued")
    return after  # type: ignore[no-any-return]


def paginate(
    session: Session,
    stmt: Select[Any],
    id_column: InstrumentedAttribute[Any],
    paging: PageQuery,
    listing: str,
    *,
    keep: Callable[[Any], bool] | None = None,
) -> tuple[list[Any], str | None]:
    """The rows of ``stmt`` (a select of one entity) after the cursor, in ``id_column`` order, at
    most ``paging.limit`` of them, and the cursor of the next page (None at the end).

    ``keep`` decides rows the query cannot (chain state, per-row scopes); then at most
    ``SCAN_FACTOR * limit`` rows are examined and a short page with a cursor may come back."""
    python_type = id_column.type.python_type
    after = decode_cursor(listing, paging.cursor, int if python_type is int else str)
    base = stmt.order_by(id_column)
    if after is not None:
        base = base.where(id_column > after)
    limit = paging.limit
    if keep is None:
        rows = list(session.scalars(base.limit(limit + 1)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        last = getattr(rows[-1], id_column.key) if rows else None
        return rows, encode_cursor(listing, last) if more and last is not None else None
    kept: list[Any] = []
    budget = SCAN_FACTOR * limit
    scanned_last: Any = None
    while budget > 0:
        batch: Sequence[Any] = session.scalars(
            (base.where(id_column > scanned_last) if scanned_last is not None else base).limit(limit + 1)
        ).all()
        if not batch:
            return kept, None
        for row in batch:
            if len(kept) == limit:  # a row remains beyond a full page
                return kept, encode_cursor(listing, getattr(kept[-1], id_column.key))
            scanned_last = getattr(row, id_column.key)
            budget -= 1
            if keep(row):
                kept.append(row)
            if budget == 0:
                break
        if len(batch) <= limit and len(kept) < limit and budget > 0:
            return kept, None
    return kept, encode_cursor(listing, scanned_last)


def paginate_list(
    items: Sequence[Any],
    key: Callable[[Any], Any],
    paging: PageQuery,
    listing: str,
    kind: type[int] | type[str] = int,
) -> tuple[list[Any], str | None]:
    """:func:`paginate` for a list already in memory (ids read from the chain), in ``key`` order
    (ids of type ``kind``); ``items`` hold only what the filters kept."""
    after = decode_cursor(listing, paging.cursor, kind)
    rest = [i for i in sorted(items, key=key) if after is None or key(i) > after]
    page = rest[: paging.limit]
    more = len(rest) > paging.limit
    return page, encode_cursor(listing, key(page[-1])) if more else None
