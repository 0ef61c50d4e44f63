"""A read-only live dashboard of the whole system, served by the operator at ``/dashboard``.

What it shows: the latest blocks and indexed events, and one section per family, derived from the
registry (chain/families.py ``Family.panel``: key, title, needed contract, event counts) and the
family's own ``panel.py`` (services/common/panels.py says how); nothing here names a family. Today:
the token's supply and wallets, and each programme's state: prepaid escrow (held, released,
refunded), disbursement batches (rows done of total, paid, exceptions), collective budget lines,
payment codes, and, when the deployment has them, voucher programmes and hard-wallet settlements.
A bar chart shows spending by merchant category: what a family's section reports as
``spent_by_category_fen`` (the vouchers', ``VoucherProgrammes.spentByCategory`` summed over
programmes) when deployed, beside the digital cash paid to merchant wallets (the token's
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
since the last (``_Tally.memo``), and from the event index only the blocks indexed since the last
(``_Tally.advance``: counts, merchant payments), so a 3-second refresh stays well inside its
interval however long the history.

The page is served with a Content-Security-Policy allowing only this origin's scripts, styles and
requests, and it writes data with ``textContent``, never as HTML.

The chart library is Chart.js, pinned in ``package.json`` and served from ``node_modules``
(``npm ci`` installs it with the compiler); without it the page still shows every number.
Amounts are integers in fen; the page assumes they stay below 2**53 (about 9e13 yuan).
"""

from __future__ import annotations

import functools
import html
import importlib
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse
from sqlalchemy import desc, func, select

from chain.clients.token import Kind
from chain.families import FAMILIES, Panel
from chain.paths import NODE_MODULES
from services.common import humanize, i18n
from services.common.context import ServiceContext
from services.common.deps import CtxDep, IndexerDep, require
from services.common.indexer import CURSOR as INDEX_CURSOR
from services.common.keys import Role
from services.common.models import ApiKey, ChainEvent, Cursor
from services.common.panels import PanelView, Section
from services.common.problems import Problem
from services.common.scope import check_platform_read
from services.operator import signin
from services.operator.families import MODULES

log = logging.getLogger("xcpay.operator.dashboard")
T = TypeVar("T")

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
REGISTRY = "WalletRegistry"  # its WalletRegistered events say which wallets are merchants
BLOCKS = 8
EVENTS = 15
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
    """What the dashboard keeps of the event index between polls, brought up to date by each poll
    from the blocks the indexer has finished since the last (:meth:`advance`): the events counted
    by contract and name, the newest event of each contract (the sections' cache keys), and the
    digital cash paid to merchant wallets (issuance excluded) by category. A wallet's kind and
    category come from its ``WalletRegistered`` event in the same index (the registry sets both
    once, at registration; a recovery registers the replacement with the old wallet's), so no
    payee costs a read from the node: one ``walletOf`` and ``policyOf`` per distinct payee made the
    first read after a 10,000-person payroll take 35-50 s, ~10 minutes in one loaded run, and
    counting every event of the index each poll made a poll's cost grow with the history
    (issue 19)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._block = -1  # the last block read: the indexer's cursor at the last poll
        self._counts: dict[str, Counter[str]] = {}  # contract -> event name -> events
        self._newest: dict[str, int] = {}  # contract -> id of its newest event
        self._by_category: Counter[int] = Counter()
        self._merchants: dict[str, int] = {}  # merchant wallet -> its category, as registered
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

    def advance(self, ctx: ServiceContext) -> dict[str, int]:
        """Read the blocks the indexer has finished since the last poll; the newest event of each
        contract (the sections' cache keys, see :meth:`memo`).

        Up to the indexer's cursor, every event of a block is in the index (the indexer commits
        the cursor with every event of its blocks not stored already), so a payee's registration,
        in an earlier block or the same, is too; an event the service stored from its own receipt
        beyond the cursor waits for the next poll (each read lets the indexer catch up first).
        One query for the cursor; when it moved, three over the new blocks, through the indexes on
        ``block_number`` and on (contract, name, block_number): the counts, the merchants'
        registrations (``kind`` picked out in SQL, not every personal wallet's) and the token's
        transfers. Nothing from the node."""
        with self._lock:
            with ctx.db.session() as s:
                upto = s.scalar(select(Cursor.position).where(Cursor.name == INDEX_CURSOR))
                if upto is None or upto <= self._block:
                    return dict(self._newest)
                low, high = ChainEvent.block_number > self._block, ChainEvent.block_number <= upto
                counts = s.execute(
                    select(ChainEvent.contract, ChainEvent.name, func.count(), func.max(ChainEvent.id))
                    .where(low, high)
                    .group_by(ChainEvent.contract, ChainEvent.name)
                ).all()
                merchants = s.scalars(
                    select(ChainEvent.args).where(
                        ChainEvent.contract == REGISTRY,
                        ChainEvent.name == "WalletRegistered",
                        low,
                        high,
                        ChainEvent.args["kind"].as_integer() == int(Kind.MERCHANT),
                    )
                ).all()
                transfers = s.scalars(
                    select(ChainEvent.args).where(
                        ChainEvent.contract == "DigitalCash", ChainEvent.name == "Transfer", low, high
                    )
                ).all()
            for contract, name, n, newest in counts:
                self._counts.setdefault(str(contract), Counter())[str(name)] += int(n)
                self._newest[str(contract)] = max(self._newest.get(str(contract), 0), int(newest))
            for args in merchants:
                self._merchants[str(args["wallet"])] = int(args["category"])
            for args in transfers:
                category = self._merchants.get(args.get("to"))
                if category is not None and args.get("from") != ZERO:  # issuance is no payment
                    self._by_category[category] += int(args.get("value", 0))
            self._block = upto
            return dict(self._newest)

    def counts(self, contract: str) -> dict[str, int]:
        """The contract's events by name, up to the last poll's block."""
        with self._lock:
            return dict(self._counts.get(contract, {}))

    def total(self) -> int:
        """Every indexed event, up to the last poll's block."""
        with self._lock:
            return sum(sum(c.values()) for c in self._counts.values())

    def by_category(self) -> dict[int, int]:
        """The cash paid to merchants by category, up to the last poll's block."""
        with self._lock:
            return dict(self._by_category)


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


def _summary(args: dict[str, Any]) -> str:
    text = json.dumps(args, separators=(",", ":"), default=str)
    return text if len(text) <= 200 else text[:199] + "…"


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
    return {"total": tally.total(), "latest": items}


def _counts(ctx: ServiceContext, tally: _Tally, panel: Panel) -> dict[str, int]:
    """The panel's event counts, ``{output key: count}``, as the tally keeps them (counted once,
    as the indexer finished their blocks); a contract not deployed gives no counts."""
    deployed = ctx.manifest.contracts
    by_contract = {c: tally.counts(c) for c, _ in panel.counts.values() if c in deployed}
    return {
        out: by_contract[contract].get(event, 0)
        for out, (contract, event) in panel.counts.items()
        if contract in by_contract
    }


@functools.cache
def section_of(family: str) -> Section | None:
    """The family's section function, by convention ``services.<app>.families.<family>.panel``
    (the operator's families first, then the gateway's); None: the section shows its counts only."""
    for app in ("operator", "gateway"):
        name = f"services.{app}.families.{family}.panel"
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue  # no such family in this app, or no panel module
            raise
        return module.section  # type: ignore[no-any-return]
    return None


def panels() -> list[tuple[str, Panel, tuple[str, ...]]]:
    """Every dashboard section a family has: (family, its panel, the contracts its memo watches),
    from the registry (chain/families.py), then the operator's families with no contract of
    their own that declare one in their module (``FamilyModule.extra["panel"]``)."""
    out = [
        (f.folder or f.name, f.panel, (*f.contracts, "DigitalCash")) for f in FAMILIES if f.panel is not None
    ]
    named = {f.folder or f.name for f in FAMILIES}
    for module in MODULES:
        panel = module.extra.get("panel")
        if isinstance(panel, Panel) and module.name not in named:
            out.append((module.name, panel, (panel.needs,)))
    return out


def _label(category: int) -> str:
    name = MCC.get(category)
    return f"{category} {name}" if name else str(category)


def _spending(paid: dict[int, int], sections: dict[str, Any]) -> dict[str, Any]:
    """The chart: cash paid to merchants by category, beside what a family's section reports as
    ``spent_by_category_fen`` (the vouchers'; None when no deployed family reports it)."""
    spenders = [v for v in sections.values() if isinstance(v, dict) and "spent_by_category_fen" in v]
    vouchers = spenders[0] if spenders else None
    voucher = {}
    if vouchers is not None:
        voucher = {int(k): int(v) for k, v in vouchers["spent_by_category_fen"].items()}
    categories = sorted(set(paid) | set(voucher))
    return {
        "categories": categories,
        "labels": [_label(c) for c in categories],
        "merchant_payments_fen": [paid.get(c, 0) for c in categories],
        "voucher_spent_fen": [voucher.get(c, 0) for c in categories] if vouchers is not None else None,
    }


def snapshot(ctx: ServiceContext, tally: _Tally, lang: str = i18n.EN) -> dict[str, Any]:
    """Everything the page shows, read now (the caller lets the event indexer catch up first).
    The families' sections come from the registry: each family whose panel's contract is deployed
    has its section under the panel's key (its title, its event counts, and what its section
    function adds); the others' are None."""
    contracts = ctx.manifest.contracts
    timings: dict[str, float] = {}

    def section(name: str, build: Callable[[], Any]) -> Any:
        return _section(name, build, timings)

    latest = section("chain", lambda: ctx.w3.eth.block_number)
    marks = section("marks", lambda: tally.advance(ctx))

    def key(*names: str) -> tuple[Any, ...]:
        if "error" in marks:  # no marks, no cache: a key that matches nothing kept
            return (time.monotonic_ns(),)
        return tuple(marks.get(n, 0) for n in names)

    def view(name: str, watched: tuple[str, ...]) -> PanelView:
        def memo(build: Callable[[], T], *extra: Any) -> T:
            return tally.memo(name, (*key(*watched), *extra), build)  # type: ignore[no-any-return]

        return PanelView(ctx, memo, lambda number: tally.block_time(ctx, number))

    def family_section(family: str, panel: Panel, watched: tuple[str, ...]) -> dict[str, Any]:
        build = section_of(family)
        detail = build(view(panel.key, watched)) if build is not None else {}
        return {"title": i18n.ui(panel.title, lang), **detail, **_counts(ctx, tally, panel)}

    sections: dict[str, Any] = {}
    for family, panel, watched in panels():
        present = panel.needs in contracts
        sections[panel.key] = (
            section(panel.key, functools.partial(family_section, family, panel, watched)) if present else None
        )
    paid = section("spending", tally.by_category)
    spending = _spending(paid, sections) if "error" not in paid else paid
    out = {
        "generated_at": datetime.now(UTC).isoformat(),
        "chain": {
            "chain_id": ctx.manifest.chain_id,
            "latest_block": latest,
            "deployed_at_block": ctx.manifest.block,
            "contracts": sorted(contracts),
        },
        "blocks": section("blocks", lambda: _blocks(ctx, tally, latest)),
        "events": section("events", lambda: _events(ctx, tally)),
        **sections,
        "spending_by_category": spending,
    }
    out["timings_ms"] = timings
    return out


@router.get("/data")
def data(request: Request, ctx: CtxDep, indexer: IndexerDep, key: DashboardKey) -> dict[str, Any]:
    """The dashboard's figures (operator, regulator or auditor key); the page polls this. Every
    panel is platform-wide (all institutions' customers' wallets, operations, payouts, codes), so
    a key bound to an institution is refused (403 ``institution-scope``): the platform's keys only."""
    check_platform_read(key, "the dashboard")
    started = time.perf_counter()
    indexer.catch_up()
    caught_up = round((time.perf_counter() - started) * 1000, 2)
    out = snapshot(ctx, _tally(request), _lang(request))
    out["timings_ms"] = {"index_catch_up": caught_up, **out["timings_ms"]}
    return out
