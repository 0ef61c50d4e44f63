"""Who may call what: the access matrix of both services, one row per route (method, path).

Each row names the roles a route admits; every other role is refused with 403, and a request
without a key or with an unknown key with 401. Columns: every ``Role`` of services/common/keys.py,
plus ``none`` (no X-API-Key) and ``bad key`` (well-formed, unknown). Cell values (``decision``):

- ``public``: anyone, key or not (health, OpenAPI, docs, the dashboard's page and static files);
- ``allow``:  the role passes the guard (the request may still fail on its input: 404, 422…);
- ``own``:    the role passes for its own things only (a merchant, officer or terminal key speaks
              for one wallet, a checker key for its wallet and the payers it is an officer of; a
              key's own operations; a key rotates itself) and is refused (403) for another's;
- ``401``:    no key, or an unknown key;
- ``403``:    a key of a role the route does not admit.

test_access_matrix.py sends one real request per cell, and fails for a route of either app that
has no row here, and for a row whose route is gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.common.keys import Role

NONE, BAD = "none", "bad key"
ROLES: tuple[str, ...] = tuple(str(r) for r in Role)
COLUMNS: tuple[str, ...] = (*ROLES, NONE, BAD)

ADMIN, OPERATOR, CHECKER, MERCHANT = "admin", "operator", "checker", "merchant"
REGULATOR, AUDITOR, OFFICER, TERMINAL, ACCESS_POINT = (
    "regulator",
    "auditor",
    "officer",
    "terminal",
    "access-point",
)
HOLDER = "holder"  # a resident's key: the /v1/holder routes only, its own wallet only
READERS = (OPERATOR, REGULATOR, AUDITOR)  # read any party's records (services.common.deps.READER_ROLES)
# Keys that speak for one party: a wallet, and for a checker the payers it is an officer of.
BOUND = (MERCHANT, CHECKER, OFFICER, TERMINAL)


@dataclass(frozen=True)
class Rule:
    """One route's guard: who passes outright, who passes for their own things only."""

    allow: frozenset[str] = frozenset()
    own: frozenset[str] = frozenset()
    public: bool = False
    why: str = field(default="", compare=False)
    status: int = 200  # what a public route answers the matrix's request

    def decision(self, column: str) -> str:
        if self.public:
            return "public"
        if column in (NONE, BAD):
            return "401"
        if column in self.allow:
            return "allow"
        if column in self.own:
            return "own"
        return "403"


def only(*allow: str, own: tuple[str, ...] = (), why: str = "") -> Rule:
    unknown = (set(allow) | set(own)) - set(ROLES)
    assert not unknown, f"not roles: {unknown}"
    return Rule(frozenset(allow), frozenset(own), why=why)


PUBLIC = Rule(public=True)
# FastAPI's own routes and the offline /docs, on both apps.
FASTAPI_ROUTES: dict[tuple[str, str], Rule] = {
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/docs/static/{asset}"): PUBLIC,  # Swagger UI's own files (services/common/docs.py)
}
OWN_OPERATIONS = only(
    *READERS,
    own=(ADMIN, CHECKER, MERCHANT, OFFICER, TERMINAL, ACCESS_POINT),
    why="the reader roles read every operation, any other key only those it requested",
)

OWN_WEBHOOKS = only(
    own=(OPERATOR, REGULATOR, AUDITOR, MERCHANT),
    why="a key reads, removes and replays only the webhook endpoints it registered",
)

OPERATOR_MATRIX: dict[tuple[str, str], Rule] = {
    **FASTAPI_ROUTES,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/dashboard"): PUBLIC,  # the page holds no data; its script asks for a key
    ("GET", "/dashboard/static/{name}"): PUBLIC,
    ("GET", "/dashboard/data"): only(OPERATOR, REGULATOR, AUDITOR),
    # a one-time sign-in link: anyone may spend one; without a valid token, a page saying so (410)
    ("GET", "/dashboard/login"): Rule(public=True, status=410, why="the token is the credential"),
    ("POST", "/v1/api-keys"): only(ADMIN),
    ("GET", "/v1/api-keys"): only(ADMIN),
    ("POST", "/v1/api-keys/{key_id}/revoke"): only(ADMIN),
    # the admin rotates any key, every other key itself only
    ("POST", "/v1/api-keys/{key_id}/rotate"): only(
        ADMIN, own=(OPERATOR, CHECKER, MERCHANT, REGULATOR, AUDITOR, OFFICER, TERMINAL, ACCESS_POINT)
    ),
    ("GET", "/v1/operations/{operation_id}"): OWN_OPERATIONS,
    # wallets and cash
    ("POST", "/v1/wallets"): only(OPERATOR),
    ("POST", "/v1/wallets/batch"): only(OPERATOR),
    ("GET", "/v1/wallets/{address}"): only(*READERS, own=BOUND),
    # listings: a bound key lists its own things only (the single read's rule, as a filter)
    ("GET", "/v1/wallets"): only(*READERS, own=BOUND),
    ("GET", "/v1/operations"): OWN_OPERATIONS,
    ("GET", "/v1/disbursements"): only(*READERS, own=(CHECKER,)),
    ("GET", "/v1/voucher-programs"): only(OPERATOR, REGULATOR, AUDITOR),
    ("GET", "/v1/prepaid/packages"): only(OPERATOR, REGULATOR, AUDITOR, own=(MERCHANT,)),
    ("GET", "/v1/collectives"): only(OPERATOR, REGULATOR, AUDITOR, own=(OFFICER,)),
    ("GET", "/v1/payment-codes"): only(OPERATOR, REGULATOR, AUDITOR, own=(MERCHANT,)),
    ("POST", "/v1/issuance"): only(OPERATOR),
    ("POST", "/v1/redemptions"): only(OPERATOR),
    ("POST", "/v1/transfers"): only(OPERATOR),
    # the regulator
    ("POST", "/v1/regulator/freeze"): only(REGULATOR),
    ("POST", "/v1/regulator/unfreeze"): only(REGULATOR),
    ("POST", "/v1/regulator/pause"): only(REGULATOR),
    ("POST", "/v1/regulator/unpause"): only(REGULATOR),
    # holds, court orders (maker-checker: two regulator keys) and recovery (issue 22)
    ("POST", "/v1/regulator/holds"): only(REGULATOR),
    ("GET", "/v1/regulator/holds"): only(*READERS),
    ("GET", "/v1/regulator/holds/{hold_id}"): only(*READERS),
    ("POST", "/v1/regulator/holds/{hold_id}/lift"): only(REGULATOR),
    ("POST", "/v1/regulator/court-orders"): only(REGULATOR),
    ("GET", "/v1/regulator/court-orders/{order_id}"): only(*READERS),
    ("POST", "/v1/regulator/court-orders/{order_id}/approve"): only(REGULATOR),
    ("POST", "/v1/regulator/court-orders/{order_id}/cancel"): only(REGULATOR),
    ("POST", "/v1/wallets/{address}/recovery"): only(OPERATOR),
    # two tiers (issue 24): the central bank is the regulator's key; an operator key acts for one
    # institution and reaches only its customers (a 403 ``institution-scope`` for another's, past
    # the role guard: tests/services/test_banking_api.py TestAccounts)
    ("GET", "/v1/institutions"): only(*READERS),
    ("POST", "/v1/institutions"): only(REGULATOR),
    ("POST", "/v1/institutions/{institution}/reserve/allocations"): only(REGULATOR),
    ("POST", "/v1/institutions/{institution}/reserve/withdrawals"): only(REGULATOR),
    ("GET", "/v1/institutions/{institution}/statement"): only(*READERS),
    ("POST", "/v1/bank/accounts"): only(OPERATOR),
    ("GET", "/v1/bank/accounts/{account_id}"): only(OPERATOR),
    ("POST", "/v1/wallets/{address}/bank-links"): only(OPERATOR),
    ("GET", "/v1/wallets/{address}/bank-links"): only(OPERATOR),
    ("POST", "/v1/bank/top-ups"): only(OPERATOR),
    ("POST", "/v1/bank/redemptions"): only(OPERATOR),
    ("GET", "/v1/bank/transfers/{transfer_id}"): only(OPERATOR),
    ("GET", "/v1/regulator/recoveries/{recovery_id}"): only(*READERS),
    ("POST", "/v1/regulator/recoveries/{recovery_id}/approve"): only(REGULATOR),
    ("POST", "/v1/regulator/recoveries/{recovery_id}/holdings"): only(OPERATOR, REGULATOR),
    ("GET", "/v1/regulator/recoveries"): only(REGULATOR, AUDITOR),
    ("GET", "/v1/regulator/court-orders"): only(REGULATOR, AUDITOR),
    # one identity's personal wallets per tier: the contracts' admin setting
    ("GET", "/v1/admin/personal-wallet-limit"): only(ADMIN),
    ("PUT", "/v1/admin/personal-wallet-limit"): only(ADMIN),
    # prepaid-fund supervision
    ("POST", "/v1/prepaid/merchants"): only(REGULATOR),
    ("POST", "/v1/prepaid/merchants/{merchant}/close"): only(REGULATOR),
    ("POST", "/v1/prepaid/merchants/{merchant}/refunds"): only(OPERATOR, REGULATOR),
    ("GET", "/v1/prepaid/merchants/{merchant}/packages"): only(OPERATOR, REGULATOR, AUDITOR, own=(MERCHANT,)),
    ("POST", "/v1/prepaid/packages"): only(OPERATOR),
    ("GET", "/v1/prepaid/packages/{package_id}"): only(OPERATOR, REGULATOR, AUDITOR, own=(MERCHANT,)),
    ("POST", "/v1/prepaid/packages/{package_id}/consume"): only(OPERATOR),
    ("POST", "/v1/prepaid/packages/{package_id}/claim"): only(own=(MERCHANT,)),
    ("POST", "/v1/prepaid/packages/{package_id}/cancel"): only(OPERATOR),
    ("POST", "/v1/prepaid/packages/{package_id}/refund"): only(OPERATOR, REGULATOR),
    # payroll and subsidy disbursement
    ("POST", "/v1/disbursements"): only(OPERATOR),
    ("POST", "/v1/disbursements/csv"): only(OPERATOR),
    ("POST", "/v1/disbursements/payers/{payer}/officers"): only(OPERATOR),
    # a checker reads the batches of the payers it is an officer of
    ("GET", "/v1/disbursements/{reference}"): only(*READERS, own=(CHECKER,)),
    ("GET", "/v1/disbursements/{reference}/exceptions"): only(*READERS, own=(CHECKER,)),
    ("GET", "/v1/disbursements/{reference}/rows/{index}"): only(*READERS, own=(CHECKER,)),
    ("GET", "/v1/disbursements/{reference}/tree"): only(*READERS, own=(CHECKER,)),
    ("POST", "/v1/disbursements/{reference}/approve"): only(own=(CHECKER,)),
    ("POST", "/v1/disbursements/{reference}/cancel"): only(OPERATOR),
    ("POST", "/v1/disbursements/{reference}/execute"): only(OPERATOR),
    ("POST", "/v1/disbursements/{reference}/exceptions/{index}/retry"): only(OPERATOR),
    ("POST", "/v1/disbursements/{reference}/reclaim"): only(OPERATOR),
    # vouchers and union welfare
    ("POST", "/v1/voucher-programs"): only(OPERATOR),
    ("GET", "/v1/voucher-programs/{programme_id}"): only(OPERATOR, REGULATOR, AUDITOR),
    ("POST", "/v1/voucher-programs/{programme_id}/grants"): only(OPERATOR),
    ("POST", "/v1/voucher-programs/{programme_id}/grants/csv"): only(OPERATOR),
    ("POST", "/v1/voucher-programs/{programme_id}/campaign"): only(OPERATOR),
    # the whole tree lists every holder: the reader roles only
    ("GET", "/v1/voucher-programs/{programme_id}/campaign/tree"): only(*READERS),
    ("GET", "/v1/voucher-programs/{programme_id}/campaign/{index}"): only(*READERS, own=BOUND),
    ("POST", "/v1/voucher-programs/{programme_id}/campaign/{index}/claim"): only(OPERATOR),
    ("POST", "/v1/voucher-programs/{programme_id}/enrol"): only(OPERATOR),
    ("POST", "/v1/voucher-programs/{programme_id}/spend"): only(OPERATOR),
    # a merchant key spends as its own wallet only, by construction: no other wallet to refuse
    ("POST", "/v1/voucher-programs/{programme_id}/spend/signed"): only(MERCHANT),
    ("POST", "/v1/voucher-programs/{programme_id}/close"): only(OPERATOR, REGULATOR),
    ("GET", "/v1/voucher-programs/{programme_id}/holders/{holder}"): only(*READERS, own=BOUND),
    # village collectives (an officer acts in the collectives it is an officer of)
    ("POST", "/v1/collectives"): only(REGULATOR),
    ("GET", "/v1/collectives/{collective_id}"): only(OPERATOR, REGULATOR, AUDITOR, own=(OFFICER,)),
    ("POST", "/v1/collectives/{collective_id}/years"): only(REGULATOR),
    ("POST", "/v1/collectives/{collective_id}/budgets"): only(REGULATOR),
    ("POST", "/v1/collectives/{collective_id}/officers"): only(REGULATOR),
    ("POST", "/v1/collectives/{collective_id}/rules"): only(REGULATOR),
    ("POST", "/v1/collectives/split-window"): only(REGULATOR),
    ("POST", "/v1/collectives/{collective_id}/freeze"): only(REGULATOR),
    ("POST", "/v1/collectives/{collective_id}/unfreeze"): only(REGULATOR),
    ("POST", "/v1/collectives/{collective_id}/assets"): only(own=(OFFICER,)),
    ("POST", "/v1/collectives/{collective_id}/income"): only(OPERATOR),
    ("GET", "/v1/collectives/{collective_id}/proposals"): only(OPERATOR, REGULATOR, AUDITOR, own=(OFFICER,)),
    ("POST", "/v1/collectives/{collective_id}/proposals"): only(own=(OFFICER,)),
    ("GET", "/v1/collectives/{collective_id}/proposals/{proposal_id}"): only(
        OPERATOR, REGULATOR, AUDITOR, own=(OFFICER,)
    ),
    ("POST", "/v1/collectives/{collective_id}/proposals/{proposal_id}/approve"): only(
        REGULATOR, own=(OFFICER,)
    ),
    ("POST", "/v1/collectives/{collective_id}/proposals/{proposal_id}/reject"): only(
        REGULATOR, own=(OFFICER,)
    ),
    ("POST", "/v1/collectives/{collective_id}/proposals/{proposal_id}/cancel"): only(own=(OFFICER,)),
    ("POST", "/v1/collectives/{collective_id}/proposals/{proposal_id}/execute"): only(own=(OFFICER,)),
    # merchant payment codes
    ("POST", "/v1/payment-codes"): only(OPERATOR, own=(MERCHANT,)),
    ("GET", "/v1/payment-codes/{code_id}"): only(OPERATOR, REGULATOR, AUDITOR, own=(MERCHANT,)),
    ("GET", "/v1/payment-codes/{code_id}.png"): only(OPERATOR, REGULATOR, AUDITOR, own=(MERCHANT,)),
    ("GET", "/v1/payment-codes/{code_id}.svg"): only(OPERATOR, REGULATOR, AUDITOR, own=(MERCHANT,)),
    # custodial and voucher forms: the operator; card and signed forms: also the code's merchant
    ("POST", "/v1/payment-codes/{code_id}/pay"): only(OPERATOR, own=(MERCHANT,)),
    # merchants' everyday needs (issue 23): a merchant refunds and reads its own payments only
    ("POST", "/v1/payment-codes/{code_id}/payments/{payment_id}/refunds"): only(OPERATOR, own=(MERCHANT,)),
    ("GET", "/v1/refunds"): only(*READERS, own=(MERCHANT,)),
    ("GET", "/v1/refunds/{refund_id}"): only(*READERS, own=(MERCHANT,)),
    ("GET", "/v1/merchants/{merchant}/statements/{day}"): only(*READERS, own=(MERCHANT,)),
    ("POST", "/v1/spot-checks/run"): only(OPERATOR),
    ("GET", "/v1/spot-checks/{day}"): only(*READERS),
    # the holder's channel: sign-in needs no key (the signature is the credential); an operator
    # issues keys for custodial wallets; every other holder route admits holder keys only and
    # answers for the key's own wallet (no route takes a wallet; another's mandate is a 404)
    ("POST", "/v1/holder/challenge"): Rule(public=True, status=422, why="sign-in: no key yet"),
    ("POST", "/v1/holder/session"): Rule(public=True, status=422, why="sign-in: no key yet"),
    ("POST", "/v1/holder/keys"): only(OPERATOR),
    ("GET", "/v1/holder/balance"): only(HOLDER),
    ("GET", "/v1/holder/history"): only(HOLDER),
    ("GET", "/v1/holder/history/export"): only(HOLDER),
    ("GET", "/v1/holder/mandates"): only(HOLDER),
    ("POST", "/v1/holder/mandates/{mandate_id}/revoke"): only(HOLDER),
    ("GET", "/v1/holder/packages"): only(HOLDER),
    ("POST", "/v1/holder/packages/{package_id}/consume"): only(HOLDER),
    ("POST", "/v1/holder/packages/{package_id}/cancel"): only(HOLDER),
    ("GET", "/v1/holder/cards"): only(HOLDER),
    ("POST", "/v1/holder/cards/{card}/report-lost"): only(HOLDER),
    ("GET", "/v1/holder/vouchers"): only(HOLDER),
    ("POST", "/v1/holder/vouchers/{programme_id}/claims/{index}"): only(HOLDER),
    ("GET", "/v1/holder/disbursements"): only(HOLDER),
    ("POST", "/v1/holder/disbursements/{reference}/rows/{index}/claim"): only(HOLDER),
    # the auditor
    ("GET", "/v1/audit/events"): only(AUDITOR),
    ("GET", "/v1/audit/reconciliation"): only(AUDITOR),
    ("GET", "/v1/audit/reconciliation/latest"): only(AUDITOR),
    # webhooks: the reader roles and merchant keys register; every key manages its own endpoints only
    ("POST", "/v1/webhooks"): only(OPERATOR, REGULATOR, AUDITOR, MERCHANT),
    ("GET", "/v1/webhooks"): only(OPERATOR, REGULATOR, AUDITOR, MERCHANT),
    ("GET", "/v1/webhooks/{endpoint_id}"): OWN_WEBHOOKS,
    ("DELETE", "/v1/webhooks/{endpoint_id}"): OWN_WEBHOOKS,
    ("GET", "/v1/webhooks/{endpoint_id}/deliveries"): OWN_WEBHOOKS,
    ("GET", "/v1/webhooks/deliveries/{delivery_id}"): OWN_WEBHOOKS,
    ("POST", "/v1/webhooks/deliveries/{delivery_id}/replay"): OWN_WEBHOOKS,
    # utility bills: the operator registers billers and pays for custodial residents; a biller's
    # merchant key posts its bills, makes codes for them and reads its own settlement files
    ("POST", "/v1/billers"): only(OPERATOR),
    ("GET", "/v1/billers/{biller_id}"): only(*READERS, own=(MERCHANT,)),
    ("POST", "/v1/billers/{biller_id}/bills"): only(OPERATOR, own=(MERCHANT,)),
    ("GET", "/v1/billers/{biller_id}/accounts/{account}/bills"): only(*READERS, own=(MERCHANT,)),
    ("POST", "/v1/billers/{biller_id}/accounts/{account}/pay"): only(OPERATOR),
    ("POST", "/v1/billers/{biller_id}/accounts/{account}/code"): only(OPERATOR, own=(MERCHANT,)),
    ("POST", "/v1/billers/{biller_id}/autodebits"): only(OPERATOR),
    ("POST", "/v1/billers/{biller_id}/autodebits/{autodebit_id}/revoke"): only(OPERATOR),
    ("POST", "/v1/utilities/autodebit-runs"): only(OPERATOR),
    ("GET", "/v1/billers/{biller_id}/settlements/{day}.csv"): only(*READERS, own=(MERCHANT,)),
    # the closed-loop park: the operator sets a park up from its file; the report is a reader's
    ("POST", "/v1/parks"): only(OPERATOR),
    ("POST", "/v1/parks/{park_id}/fees"): only(OPERATOR),
    ("GET", "/v1/parks/{park_id}"): only(*READERS),
    ("GET", "/v1/parks/{park_id}/report"): only(*READERS),
}

GATEWAY_MATRIX: dict[tuple[str, str], Rule] = {
    **FASTAPI_ROUTES,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/v1/operations/{operation_id}"): OWN_OPERATIONS,
    # terminals
    ("POST", "/v1/terminals"): only(OPERATOR),
    ("GET", "/v1/terminals"): only(OPERATOR),
    ("GET", "/v1/terminals/{terminal_id}"): only(OPERATOR, own=(TERMINAL,)),
    ("POST", "/v1/terminals/{terminal_id}/revoke"): only(OPERATOR),
    # offline payments: a terminal uploads payments to its own merchant only
    ("POST", "/v1/offline-payments"): only(own=(TERMINAL,)),
    # refunds of card payments (issue 23): a terminal its own merchant's payments only, the operator any
    ("POST", "/v1/card-payments/{card}/{counter}/refunds"): only(OPERATOR, own=(TERMINAL,)),
    ("GET", "/v1/offline-payments/{upload_id}"): only(OPERATOR, AUDITOR, own=(TERMINAL,)),
    # cards
    ("POST", "/v1/cards"): only(OPERATOR),
    ("GET", "/v1/cards"): only(OPERATOR, REGULATOR, AUDITOR),
    ("GET", "/v1/cards/{card}"): only(OPERATOR, REGULATOR, AUDITOR),
    ("POST", "/v1/cards/{card}/loads"): only(OPERATOR),
    ("POST", "/v1/cards/{card}/report-lost"): only(OPERATOR),
    ("POST", "/v1/cards/{card}/return-reserve"): only(OPERATOR),
    ("POST", "/v1/purse-programmes"): only(OPERATOR),
    ("GET", "/v1/purse-programmes/{programme}"): only(OPERATOR, REGULATOR, AUDITOR),
    ("POST", "/v1/cards/{card}/purses"): only(OPERATOR),
    ("GET", "/v1/cards/{card}/purses"): only(OPERATOR, REGULATOR, AUDITOR),
    ("POST", "/v1/cards/{card}/purses/{programme}/expire"): only(OPERATOR),
    # door access
    ("POST", "/v1/access-points"): only(OPERATOR),
    ("GET", "/v1/access-points/{point_id}"): only(OPERATOR),
    ("POST", "/v1/access-points/{point_id}/grants"): only(OPERATOR),
    ("DELETE", "/v1/access-points/{point_id}/grants/{grant_id}"): only(OPERATOR),
    ("GET", "/v1/access-points/{point_id}/decisions"): only(OPERATOR, AUDITOR),
    ("POST", "/v1/access/challenges"): only(ACCESS_POINT),
    ("POST", "/v1/access/decisions"): only(ACCESS_POINT),
    # quick-pay mandates
    ("POST", "/v1/mandates"): only(OPERATOR),
    ("GET", "/v1/mandates/{mandate_id}"): only(OPERATOR, REGULATOR, AUDITOR, own=(MERCHANT, TERMINAL)),
    ("POST", "/v1/mandates/{mandate_id}/pulls"): only(OPERATOR, own=(MERCHANT, TERMINAL)),
    ("POST", "/v1/mandates/{mandate_id}/revoke"): only(OPERATOR),
    # unattended devices: vending machines and recycling bins are terminals of their merchant
    ("POST", "/v1/devices/preauths"): only(own=(TERMINAL,)),
    ("GET", "/v1/devices/preauths/{preauth_id}"): only(OPERATOR, AUDITOR, own=(TERMINAL,)),
    ("POST", "/v1/devices/preauths/{preauth_id}/complete"): only(own=(TERMINAL,)),
    ("POST", "/v1/devices/preauths/{preauth_id}/release"): only(OPERATOR, own=(TERMINAL,)),
    ("POST", "/v1/devices/programmes"): only(OPERATOR),
    ("GET", "/v1/devices/programmes/{programme_id}"): only(*READERS, own=(MERCHANT, TERMINAL)),
    ("POST", "/v1/devices/programmes/{programme_id}/fund"): only(OPERATOR),
    ("POST", "/v1/devices/programmes/{programme_id}/close"): only(OPERATOR),
    ("POST", "/v1/devices/payouts"): only(own=(TERMINAL,)),
}

MATRICES: dict[str, dict[tuple[str, str], Rule]] = {"operator": OPERATOR_MATRIX, "gateway": GATEWAY_MATRIX}


def route_list(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every route an app serves, HEAD aside. FastAPI 0.16x keeps included
    routers lazily (``_IncludedRouter``), so walk their effective routes too."""
    found: set[tuple[str, str]] = set()

    def add(methods: set[str] | None, path: str) -> None:
        for m in methods or {"GET"}:
            if m != "HEAD":
                found.add((m, path))

    for route in app.routes:
        if hasattr(route, "effective_route_contexts"):
            for ctx in route.effective_route_contexts():
                add(getattr(ctx.original_route, "methods", None), ctx.path)
        else:
            add(getattr(route, "methods", None), route.path)
    return found


def cells() -> int:
    """The matrix's size: routes x columns, both services."""
    return sum(len(m) for m in MATRICES.values()) * len(COLUMNS)
