"""Every route of both services, called over real HTTP by every role, no key and an unknown key,
against the decisions of access_matrix.py.

The cases come from the apps' route lists (the same routers ``create_app`` includes, compared
with the live apps' ``app.routes``), so a new route with no row in the matrix fails here, by
name, and so does a row whose route is gone. Each cell sends one request with placeholder path
parameters and body (real resources where a guard looks the resource up before it decides):

- 401 / 403: exactly that status, as problem+json, and nothing changed (database rows and chain);
- allow: neither 401 nor 403 (a 404 or 422 from the placeholder input is fine), and no 5xx;
- own: no 401, no 5xx, and a 403 only for another's resource (never "forbidden-role");
- public: 200, key or not.

Keys bound to a wallet get an own-versus-other test per route family at the end.
"""

from __future__ import annotations

import functools
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from eth_account import Account
from fastapi import FastAPI
from sqlalchemy import func, select
from web3 import Web3

from chain.clients.hardwallet import CardForm, CardStatus
from services.common import docs
from services.common.keys import Role, create_key
from services.gateway.families import MODULES as GATEWAY_MODULES
from services.gateway.routes import ROUTERS as GATEWAY_ROUTERS
from services.operator.families import MODULES as OPERATOR_MODULES
from services.operator.routes import ROUTERS as OPERATOR_ROUTERS
from services.schema import Base
from tests.gateway.conftest import Gateway
from tests.security.access_matrix import BAD, COLUMNS, MATRICES, NONE, ROLES, Rule, route_list
from tests.services.conftest import Api

Route = tuple[str, str]
OTHER = Web3.to_checksum_address("0x" + "ab" * 20)  # a wallet no key here speaks for
MISSING = 987_654  # an id of nothing


def _declared(routers: list[Any]) -> set[Route]:
    """The routes ``create_app`` serves: its routers, mounted the same way, plus FastAPI's own
    and the offline /docs."""
    app = FastAPI(docs_url=None, redoc_url=None)
    docs.install(app)
    for router in routers:
        app.include_router(router)
    return route_list(app)


DECLARED: dict[str, set[Route]] = {
    "operator": _declared([*OPERATOR_ROUTERS, *(r for m in OPERATOR_MODULES for r in m.routers)]),
    "gateway": _declared([*GATEWAY_ROUTERS, *(r for m in GATEWAY_MODULES for r in m.routers)]),
}


# one statement: SELECT (SELECT count(*) FROM t1), (SELECT count(*) FROM t2), ...
_COUNTS = [select(func.count()).select_from(t).scalar_subquery() for t in Base.metadata.sorted_tables]


@dataclass
class World:
    """A running service with a client per column and the placeholders its routes need."""

    app: Any
    w3: Web3
    clients: dict[str, httpx.Client]
    params: dict[str, Any]
    overrides: dict[Route, dict[str, Any]] = field(default_factory=dict)
    bodies: dict[Route, Any] = field(default_factory=dict)
    after: dict[Route, Callable[[], None]] = field(default_factory=dict)
    owned: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def routes(self) -> set[Route]:
        """The live app's routes, read once (the app serves the same routes for the whole run)."""
        return route_list(self.app)

    def fingerprint(self) -> tuple[Any, ...]:
        """What a refused request must leave as it was: every table's row count and the chain."""
        with self.app.state.ctx.db.session() as s:
            counts = tuple(s.execute(select(*_COUNTS)).one())
        return (self.w3.eth.block_number, counts)

    def request(self, column: str, method: str, path: str) -> httpx.Response:
        values = {**self.params, **self.overrides.get((method, path), {})}
        url = path.format(**values)
        headers = {"Idempotency-Key": str(uuid.uuid4())} if method != "GET" else {}
        body = self.bodies.get((method, path), {}) if method in ("POST", "PUT", "PATCH") else None
        return self.clients[column].request(method, url, json=body, headers=headers)


def _client(url: str, key: str | None) -> httpx.Client:
    headers = {"X-API-Key": key} if key else {}
    return httpx.Client(base_url=url, headers=headers, timeout=60)


def _anonymous_columns(url: str) -> dict[str, httpx.Client]:
    return {NONE: _client(url, None), BAD: _client(url, "xcp_" + secrets.token_urlsafe(32))}


def _ok(r: httpx.Response, *codes: int) -> Any:
    assert r.status_code in codes, r.text
    return r.json()


@pytest.fixture(scope="module")
def operator_world(api: Api) -> Iterator[World]:
    """Keys for every role (created through /v1/api-keys, as an admin does), a registered
    merchant with a payment code, and an operation requested by the operator."""
    op = api.post(
        "operator",
        "/v1/wallets",
        {"kind": "merchant", "tier": 2, "merchant_category": 5411, "display_name": "shop", "identity": "m1"},
    )
    merchant = _ok(op, 201)["request"]["address"]
    officer_wallet = api.new_wallet(name="officer")
    code = _ok(api.operator.post("/v1/payment-codes", json={"merchant": merchant}), 201)["id"]
    clients = {"admin": api.admin, **{r: api.clients[r] for r in ROLES if r in api.clients}}
    bound = {"officer": officer_wallet, "terminal": None, "access-point": None}  # as the API allows
    for role, wallet in bound.items():
        body = {"role": role, "label": f"matrix {role}", "wallet": wallet}
        clients[role] = _client(api.url, _ok(api.admin.post("/v1/api-keys", json=body), 201)["key"])
    holder = {"wallet": api.new_wallet(name="matrix holder")}  # a custodial resident's key
    clients["holder"] = _client(api.url, _ok(api.operator.post("/v1/holder/keys", json=holder), 201)["key"])
    clients.update(_anonymous_columns(api.url))
    regulator = clients["regulator"]
    world = World(
        app=api.app,
        w3=api.w3,
        clients=clients,
        params={
            "address": OTHER,
            "merchant": OTHER,
            "payer": OTHER,
            "holder": OTHER,
            "package_id": MISSING,
            "programme_id": MISSING,
            "collective_id": MISSING,
            "proposal_id": MISSING,
            "hold_id": MISSING,
            "order_id": MISSING,
            "recovery_id": MISSING,
            "index": 0,
            "reference": "matrix-ref",
            "name": "dashboard.js",
            "asset": "swagger-ui.css",
            "code_id": code,  # the code routes look the code up before they decide
            "operation_id": op.json()["id"],  # the operator's: another key's for the own check
            "mandate_id": MISSING,  # not the holder's: a 404, never another's mandate revoked
            "card": OTHER,  # the holder's card routes: not the holder's, a 404
            "key_id": MISSING,  # revoking or rotating a real key here would lock a column out
            "endpoint_id": MISSING,
            "delivery_id": MISSING,
            "payment_id": MISSING,
            "refund_id": MISSING,
            "day": "2026-01-01",
            "biller_id": "matrix-biller",  # none: the guard decides before the lookup
            "account": "X1",
            "autodebit_id": MISSING,
            "institution": 1,  # the operator key's own (institution #1): its statement is allowed
            "account_id": MISSING,
            "transfer_id": MISSING,
            "park_id": "matrix-park",  # none: the guard decides before the lookup
        },
        bodies={
            # guards inside the handler run after validation: these bodies validate
            ("POST", "/v1/payment-codes"): {"merchant": merchant},
            ("POST", "/v1/holder/packages/{package_id}/consume"): {"sessions": 1},
            ("POST", "/v1/billers/{biller_id}/bills"): {
                "account": "X1",
                "period": "2026-10",
                "amount_fen": 1,
            },
            ("POST", "/v1/payment-codes/{code_id}/pay"): {
                "form": "signed-transaction",
                "signed_transaction": "0x00",
            },
            ("POST", "/v1/payment-codes/{code_id}/payments/{payment_id}/refunds"): {"amount_fen": 1},
        },
        after={
            ("POST", "/v1/regulator/pause"): lambda: _ok(
                regulator.post("/v1/regulator/unpause", headers={"Idempotency-Key": str(uuid.uuid4())}), 200
            )
        },
        owned={"merchant": merchant, "code": code},
    )
    yield world
    for c in clients.values():
        if c not in api.clients.values():
            c.close()


@pytest.fixture(scope="module")
def gateway_world(gateway: Gateway) -> Iterator[World]:
    """Keys for every role (terminals and access points through the gateway's API, the rest in the
    shared key table as the operator service makes them), a terminal that uploaded a batch, and a
    quick-pay mandate of its merchant."""
    gw = gateway
    merchant = gw.merchant()
    terminal_id, terminal = gw.terminal(merchant)
    point = _ok(gw.post("operator", "/v1/access-points", {"name": "door"}), 201)
    card, holder = gw.card(load=10_000)
    payment = card.sign_payment(merchant, 100, gw.now())
    upload = _ok(gw.post(terminal, "/v1/offline-payments", {"payments": [payment.to_json()]}), 200)
    mandate = gw.post(
        "operator",
        "/v1/mandates",
        {
            "holder": holder,
            "merchant": merchant,
            "per_payment_cap_fen": 1_000,
            "daily_cap_fen": 5_000,
            "expires_at": gw.now() + 86_400,
        },
    )
    mandate_body = _ok(mandate, 200, 201)
    with gw.ctx.db.session() as s:
        wallets = {Role.MERCHANT: merchant, Role.OFFICER: holder, Role.HOLDER: holder}
        keys = {
            str(r): create_key(s, r, f"matrix {r}", wallet=wallets.get(r))[1]
            for r in (Role.ADMIN, Role.CHECKER, Role.MERCHANT, Role.REGULATOR, Role.OFFICER, Role.HOLDER)
        }
        s.commit()
    clients = {
        "operator": gw.clients["operator"],
        "auditor": gw.clients["auditor"],
        "terminal": terminal,
        "access-point": gw.client(point["key"]),
        **{role: gw.client(key) for role, key in keys.items()},
        **_anonymous_columns(gw.url),
    }
    yield World(
        app=gw.app,
        w3=gw.w3,
        clients=clients,
        params={
            "asset": "swagger-ui.css",
            "operation_id": mandate_body["id"],
            "terminal_id": terminal_id,
            "upload_id": upload["id"],
            "card": OTHER,
            "point_id": "AP-00000000",
            "grant_id": MISSING,
            "mandate_id": mandate_body["mandate_id"],
            "counter": 1,
            "preauth_id": MISSING,
            "programme_id": MISSING,
            "programme": MISSING,
        },
        overrides={  # operator-only routes that would act on the real resources: a missing one
            ("POST", "/v1/terminals/{terminal_id}/revoke"): {"terminal_id": "T-00000000"},
            ("POST", "/v1/mandates/{mandate_id}/revoke"): {"mandate_id": MISSING},
        },
        bodies={
            ("POST", "/v1/mandates/{mandate_id}/pulls"): {"amount_fen": 1, "reference": "matrix-pull"},
            ("POST", "/v1/card-payments/{card}/{counter}/refunds"): {"amount_fen": 1},
            ("POST", "/v1/cards/{card}/purses"): {"programme": MISSING, "amount_fen": 1},
        },
        owned={"merchant": merchant, "terminal_id": terminal_id, "holder": holder},
    )
    for c in (clients[NONE], clients[BAD]):
        c.close()


def _cases() -> Iterator[Any]:
    for service, declared in DECLARED.items():
        for method, path in sorted(declared | set(MATRICES[service])):
            for column in COLUMNS:
                yield pytest.param(service, method, path, column, id=f"{service} {method} {path} [{column}]")


def _problem(r: httpx.Response) -> str:
    assert r.headers.get("content-type", "").startswith("application/problem+json"), (
        r.status_code,
        r.headers.get("content-type"),
        r.text[:300],
    )
    body = r.json()
    assert body["status"] == r.status_code
    return str(body["type"]).removeprefix("urn:xcpay:problem:")


@pytest.mark.parametrize(("service", "method", "path", "column"), list(_cases()))
def test_route_answers_each_role_as_the_matrix_says(
    request: pytest.FixtureRequest, service: str, method: str, path: str, column: str
) -> None:
    matrix = MATRICES[service]
    route = (method, path)
    assert route in matrix, f"{service}: {method} {path} has no row in tests/security/access_matrix.py"
    world: World = request.getfixturevalue(f"{service}_world")
    assert route in world.routes, f"{service}: the matrix row {method} {path} names no route"
    rule: Rule = matrix[route]
    decision = rule.decision(column)
    cell = f"{service} {method} {path} as {column} ({decision})"

    before = world.fingerprint() if decision in ("401", "403") else None
    r = world.request(column, method, path)
    if decision in ("401", "403"):
        assert r.status_code == int(decision), f"{cell}: got {r.status_code} {r.text[:300]}"
        slug = _problem(r)
        if decision == "401":
            assert slug == ("missing-api-key" if column == NONE else "invalid-api-key"), cell
        assert world.fingerprint() == before, f"{cell}: a refused request changed something"
        return
    assert r.status_code < 500, f"{cell}: {r.status_code} {r.text[:300]}"
    if decision == "public":
        assert r.status_code == rule.status, f"{cell}: {r.status_code} {r.text[:300]}"
    elif decision == "allow":
        assert r.status_code not in (401, 403), f"{cell}: {r.status_code} {r.text[:300]}"
    else:  # own: passes the role check; may be refused only because the resource is another's
        assert r.status_code != 401, f"{cell}: {r.text[:300]}"
        if r.status_code == 403:
            assert _problem(r) != "forbidden-role", f"{cell}: refused for its role: {r.text[:300]}"
    if route in world.after and r.status_code < 400:
        world.after[route]()


@pytest.mark.parametrize("service", ["operator", "gateway"])
def test_the_matrix_covers_exactly_the_live_routes(request: pytest.FixtureRequest, service: str) -> None:
    """The case list above is built from the routers; the live app must serve the same routes."""
    world: World = request.getfixturevalue(f"{service}_world")
    live = route_list(world.app)
    assert live == DECLARED[service]
    assert sorted(live - set(MATRICES[service])) == [], "routes with no row in the matrix"
    assert sorted(set(MATRICES[service]) - live) == [], "matrix rows naming no route"


# -- own versus other ------------------------------------------------------------------------------


def _admin_key(api: Api, role: str, wallet: str) -> httpx.Client:
    r = api.admin.post("/v1/api-keys", json={"role": role, "label": f"own {role}", "wallet": wallet})
    return _client(api.url, _ok(r, 201)["key"])


def test_a_merchant_key_acts_on_its_own_codes_and_packages_only(api: Api, operator_world: World) -> None:
    mine = operator_world.owned["merchant"]
    theirs = api.new_wallet(kind="merchant", tier=2, category=5812, name="other shop")
    merchant = _admin_key(api, "merchant", mine)
    assert merchant.post("/v1/payment-codes", json={"merchant": mine}).status_code == 201
    r = merchant.post("/v1/payment-codes", json={"merchant": theirs})
    assert r.status_code == 403 and _problem(r) == "not-your-merchant"
    their_code = _ok(api.operator.post("/v1/payment-codes", json={"merchant": theirs}), 201)["id"]
    assert merchant.get(f"/v1/payment-codes/{operator_world.owned['code']}").status_code == 200
    for suffix in ("", ".png", ".svg"):
        r = merchant.get(f"/v1/payment-codes/{their_code}{suffix}")
        assert r.status_code == 403 and _problem(r) == "not-your-merchant", suffix
    assert merchant.get(f"/v1/prepaid/merchants/{mine}/packages").status_code == 200
    r = merchant.get(f"/v1/prepaid/merchants/{theirs}/packages")
    assert r.status_code == 403 and _problem(r) == "not-your-package"
    # its own wallet, not another's
    assert merchant.get(f"/v1/wallets/{mine}").status_code == 200
    r = merchant.get(f"/v1/wallets/{theirs}")
    assert r.status_code == 403 and _problem(r) == "not-yours"
    assert merchant.get(f"/v1/voucher-programs/1/holders/{theirs}").status_code == 403
    r = merchant.get(f"/v1/voucher-programs/{MISSING}/campaign/0")  # no such grant: no 404 oracle
    assert r.status_code == 403 and _problem(r) == "not-yours"
    r = merchant.get(f"/v1/prepaid/packages/{MISSING}")  # a package that does not exist: no 404 oracle
    assert r.status_code == 403 and _problem(r) == "not-your-package"


def test_a_checker_reads_only_the_payers_it_is_an_officer_of(api: Api, operator_world: World) -> None:
    """A checker of one payer read every payer's batches, rows (salaries) and wallets before."""
    ends = datetime.fromtimestamp(api.w3.eth.get_block("latest")["timestamp"] + 30 * 86_400, UTC)
    batches, checkers = {}, {}
    for name in ("mine", "theirs"):
        payer = api.new_wallet(kind="institution", tier=1, name=f"payer {name}")
        worker = api.new_wallet(tier=2, name=f"worker of {name}")
        checker_wallet = api.new_wallet(tier=2, name=f"checker of {name}")
        role = {"account": checker_wallet, "role": "checker"}
        _ok(api.post("operator", f"/v1/disbursements/payers/{payer}/officers", role), 200)
        ref = f"own-{name}-{uuid.uuid4().hex[:8]}"
        body = {
            "reference": ref,
            "payer": payer,
            "purpose": "salary",
            "ends_at": ends.isoformat(),
            "unit": "fen",
            "rows": [{"recipient": worker, "amount": 123_45}],
        }
        _ok(api.post("operator", "/v1/disbursements", body), 201)
        batches[name] = (payer, ref, worker)
        checkers[name] = _admin_key(api, "checker", checker_wallet)
    checker = checkers["mine"]
    payer, ref, worker = batches["mine"]
    for path in (
        f"/v1/disbursements/{ref}",
        f"/v1/disbursements/{ref}/rows/0",
        f"/v1/disbursements/{ref}/exceptions",
    ):
        assert checker.get(path).status_code == 200, path
    assert checker.get(f"/v1/wallets/{payer}").status_code == 200  # its payer's balance
    their_payer, their_ref, their_worker = batches["theirs"]
    for path in (
        f"/v1/disbursements/{their_ref}",
        f"/v1/disbursements/{their_ref}/rows/0",
        f"/v1/disbursements/{their_ref}/exceptions",
        "/v1/disbursements/no-such-batch",  # the same answer as another payer's: no oracle
    ):
        r = checker.get(path)
        assert r.status_code == 403 and _problem(r) == "not-your-payer", path
    for wallet in (their_payer, their_worker, worker):  # nor anyone's balance and name
        r = checker.get(f"/v1/wallets/{wallet}")
        assert r.status_code == 403 and _problem(r) == "not-yours", wallet
    r = checker.get(f"/v1/operations/{operator_world.params['operation_id']}")
    assert r.status_code == 403 and _problem(r) == "not-yours"
    assert api.auditor.get(f"/v1/disbursements/{their_ref}").status_code == 200  # the readers still read
    # approving is decided the same way, before the lookup: before, another payer's batch got the
    # contract's not-a-checker naming that payer's wallet, and a missing one a 404
    for target in (their_ref, "no-such-batch"):
        r = checker.post(f"/v1/disbursements/{target}/approve", headers={"Idempotency-Key": uuid.uuid4().hex})
        assert r.status_code == 403 and _problem(r) == "not-your-payer", (target, r.text)
        assert their_payer[2:].lower() not in r.text.lower()  # (``instance`` echoes the path sent)


def test_another_keys_operation_is_refused_to_a_bound_key(api: Api, operator_world: World) -> None:
    merchant = _admin_key(api, "merchant", operator_world.owned["merchant"])
    other = operator_world.params["operation_id"]  # the operator registered the merchant
    r = merchant.get(f"/v1/operations/{other}")
    assert r.status_code == 403 and _problem(r) == "not-yours"
    assert api.auditor.get(f"/v1/operations/{other}").status_code == 200


def test_an_officer_reads_only_its_own_collectives(api: Api) -> None:
    mine, outsider = api.new_wallet(name="officer a"), api.new_wallet(name="officer b")
    cid = _ok(api.post("regulator", "/v1/collectives", _collective_body(mine)), 201)["collective_id"]
    assert _admin_key(api, "officer", mine).get(f"/v1/collectives/{cid}").status_code == 200
    stranger = _admin_key(api, "officer", outsider)
    for unknown in (cid, MISSING):  # another's, and one that does not exist: the same answer
        r = stranger.get(f"/v1/collectives/{unknown}")
        assert r.status_code == 403 and _problem(r) == "not-your-collective", unknown


def test_an_officer_acts_only_on_its_own_collectives(api: Api) -> None:
    """Before, an outsider's proposal or approval got the contract's not-an-officer for a
    collective that exists, and collective-not-found / proposal-not-found for ids that do not."""
    mine, outsider = api.new_wallet(name="officer c"), api.new_wallet(name="officer d")
    cid = _ok(api.post("regulator", "/v1/collectives", _collective_body(mine)), 201)["collective_id"]
    stranger = _admin_key(api, "officer", outsider)
    proposal = {"payee": outsider, "amount_fen": 100, "line": 0, "purpose": "probe"}
    for unknown in (cid, MISSING):
        writes = [(f"/v1/collectives/{unknown}/proposals", proposal)]
        writes += [
            (f"/v1/collectives/{unknown}/proposals/{pid}/{verb}", None)
            for pid in (1, MISSING)
            for verb in ("approve", "reject", "cancel", "execute")
        ]
        for path, body in writes:
            r = stranger.post(path, json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
            assert r.status_code == 403 and _problem(r) == "not-your-collective", (path, r.text)
            assert mine[2:].lower() not in r.text.lower()


def test_a_merchant_key_gets_the_same_403_for_a_missing_package_or_code_it_would_act_on(
    api: Api, operator_world: World
) -> None:
    """Package ids are sequential; before, a claim on a missing package was a 404 and on another
    merchant's a 403 (the same for paying a code)."""
    merchant = _admin_key(api, "merchant", operator_world.owned["merchant"])
    claim = {"sessions": 1, "deadline": 1, "signature": "0x" + "11" * 65}
    r = merchant.post(f"/v1/prepaid/packages/{MISSING}/claim", json=claim, headers={"Idempotency-Key": "c1"})
    assert r.status_code == 403 and _problem(r) == "not-your-package", r.text
    pay = {"form": "signed-transaction", "signed_transaction": "0x00"}
    r = merchant.post("/v1/payment-codes/no-such-code/pay", json=pay, headers={"Idempotency-Key": "p1"})
    assert r.status_code == 403 and _problem(r) == "not-your-merchant", r.text


def _collective_body(officer: str) -> dict[str, Any]:
    return {
        "name": f"matrix village {uuid.uuid4().hex[:6]}",
        "officers": [{"account": officer, "role": "committee"}],
        "tiers": [{"max_amount_fen": 5_000_00, "committee": 1}],
        "proposal_lifetime_s": 30 * 86_400,
        "year": 2026,
        "lines": [{"name": "roads", "budget_fen": 1_000_00}],
    }


def test_a_terminal_reads_itself_and_its_merchants_mandates_only(
    gateway: Gateway, gateway_world: World
) -> None:
    gw, own = gateway, gateway_world.owned
    terminal = gateway_world.clients["terminal"]
    other_merchant = gw.merchant(5812)
    other_id, other_terminal = gw.terminal(other_merchant)
    assert terminal.get(f"/v1/terminals/{own['terminal_id']}").status_code == 200
    # another's and one that does not exist: the same answer (decided before any lookup)
    for unknown in (other_id, "T-00000000"):
        r = terminal.get(f"/v1/terminals/{unknown}")
        assert r.status_code == 403 and _problem(r) == "not-your-terminal", unknown
    upload = gateway_world.params["upload_id"]
    assert terminal.get(f"/v1/offline-payments/{upload}").status_code == 200
    for unknown, client in ((upload, other_terminal), (MISSING, terminal)):
        r = client.get(f"/v1/offline-payments/{unknown}")
        assert r.status_code == 403 and _problem(r) == "not-your-upload", unknown
    assert gw.clients["operator"].get(f"/v1/offline-payments/{MISSING}").status_code == 404
    mandate = gateway_world.params["mandate_id"]
    assert terminal.get(f"/v1/mandates/{mandate}").status_code == 200
    for path in (f"/v1/mandates/{MISSING}", f"/v1/mandates/{mandate}"):
        r = other_terminal.get(path)
        assert r.status_code == 403 and _problem(r) == "not-your-merchant", path
    before = gateway_world.fingerprint()
    r = other_terminal.post(
        f"/v1/mandates/{mandate}/pulls",
        json={"amount_fen": 1, "reference": "not-mine"},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert r.status_code == 403 and _problem(r) == "not-your-merchant"
    assert gateway_world.fingerprint() == before
    r = other_terminal.get(f"/v1/mandates/{mandate}")
    assert r.status_code == 403 and _problem(r) == "not-your-merchant"
    # an upload's operation is its terminal's own: another terminal may not read it
    op = terminal.get(f"/v1/offline-payments/{upload}").json()["operation_id"]
    assert terminal.get(f"/v1/operations/{op}").status_code == 200
    r = other_terminal.get(f"/v1/operations/{op}")
    assert r.status_code == 403 and _problem(r) == "not-yours"


def test_a_holder_key_reaches_its_own_wallet_only(
    api: Api, operator_world: World, gateway_world: World
) -> None:
    """Two holders: each sees its own wallet; neither reaches another route, on either service,
    even one that admits "a key that owns this wallet"; another's mandate is not found."""
    mine = operator_world.clients["holder"]
    theirs_wallet = api.new_wallet(name="other holder")
    theirs = _client(
        api.url, _ok(api.operator.post("/v1/holder/keys", json={"wallet": theirs_wallet}), 201)["key"]
    )
    my_wallet = _ok(mine.get("/v1/holder/balance"), 200)["wallet"]
    assert my_wallet != theirs_wallet
    assert _ok(theirs.get("/v1/holder/balance"), 200)["wallet"] == theirs_wallet
    for wallet in (my_wallet, theirs_wallet):
        r = mine.get(f"/v1/wallets/{wallet}")
        assert r.status_code == 403 and _problem(r) == "forbidden-role", wallet
    # a holder key on the gateway is refused too; a mandate id that is not the holder's: not found
    mandate = gateway_world.params["mandate_id"]
    holder_on_gateway = gateway_world.clients["holder"]
    r = holder_on_gateway.get(f"/v1/mandates/{mandate}")
    assert r.status_code == 403 and _problem(r) == "forbidden-role"
    before = operator_world.fingerprint()
    r = theirs.post(f"/v1/holder/mandates/{mandate}/revoke", headers={"Idempotency-Key": str(uuid.uuid4())})
    assert r.status_code == 404 and _problem(r) == "mandate-not-found"
    assert operator_world.fingerprint() == before
    # the other holder's card and package: listed for them only; acting on them is a 404 for me
    ctx = api.app.state.ctx
    card = Account.create().address
    ctx.hardwallet.register_card(ctx.operator, card, theirs_wallet, CardForm.CARD)
    gym = api.new_wallet(kind="merchant", tier=2, category=7997, name="matrix gym")
    _ok(api.post("regulator", "/v1/prepaid/merchants", {"merchant": gym, "supervised_bps": 10_000}), 200)
    _ok(api.post("operator", "/v1/issuance", {"to": theirs_wallet, "amount_fen": 1_000_00}), 200)
    body = {"consumer": theirs_wallet, "merchant": gym, "sessions": 2, "unit_price_fen": 100_00}
    body["expires_at"] = "2099-01-01T00:00:00+00:00"
    package = _ok(api.post("operator", "/v1/prepaid/packages", body), 201)["package_id"]
    assert [c["card"] for c in _ok(theirs.get("/v1/holder/cards"), 200)] == [card]
    assert [p["id"] for p in _ok(theirs.get("/v1/holder/packages"), 200)] == [package]
    assert _ok(mine.get("/v1/holder/cards"), 200) == [] and _ok(mine.get("/v1/holder/packages"), 200) == []
    before = operator_world.fingerprint()
    for path, body, slug in (
        (f"/v1/holder/cards/{card}/report-lost", None, "card-not-found"),
        (f"/v1/holder/packages/{package}/consume", {"sessions": 1}, "package-not-found"),
        (f"/v1/holder/packages/{package}/cancel", None, "package-not-found"),
    ):
        r = mine.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
        assert r.status_code == 404 and _problem(r) == slug, (path, r.text)
    assert operator_world.fingerprint() == before
    assert ctx.hardwallet.card(card).status == CardStatus.ACTIVE
    theirs.close()
