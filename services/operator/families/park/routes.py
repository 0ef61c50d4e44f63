"""The closed-loop park (黄桥未来工场): thin routes over ``service``.

``POST /v1/parks`` sets a park up from its declarative file (operator; idempotent by content:
the same file again answers 200 with ``created: false`` and changes nothing). ``GET
/v1/parks/{id}`` gives the file back; ``GET /v1/parks/{id}/report`` the retention report
(operator, auditor, regulator), JSON or ``?format=html`` in zh-CN or English.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from services.common import i18n
from services.common.context import ServiceContext
from services.common.deps import ApiKeyDep, CtxDep, IdempotencyKey, IndexerDep, OperatorKey, OpsDep
from services.common.keys import Role
from services.common.models import ApiKey
from services.common.problems import Problem
from services.common.scope import check_read_scope
from services.operator.families.park import html, service
from services.operator.families.park import report as reports
from services.operator.families.park.schemas import FeeIn, FeeOut, ParkIn, ParkOut, ParkReport

router = APIRouter(tags=["closed-loop park"])

ParkId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{1,31}$")]
READERS = {Role.OPERATOR, Role.AUDITOR, Role.REGULATOR}


def _reader(key: Any) -> None:
    if key.role not in READERS:
        raise Problem(403, "forbidden-role", "This key's role may not do this", f"role {key.role!r}")


def _read_scope(ctx: ServiceContext, key: ApiKey, spec: dict[str, Any]) -> None:
    """A key bound to an institution reads only its own parks: every park's payers and merchants
    are one institution's customers (set-up checks it), so those are what is checked (not the
    staff: a park may name a million). ``spec`` is the park's stored file (validated when it was
    set up), read as stored: the report validates it once itself."""
    wallets = [t["payer"] for t in spec["tenants"]] + [m["wallet"] for m in spec["merchants"]]
    check_read_scope(ctx, key, *dict.fromkeys(wallets))


@router.post("/v1/parks", status_code=201, responses={200: {"model": ParkOut}})
def set_up(body: ParkIn, ctx: CtxDep, ops: OpsDep, key: OperatorKey, response: Response) -> ParkOut:
    """Set a park up from its file: tenants (payer wallets, staff wallets), merchants (wallets,
    categories), gateway terminals and door points, the park's fee wallet, the tenants' fee
    mandates (granted on chain). 201 the first time, 200 with ``created: false`` for the same file
    again (nothing changes; an interrupted grant is finished), 409 ``park-exists`` for another file.
    Idempotent by content: no Idempotency-Key is needed."""
    row, created = service.set_up(ctx, ops, key, body)
    if not created:
        response.status_code = 200
    return service.park_out(row, created)


@router.post("/v1/parks/{park_id}/fees", responses={202: {"model": FeeOut}})
def collect_fee(
    park_id: ParkId,
    body: FeeIn,
    ctx: CtxDep,
    ops: OpsDep,
    key: OperatorKey,
    idem: IdempotencyKey,
    response: Response,
) -> FeeOut:
    """The park collects a tenant's rent or utility fee for one month under the tenant's mandate
    (200 confirmed, 202 pending); one pull per tenant, kind and month (409 ``duplicate-reference``)."""
    found = service.collect_fee(ctx, ops, key, idem, service.park(ctx, park_id), body)
    response.status_code = 200 if found.status == "confirmed" else 202
    return found


@router.get("/v1/parks/{park_id}")
def get_park(park_id: ParkId, ctx: CtxDep, key: ApiKeyDep) -> ParkIn:
    """The park's file as it was set up."""
    _reader(key)
    stored = service.park(ctx, park_id).spec
    _read_scope(ctx, key, stored)
    return ParkIn.model_validate(stored)


@router.get(
    "/v1/parks/{park_id}/report",
    response_model=None,
    responses={200: {"model": ParkReport, "content": {"text/html": {}}}},
)
async def report(
    park_id: ParkId,
    ctx: CtxDep,
    indexer: IndexerDep,
    key: ApiKeyDep,
    request: Request,
    format: Annotated[Literal["json", "html"], Query()] = "json",
    lang: Annotated[
        Literal["zh", "en"] | None, Query(description="the HTML's language (else Accept-Language)")
    ] = None,
) -> Any:
    """Of the wages and subsidies the tenants paid into their staff's wallets (free money), how
    much the staff spent at the park's merchants (the retention ratio); the welfare vouchers'
    earmarked money apart (granted, spent inside, unspent, returned); by tenant and by merchant
    category; the park's fee income; card taps at its terminals and door access at its door
    points per day and tenant. Yuan and fen, from the indexed chain events and the gateway's logs."""
    _reader(key)
    row = await run_in_threadpool(service.park, ctx, park_id)
    await run_in_threadpool(_read_scope, ctx, key, row.spec)
    found = await run_in_threadpool(reports.report, ctx, indexer, row)
    if format == "html":
        chosen = i18n.page_language(lang, None, request.headers.get("accept-language"))
        return HTMLResponse(html.render(found, chosen), headers={"Content-Language": chosen})
    return found
