"""A read-only live dashboard of the whole system, served by the operator at ``/dashboard``.

What it shows: the token's supply and wallets, the latest blocks and indexed events, and each
programme's state: prepaid escrow (held, released, refunded), disbursement batches (rows done of
total, paid, exceptions), collective budget lines, payment codes, and, when the deployment has
them, voucher programmes and hard-wallet settlements. A bar chart shows spending by merchant
category: voucher spending (``VoucherProgrammes.spentByCategory``, summed over programmes) when
the voucher contract is deployed, beside the digital cash paid to merchant wallets (the token's
``Transfer`` events from the event index, issuance excluded), so a chart renders on any deployment.

Access. ``GET /dashboard`` and ``GET /dashboard/static/...`` are public and carry no data: a page,
its script, its stylesheet and the charting library. The page asks once for an API key of an
``operator``, ``regulator`` or ``auditor`` and keeps it in the tab's ``sessionStorage`` (gone when
the tab closes, never in a cookie, so no CSRF surface); it sends it as ``X-API-Key`` to
``GET /dashboard/data`` every few seconds and forgets it on a 401 or 403. ``/dashboard/data`` is
the only route with data; it reads and never writes (besides letting the event indexer catch up,
as every audit read does). ``GET /dashboard/login?token=`` spends a one-time sign-in link
(services/operator/signin.py; ``make run`` prints one): the page it answers carries a new
short-lived auditor key in a meta tag, which the script moves to ``sessionStorage``.

Language. The page and the words its script writes are in zh-CN or English: ``?lang=zh|en`` (the
switch in the page's header, remembered in the ``xcpay_lang`` cookie), else ``Accept-Language``;
the words are services/common/i18n.py's (``UI_ZH``, ``EVENT_LABELS``), in the glossary's terms.
Money is shown in yuan (the fen in ``data-fen``), times in Beijing time; the data stay in fen and
Unix seconds. Each poll re-reads from the node only the sections whose contracts emitted an event
since the last (``_Tally.memo``), so a 3-second refresh stays well inside its interval.

The page is served with a Content-Security-Policy allowing only this origin's scripts, styles and
requests, and it writes data with ``textContent``, never as HTML.

The chart library is Chart.js, pinned in ``package.json`` and served from ``node_modules``
(``npm ci`` installs it with the compiler); without it the page still shows every number.
Amounts are integers in fen; the page assumes they stay below 2**53 (about 9e13 yuan).
"""

from __future__ import annotations

import functools
import html
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse
from sqlalchemy import desc, func, select

from chain.paths import NODE_MODULES
from services.common import humanize, i18n
from services.common.context import ServiceContext
from services.common.deps import CtxDep, IndexerDep, require
from services.common.keys import Role
from services.common.models import ApiKey, ChainEvent, CodePayment, Disbursement, PaymentCode, Wallet
from services.common.problems import Problem
from services.operator import signin

log = logging.getLogger("xcpay.operator.dashboard")

router = APIRouter(prefix="/dashboard", tags=["dashboard"])

HERE = Path(__file__).resolve().parent.parent / "dashboard"
STATIC: dict[str, tuple[Path, str]] = {
    "dashboard.js": (HERE / "dashboard.js", "text/javascript"),
    "dashboard.css": (HERE / "dashboard.css", "text/css"),
    "chart.js": (NODE_MODULES / "chart.js" / "dist" / "chart.umd.min.js", "text/javascript"),
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
ZERO = "0x0000000000000000000000000000000000000000"
BLOCKS = 8
EVENTS = 15
BATCHES = 10
COLLECTIVES = 10
PROGRAMMES = 20
# ISO 18245 merchant category codes the pilot uses, for the chart's labels.
MCC = {
    5311: "department store",
    5411: "grocery",
    5812: "restaurant",
    5814: "fast food",
    7997: "sport clubs",
    8099: "health",
}

NEW_LINK = (
    "Ask for a new link (make run prints one at each start; python -m services.operator login-link "
    "makes another)."
)

DashboardKey = Annotated[ApiKey, Depends(require(Role.OPERATOR, Role.REGULATOR, Role.AUDITOR))]


# -- the page and its static files ---------------------------------------------------------------


_MARK = re.compile(r"\{\{(.+?)\}\}", re.S)
LANG_COOKIE = "xcpay_lang"
_PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _lang(request: Request) -> str:
    return i18n.page_language(
        request.query_params.get("lang"),
        request.cookies.get(LANG_COOKIE),
        request.headers.get("accept-language"),
    )


def render_page(lang: str, session_key: str | None = None) -> str:
    """index.html in ``lang``: each ``{{English words}}`` is replaced by its translation (escaped),
    the words the script writes go in a JSON block it reads (data, not code: the CSP allows no
    inline script), and a key given by a sign-in link in a meta tag the script takes and removes."""
    html_text = (HERE / "index.html").read_text(encoding="utf-8")
    html_text = _MARK.sub(lambda m: html.escape(i18n.ui(" ".join(m.group(1).split()), lang)), html_text)
    strings = {
        "lang": lang,
        "words": i18n.UI_ZH if lang == i18n.ZH else {},
        "events": i18n.event_labels(lang),
    }
    blob = json.dumps(strings, ensure_ascii=False).replace("<", "\\u003c")
    html_text = html_text.replace("@@LANG@@", lang).replace("@@STRINGS@@", blob)
    meta = f'<meta name="xcpay-session" content="{html.escape(session_key)}">' if session_key else ""
    return html_text.replace("@@SESSION@@", meta)


def _page_response(request: Request, body: str, lang: str, status: int = 200) -> HTMLResponse:
    response = HTMLResponse(body, status_code=status, headers={**_PAGE_HEADERS, "Content-Language": lang})
    choice = request.query_params.get("lang")
    if choice in ("zh", "en"):  # the switch on the page: remembered for the next visit
        response.set_cookie(LANG_COOKIE, choice, max_age=365 * 86_400, path="/", samesite="lax")
    return response


@router.get("", response_class=HTMLResponse, include_in_schema=False)
def page(request: Request) -> HTMLResponse:
    """The page: no data in it; its script asks for a key and polls ``/dashboard/data``. In
    zh-CN or English: ``?lang=zh|en`` (the switch on the page, remembered in a cookie), else the
    browser's ``Accept-Language``."""
    lang = _lang(request)
    return _page_response(request, render_page(lang), lang)


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login(request: Request, ctx: CtxDep) -> HTMLResponse:
    """Spend a one-time sign-in link (services/operator/signin.py): the dashboard, signed in with
    a new short-lived read-only key; a used, expired or unknown link gets a page saying so (410)."""
    lang = _lang(request)
    with ctx.db.session() as s:
        key = signin.redeem(s, request.query_params.get("token", ""))
    if key is not None:
        return _page_response(request, render_page(lang, session_key=key), lang)
    t = functools.partial(i18n.ui, lang=lang)
    body = f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">
<title>{html.escape(t("xcpay dashboard"))}</title>
<link rel="stylesheet" href="/dashboard/static/dashboard.css"></head>
<body><section class="card" id="link-refused">
<h1>{html.escape(t("This sign-in link was used already or has expired"))}</h1>
<p>{html.escape(t(NEW_LINK))}</p>
<p><a href="/dashboard">{html.escape(t("open the dashboard"))}</a></p></section></body></html>
"""
    return _page_response(request, body, lang, status=410)


@router.get("/static/{name}", include_in_schema=False)
def static(name: str) -> FileResponse:
    entry = STATIC.get(name)
    if entry is None or not entry[0].is_file():
        raise Problem(404, "not-found", "No such file", name)
    path, media_type = entry
    return FileResponse(
        path,
        media_type=media_type,
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


# -- the data ------------------------------------------------------------------------------------


class _Tally:
    """Digital cash paid to merchant wallets (issuance excluded), by category, from the event
    index, counted incrementally: each poll reads only the Transfer events indexed since the last.
    A wallet's category is read from the registry once and kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_id = 0
        self._by_category: Counter[int] = Counter()
        self._category: dict[str, int] = {}  # address -> merchant category, -1 if not a merchant
        self.clients: dict[str, Any] = {}
        self._blocks: dict[int, dict[str, Any]] = {}  # number -> the block's summary, once read
        self._memo: dict[str, tuple[tuple[Any, ...], Any]] = {}  # section -> (key, value)

    def block(self, ctx: ServiceContext, number: int) -> dict[str, Any]:
        """A block's summary, read from the node once (the page shows the same blocks poll after
        poll; a block's contents do not change on the permissioned chains this runs on)."""
        cached = self._blocks.get(number)
        if cached is None:
            b = ctx.w3.eth.get_block(number)
            cached = {
                "number": int(b["number"]),
                "hash": "0x" + bytes(b["hash"]).hex(),
                "timestamp": int(b["timestamp"]),
                "transactions": len(b["transactions"]),
                "gas_used": int(b["gasUsed"]),
            }
            if len(self._blocks) > 1_000:
                self._blocks.clear()
            self._blocks[number] = cached
        return cached

    def memo(self, name: str, key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
        """``build()``, or what it gave last time under the same ``key``. The keys are the newest
        indexed event of each contract a section reads: every state change of the platform's
        contracts emits an event (a rule of the house), so the same newest events mean the same
        state, and a poll with nothing new re-reads nothing from the node. An exception is not
        kept (the next poll tries again)."""
        with self._lock:
            cached = self._memo.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        value = build()
        with self._lock:
            self._memo[name] = (key, value)
        return value

    def block_time(self, ctx: ServiceContext, number: int) -> int:
        return int(self.block(ctx, number)["timestamp"])

    def by_category(self, ctx: ServiceContext) -> dict[int, int]:
        with self._lock:
            with ctx.db.session() as s:
                rows = s.execute(
                    select(ChainEvent.id, ChainEvent.args)
                    .where(
                        ChainEvent.contract == "DigitalCash",
                        ChainEvent.name == "Transfer",
                        ChainEvent.id > self._last_id,
                    )
                    .order_by(ChainEvent.id)
                ).all()
            for row_id, args in rows:
                to = args.get("to")
                if to and to != ZERO and args.get("from") != ZERO:  # issuance is no payment
                    category = self._category_of(ctx, to)
                    if category >= 0:
                        self._by_category[category] += int(args.get("value", 0))
                self._last_id = row_id
            return dict(self._by_category)

    def _category_of(self, ctx: ServiceContext, address: str) -> int:
        if address not in self._category:
            info = ctx.cash.wallet(address)
            self._category[address] = info.category if int(info.kind) == 2 else -1
        return self._category[address]


def _tally(request: Request) -> _Tally:
    state = request.app.state
    tally = getattr(state, "dashboard_tally", None)
    if tally is None:
        tally = state.dashboard_tally = _Tally()
    return tally  # type: ignore[no-any-return]


def _section(name: str, build: Callable[[], Any], timings: dict[str, float] | None = None) -> Any:
    """One section's data; a failing section reports its error and the others still show. Its
    time goes to ``timings`` (ms; the answer's ``timings_ms``, read by scripts/bench_dashboard.py)."""
    started = time.perf_counter()
    try:
        return build()
    except Exception as exc:
        log.warning("dashboard section %s failed: %s", name, exc)
        return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    finally:
        if timings is not None:
            timings[name] = round((time.perf_counter() - started) * 1000, 2)


def _client(ctx: ServiceContext, tally: _Tally, name: str) -> Any:
    """The voucher or hard-wallet client: the context's if it has one, else built once here."""
    client = getattr(ctx, name, None)
    if client is not None:
        return client
    if name not in tally.clients:
        if name == "vouchers":
            from chain.clients.vouchers import VoucherClient

            tally.clients[name] = VoucherClient(ctx.w3, ctx.manifest, ctx.tx)
        elif name == "hardwallet":
            from chain.clients.hardwallet import HardWalletClient

            tally.clients[name] = HardWalletClient(ctx.w3, ctx.manifest, ctx.tx)
    return tally.clients[name]


def _event_counts(ctx: ServiceContext, contract: str) -> dict[str, int]:
    with ctx.db.session() as s:
        rows = s.execute(
            select(ChainEvent.name, func.count(ChainEvent.id))
            .where(ChainEvent.contract == contract)
            .group_by(ChainEvent.name)
        ).all()
    return {str(name): int(n) for name, n in rows}


def _summary(args: dict[str, Any]) -> str:
    text = json.dumps(args, separators=(",", ":"), default=str)
    return text if len(text) <= 200 else text[:199] + "…"


def _marks(ctx: ServiceContext) -> dict[str, int]:
    """The newest indexed event of each contract (one grouped query on the contract index): the
    sections' cache keys (``_Tally.memo``)."""
    with ctx.db.session() as s:
        rows = s.execute(
            select(ChainEvent.contract, func.max(ChainEvent.id)).group_by(ChainEvent.contract)
        ).all()
    return {str(c): int(m) for c, m in rows}


def _token(ctx: ServiceContext, tally: _Tally, key: tuple[Any, ...]) -> dict[str, Any]:
    with ctx.db.session() as s:
        kinds = dict(s.execute(select(Wallet.kind, func.count()).group_by(Wallet.kind)).all())
        custodial = s.scalar(select(func.count()).select_from(Wallet).where(Wallet.custody == "custodial"))
    supply, paused = tally.memo("token", key, lambda: (ctx.cash.total_supply(), ctx.cash.paused()))
    return {
        "supply_fen": supply,
        "paused": paused,
        "wallets": sum(int(v) for v in kinds.values()),
        "wallets_by_kind": {str(k): int(v) for k, v in sorted(kinds.items())},
        "custodial_wallets": int(custodial or 0),
    }


def _blocks(ctx: ServiceContext, tally: _Tally, latest: int) -> list[dict[str, Any]]:
    return [tally.block(ctx, number) for number in range(latest, max(-1, latest - BLOCKS), -1)]


# The arguments of an event that carry its amount (fen), first found first taken.
AMOUNT_ARGS = ("value", "amount", "bill", "total", "sessionsValue", "refund", "reserve")


def _events(ctx: ServiceContext, tally: _Tally) -> dict[str, Any]:
    """The latest indexed events as a person reads them: the kind (the page labels it), the
    parties by display name (a wallet's, or a contract's name for the platform's own contracts),
    the amount in fen, the block's time (Unix seconds; the page writes it in Beijing time). One
    query for the events, one for the names; block times are kept once read."""
    with ctx.db.session() as s:
        total = s.scalar(select(func.count()).select_from(ChainEvent)) or 0
        rows = s.scalars(
            select(ChainEvent)
            .order_by(desc(ChainEvent.block_number), desc(ChainEvent.log_index))
            .limit(EVENTS)
        ).all()
        addresses = set().union(*(humanize.addresses_in(r.args) for r in rows)) if rows else set()
        names = humanize.wallet_names(s, addresses)
    contracts = {d.address.lower(): name for name, d in ctx.manifest.contracts.items()}
    items = []
    for r in rows:
        parties = [
            {
                "role": k,
                "address": v,
                "name": names.get(v.lower()) or contracts.get(v.lower()),
            }
            for k, v in r.args.items()
            if humanize.is_address(v) and v != ZERO
        ]
        amount = next(
            (
                int(r.args[k])
                for k in AMOUNT_ARGS
                if isinstance(r.args.get(k), int) and not isinstance(r.args[k], bool)
            ),
            None,
        )
        kind = r.name
        if r.name == "Transfer" and r.args.get("from") == ZERO:
            kind = "Issued"
        elif r.name == "Transfer" and r.args.get("to") == ZERO:
            kind = "Redeemed"
        items.append(
            {
                "block_number": r.block_number,
                "log_index": r.log_index,
                "tx_hash": r.tx_hash,
                "contract": r.contract,
                "name": r.name,
                "kind": kind,
                "timestamp": tally.block_time(ctx, r.block_number),
                "amount_fen": amount,
                "parties": parties,
                "summary": _summary(r.args),
            }
        )
    return {"total": int(total), "latest": items}


def _prepaid(ctx: ServiceContext) -> dict[str, Any]:
    t = ctx.prepaid.totals()
    counts = _event_counts(ctx, "PrepaidEscrow")
    return {
        "deposited_fen": t["deposited"],
        "released_fen": t["released"],
        "refunded_fen": t["refunded"],
        "held_fen": t["held"],
        "escrow_balance_fen": ctx.cash.balance_of(ctx.prepaid.escrow.address),
        "packages": counts.get("PackagePrepaid", 0),
        "merchants": counts.get("MerchantEnrolled", 0),
    }


def _batch_figures(ctx: ServiceContext, batch_ids: tuple[str, ...]) -> dict[str, Any]:
    """The disbursement contract's totals and the figures of ``batch_ids`` (None: not on chain yet)."""
    f = ctx.disburse.contract.functions
    totals = (f.totalFunded().call(), f.totalPaid().call(), f.totalReclaimed().call())
    batches: dict[str, dict[str, int] | None] = {}
    for batch_id in batch_ids:
        try:
            c = ctx.disburse.batch(bytes.fromhex(batch_id[2:]))
            batches[batch_id] = {
                "funded_fen": c.funded,
                "paid_fen": c.paid,
                "exceptions_fen": c.exceptions,
                "reclaimed_fen": c.reclaimed,
                "outstanding_fen": c.outstanding,
            }
        except Exception:  # its creation is still pending
            batches[batch_id] = None
    return {"totals": totals, "batches": batches}


def _disbursements(ctx: ServiceContext, tally: _Tally, key: tuple[Any, ...]) -> dict[str, Any]:
    with ctx.db.session() as s:
        count = s.scalar(select(func.count()).select_from(Disbursement)) or 0
        batches = s.scalars(
            select(Disbursement).order_by(desc(Disbursement.created_at), Disbursement.ref).limit(BATCHES)
        ).all()
    on_chain = tuple(b.batch_id for b in batches if b.status not in ("draft", "cancelled"))
    figures = tally.memo("disbursements", (*key, on_chain), lambda: _batch_figures(ctx, on_chain))
    funded, paid, reclaimed = figures["totals"]
    items = []
    for b in batches:
        chain = figures["batches"].get(b.batch_id)
        items.append(
            {
                "reference": b.ref,
                "purpose": b.purpose,
                "mode": b.mode,
                "status": b.status,
                "total_fen": b.total_fen,
                "rows_total": b.rows_total,
                "rows_done": b.rows_done,
                "chain": chain,
            }
        )
    return {
        "batches": int(count),
        "funded_fen": int(funded),
        "paid_fen": int(paid),
        "reclaimed_fen": int(reclaimed),
        "outstanding_fen": int(funded - paid - reclaimed),
        "latest": items,
    }


def _collectives(ctx: ServiceContext) -> dict[str, Any]:
    counts = ctx.collective.counts()
    n = counts["collectives"]
    items = []
    for cid in range(n, max(0, n - COLLECTIVES), -1):
        c = ctx.collective.collective(cid)
        lines = [
            {
                "name": bytes(ln.name).rstrip(b"\0").decode("utf-8", errors="replace"),
                "budget_fen": ln.budget,
                "spent_fen": ln.spent,
                "remaining_fen": ln.remaining,
            }
            for ln in ctx.collective.lines(cid)
        ]
        items.append(
            {
                "id": cid,
                "year": c.year,
                "frozen": c.frozen,
                "balance_fen": c.balance,
                "income_fen": c.total_income,
                "paid_fen": c.total_paid,
                "lines": lines,
            }
        )
    return {**counts, "balance_fen": ctx.collective.total_balance(), "latest": items}


def _payment_codes(ctx: ServiceContext) -> dict[str, Any]:
    with ctx.db.session() as s:
        kinds = dict(s.execute(select(PaymentCode.kind, func.count()).group_by(PaymentCode.kind)).all())
        paid = s.execute(
            select(func.count(), func.coalesce(func.sum(CodePayment.amount_fen), 0)).where(
                CodePayment.status == "confirmed"
            )
        ).one()
    return {
        "codes": sum(int(v) for v in kinds.values()),
        "static": int(kinds.get("static", 0)),
        "dynamic": int(kinds.get("dynamic", 0)),
        "payments": int(paid[0]),
        "paid_fen": int(paid[1]),
    }


def _vouchers(ctx: ServiceContext, tally: _Tally) -> dict[str, Any]:
    client = _client(ctx, tally, "vouchers")
    count = int(client.tx.call(client.contract.functions.programmeCount()))
    by_category: Counter[int] = Counter()
    items = []
    for pid in range(count, max(0, count - PROGRAMMES), -1):
        p = client.programme(pid)
        t = client.totals(pid)
        by_category.update(t.by_category)
        items.append(
            {
                "id": pid,
                "name": bytes(p.name).rstrip(b"\0").decode("utf-8", errors="replace"),
                "mode": p.mode.name.lower(),
                "expires_at": p.expires_at,
                "holders": p.holders,
                "budget_fen": t.budget,
                "granted_fen": t.granted,
                "spent_fen": t.spent,
                "returned_fen": t.returned,
                "outstanding_fen": t.outstanding,
                "ungranted_fen": t.ungranted,
            }
        )
    return {
        "programmes": count,
        "held_fen": client.total_held(),
        "spent_by_category_fen": {str(k): v for k, v in sorted(by_category.items())},
        "latest": items,
    }


def _hardwallet(ctx: ServiceContext, tally: _Tally) -> dict[str, Any]:
    client = _client(ctx, tally, "hardwallet")
    totals = client.totals()
    limits = client.limits()
    counts = _event_counts(ctx, "HardWalletSettlement")
    with ctx.db.session() as s:
        rows = s.scalars(
            select(ChainEvent)
            .where(ChainEvent.contract == "HardWalletSettlement", ChainEvent.name == "BatchProcessed")
            .order_by(desc(ChainEvent.block_number), desc(ChainEvent.log_index))
            .limit(5)
        ).all()
    out: dict[str, Any] = {
        **{f"{k}_fen": int(v) for k, v in totals.items()},
        "offline_cap_fen": limits.offline_cap,
        "cards": counts.get("CardRegistered", 0),
        "batches": counts.get("BatchProcessed", 0),
        "payments_settled": counts.get("PaymentSettled", 0),
        "payments_duplicate": counts.get("PaymentDuplicate", 0),
        "payments_rejected": counts.get("PaymentRejected", 0),
        "payments_shortfall": counts.get("PaymentShortfall", 0),
        "latest_batches": [
            {
                "block_number": r.block_number,
                "tx_hash": r.tx_hash,
                **{k: r.args.get(k) for k in ("size", "settled", "duplicates", "rejected", "shortfalls")},
            }
            for r in rows
        ],
    }
    if "QuickPay" in ctx.manifest.contracts:
        quick = _event_counts(ctx, "QuickPay")
        out["mandates"] = quick.get("MandateGranted", 0)
        out["mandate_pulls"] = quick.get("MandatePulled", 0)
    return out


def _label(category: int) -> str:
    name = MCC.get(category)
    return f"{category} {name}" if name else str(category)


def _spending(paid: dict[int, int], vouchers: Any) -> dict[str, Any]:
    voucher = {}
    if isinstance(vouchers, dict) and "spent_by_category_fen" in vouchers:
        voucher = {int(k): int(v) for k, v in vouchers["spent_by_category_fen"].items()}
    categories = sorted(set(paid) | set(voucher))
    return {
        "categories": categories,
        "labels": [_label(c) for c in categories],
        "merchant_payments_fen": [paid.get(c, 0) for c in categories],
        "voucher_spent_fen": [voucher.get(c, 0) for c in categories] if vouchers is not None else None,
    }


def snapshot(ctx: ServiceContext, tally: _Tally) -> dict[str, Any]:
    """Everything the page shows, read now (the caller lets the event indexer catch up first)."""
    contracts = ctx.manifest.contracts
    timings: dict[str, float] = {}
    has = contracts.__contains__

    def section(name: str, build: Callable[[], Any], present: bool = True) -> Any:
        return _section(name, build, timings) if present else None

    latest = section("chain", lambda: ctx.w3.eth.block_number)
    marks = section("marks", lambda: _marks(ctx))

    def key(*names: str) -> tuple[Any, ...]:
        if "error" in marks:  # no marks, no cache: a key that matches nothing kept
            return (time.monotonic_ns(),)
        return tuple(marks.get(n, 0) for n in names)

    def memo(name: str, build: Callable[[], Any], *contracts: str) -> Callable[[], Any]:
        return lambda: tally.memo(name, key(*contracts), build)

    vouchers = section(
        "vouchers",
        memo("vouchers", lambda: _vouchers(ctx, tally), "VoucherProgrammes"),
        has("VoucherProgrammes"),
    )
    paid = section("spending", lambda: tally.by_category(ctx))
    spending = _spending(paid, vouchers) if "error" not in paid else paid
    out = {
        "generated_at": datetime.now(UTC).isoformat(),
        "chain": {
            "chain_id": ctx.manifest.chain_id,
            "latest_block": latest,
            "deployed_at_block": ctx.manifest.block,
            "contracts": sorted(contracts),
        },
        "token": section("token", lambda: _token(ctx, tally, key("DigitalCash"))),
        "blocks": section("blocks", lambda: _blocks(ctx, tally, latest)),
        "events": section("events", lambda: _events(ctx, tally)),
        "prepaid": section(
            "prepaid",
            memo("prepaid", lambda: _prepaid(ctx), "PrepaidEscrow", "DigitalCash"),
            has("PrepaidEscrow"),
        ),
        "disbursements": section(
            "disbursements", lambda: _disbursements(ctx, tally, key("Disbursement")), has("Disbursement")
        ),
        "collectives": section(
            "collectives",
            memo("collectives", lambda: _collectives(ctx), "CollectiveFund"),
            has("CollectiveFund"),
        ),
        "payment_codes": section("payment_codes", lambda: _payment_codes(ctx)),
        "vouchers": vouchers,
        "hardwallet": section(
            "hardwallet",
            memo("hardwallet", lambda: _hardwallet(ctx, tally), "HardWalletSettlement", "QuickPay"),
            has("HardWalletSettlement"),
        ),
        "spending_by_category": spending,
    }
    out["timings_ms"] = timings
    return out


@router.get("/data")
def data(request: Request, ctx: CtxDep, indexer: IndexerDep, _: DashboardKey) -> dict[str, Any]:
    """The dashboard's figures (operator, regulator or auditor key); the page polls this."""
    started = time.perf_counter()
    indexer.catch_up()
    caught_up = round((time.perf_counter() - started) * 1000, 2)
    out = snapshot(ctx, _tally(request))
    out["timings_ms"] = {"index_catch_up": caught_up, **out["timings_ms"]}
    return out
