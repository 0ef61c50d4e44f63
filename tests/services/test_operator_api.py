"""The operator API over real HTTP: roles, wallets, issuance, transfers, regulator, problems."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.services.conftest import Api

PROBLEM = "application/problem+json"


def assert_problem(r: httpx.Response, status: int, slug: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
    body = r.json()
    assert body["type"] == f"urn:xcpay:problem:{slug}", body
    assert body["status"] == status and body["title"]
    return body


class TestHealth:
    def test_reports_chain_and_contracts_without_a_key(self, api: Api) -> None:
        r = api.anonymous.get("/healthz")
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "ok"
        assert body["chain"]["chain_id"] == api.w3.eth.chain_id
        assert body["chain"]["latest_block"] >= 1
        assert set(body["contracts"]) == set(api.app.state.ctx.manifest.contracts)
        assert {"WalletRegistry", "DigitalCash", "PrepaidEscrow", "Disbursement"} <= set(body["contracts"])

    def test_shows_the_node_without_credentials(self, api: Api) -> None:
        """/healthz is open; it showed XCPAY_RPC_URL verbatim, credentials and all."""
        ctx = api.app.state.ctx
        secret = "https://user:s3cret@node.example:8545/v3/projectkey?token=t0k"
        previous = ctx.settings.rpc_url
        object.__setattr__(ctx.settings, "rpc_url", secret)
        try:
            body = api.anonymous.get("/healthz").json()
        finally:
            object.__setattr__(ctx.settings, "rpc_url", previous)
        assert body["chain"]["rpc"] == "https://node.example:8545"
        from services.common.settings import public_rpc_url

        assert public_rpc_url("http://[::1]:8545/") == "http://[::1]:8545"
        assert public_rpc_url("in-process") == "in-process"
        assert public_rpc_url("/var/run/geth.ipc") == "(not shown)"

    def test_openapi_docs_are_served(self, api: Api) -> None:
        assert api.anonymous.get("/docs").status_code == 200
        assert "/v1/issuance" in api.anonymous.get("/openapi.json").json()["paths"]


class TestKeysAndRoles:
    def test_missing_key_is_401(self, api: Api) -> None:
        assert_problem(api.anonymous.get("/v1/audit/events"), 401, "missing-api-key")

    def test_unknown_key_is_401(self, api: Api) -> None:
        r = api.anonymous.get("/v1/audit/events", headers={"X-API-Key": "xcp_not_a_key"})
        assert_problem(r, 401, "invalid-api-key")

    def test_a_key_never_acts_outside_its_role(self, api: Api) -> None:
        body = {"to": "0x" + "11" * 20, "amount_fen": 1}
        for role in ("admin", "checker", "merchant", "regulator", "auditor"):
            assert_problem(api.post(role, "/v1/issuance", body), 403, "forbidden-role")
        assert_problem(api.post("operator", "/v1/regulator/pause"), 403, "forbidden-role")
        assert_problem(api.operator.get("/v1/audit/events"), 403, "forbidden-role")
        assert_problem(api.operator.post("/v1/api-keys", json={"role": "admin"}), 403, "forbidden-role")

    def test_keys_are_stored_hashed(self, api: Api) -> None:
        from sqlalchemy import select

        from services.common.keys import hash_key
        from services.common.models import ApiKey

        r = api.admin.post("/v1/api-keys", json={"role": "auditor", "label": "hash check"})
        clear = r.json()["key"]
        with api.app.state.ctx.db.session() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.id == r.json()["id"]))
        assert row.key_hash == hash_key(clear) and clear not in row.key_hash

    def test_unknown_role_is_422(self, api: Api) -> None:
        assert_problem(api.admin.post("/v1/api-keys", json={"role": "king"}), 422, "invalid-request")


class TestWallets:
    def test_custodial_wallet_is_created_registered_and_readable(self, api: Api) -> None:
        address = api.new_wallet(tier=3, name="Alice")
        r = api.auditor.get(f"/v1/wallets/{address}")
        assert r.status_code == 200, r.text
        w = r.json()
        assert (w["registered"], w["frozen"], w["tier"], w["custody"], w["display_name"]) == (
            True,
            False,
            3,
            "custodial",
            "Alice",
        )
        assert w["limits"] == {
            "balance_cap_fen": 2_000_000,
            "payment_cap_fen": 500_000,
            "daily_cap_fen": 1_000_000,
        }
        assert w["balance_fen"] == 0 and w["remaining_today_fen"] == 1_000_000

    def test_identity_is_never_stored_in_clear(self, api: Api) -> None:
        from sqlalchemy import select

        from services.common.models import Operation, Wallet

        body = {"kind": "personal", "tier": 4, "display_name": "Bo", "identity": "ID-320506-SECRET"}
        r = api.post("operator", "/v1/wallets", body)
        assert r.status_code == 201
        with api.app.state.ctx.db.session() as s:
            op = s.get(Operation, r.json()["id"])
            wallet = s.scalar(select(Wallet).where(Wallet.address == r.json()["request"]["address"]))
        assert "ID-320506-SECRET" not in str(op.request) and "ID-320506-SECRET" not in str(wallet.__dict__)
        assert wallet.keystore is not None and "ciphertext" in str(wallet.keystore)

    def test_self_custody_wallet_registers_the_given_address(self, api: Api) -> None:
        address = "0x" + uuid.uuid4().hex[:8] + "ab" * 16
        body = {
            "kind": "merchant",
            "tier": 2,
            "display_name": "Gym",
            "identity": "gym-1",
            "merchant_category": 7997,
            "custody": "self",
            "address": address,
        }
        r = api.post("operator", "/v1/wallets", body)
        assert r.status_code == 201, r.text
        w = api.operator.get(f"/v1/wallets/{address}").json()
        assert (w["kind"], w["merchant_category"], w["custody"]) == ("merchant", 7997, "self")

    def test_merchant_without_category_is_422(self, api: Api) -> None:
        body = {"kind": "merchant", "tier": 2, "display_name": "Gym", "identity": "gym-2"}
        assert_problem(api.post("operator", "/v1/wallets", body), 422, "invalid-request")

    def test_bad_checksum_and_malformed_addresses_are_422(self, api: Api) -> None:
        good = api.new_wallet()
        bad_checksum = good[:-1] + (good[-1].lower() if good[-1].isupper() else good[-1].upper())
        if bad_checksum[-1].isdigit():  # last char a digit: flip a letter elsewhere
            i = next(i for i, c in enumerate(good) if i > 1 and c.isalpha())
            bad_checksum = good[:i] + good[i].swapcase() + good[i + 1 :]
        body = assert_problem(api.operator.get(f"/v1/wallets/{bad_checksum}"), 422, "invalid-request")
        assert "checksum" in body["detail"]
        assert_problem(api.operator.get("/v1/wallets/0x1234"), 422, "invalid-request")

    def test_unknown_wallet_is_404(self, api: Api) -> None:
        assert_problem(api.operator.get("/v1/wallets/0x" + "00" * 19 + "01"), 404, "wallet-not-found")


class TestMoney:
    def test_issue_transfer_redeem(self, api: Api) -> None:
        alice, bob = api.new_wallet(tier=3), api.new_wallet(tier=3)
        r = api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 100_000})
        assert r.status_code == 200, r.text
        op = r.json()
        assert op["status"] == "confirmed" and op["tx_hash"].startswith("0x")
        # two tiers: the central bank's book records the issuance against institution #1
        assert [e["name"] for e in op["result"]["events"]] == ["Transfer", "Issued", "InstitutionIssued"]

        r = api.post("operator", "/v1/transfers", {"from": alice, "to": bob, "amount_fen": 30_000})
        assert r.status_code == 200, r.text
        r = api.post("operator", "/v1/redemptions", {"from": bob, "amount_fen": 10_000})
        assert r.status_code == 200, r.text
        assert api.operator.get(f"/v1/wallets/{alice}").json()["balance_fen"] == 70_000
        bob_state = api.operator.get(f"/v1/wallets/{bob}").json()
        assert bob_state["balance_fen"] == 20_000
        assert api.operator.get(f"/v1/wallets/{alice}").json()["spent_today_fen"] == 30_000

    def test_operation_can_be_read_back(self, api: Api) -> None:
        alice = api.new_wallet()
        op = api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 5}).json()
        r = api.auditor.get(f"/v1/operations/{op['id']}")
        assert (
            r.status_code == 200
            and r.json()["status"] == "confirmed"
            and r.json()["tx_hash"] == op["tx_hash"]
        )
        assert_problem(api.auditor.get(f"/v1/operations/{uuid.uuid4()}"), 404, "operation-not-found")
        assert_problem(api.auditor.get("/v1/operations/not-a-uuid"), 404, "operation-not-found")

    def test_contract_errors_become_named_4xx(self, api: Api) -> None:
        alice = api.new_wallet(tier=4)
        body = assert_problem(
            api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 1_000_001}),
            422,
            "tier-balance-cap-exceeded",
        )
        assert body["error"]["name"] == "TierBalanceCapExceeded"
        assert body["error"]["args"]["cap"] == 1_000_000
        stranger = "0x" + "ab" * 20
        assert_problem(
            api.post("operator", "/v1/issuance", {"to": stranger, "amount_fen": 1}),
            422,
            "wallet-not-registered",
        )
        failed = api.auditor.get(f"/v1/operations/{body['operation_id']}").json()
        assert failed["status"] == "failed" and failed["error"]["error"]["name"] == "TierBalanceCapExceeded"

    def test_frozen_wallet_is_409_wallet_frozen(self, api: Api) -> None:
        alice, bob = api.new_wallet(), api.new_wallet()
        api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 500})
        assert api.post("regulator", "/v1/regulator/freeze", {"address": bob}).status_code == 200
        body = assert_problem(
            api.post("operator", "/v1/transfers", {"from": alice, "to": bob, "amount_fen": 1}),
            409,
            "wallet-frozen",
        )
        assert body["title"] == "Wallet frozen" and bob in body["detail"]
        assert api.operator.get(f"/v1/wallets/{bob}").json()["frozen"] is True
        assert api.post("regulator", "/v1/regulator/unfreeze", {"address": bob}).status_code == 200
        assert (
            api.post("operator", "/v1/transfers", {"from": alice, "to": bob, "amount_fen": 1}).status_code
            == 200
        )

    def test_pause_stops_transfers(self, api: Api) -> None:
        alice, bob = api.new_wallet(), api.new_wallet()
        api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 500})
        assert api.post("regulator", "/v1/regulator/pause").status_code == 200
        try:
            assert_problem(
                api.post("operator", "/v1/transfers", {"from": alice, "to": bob, "amount_fen": 1}),
                409,
                "system-paused",
            )
        finally:
            assert api.post("regulator", "/v1/regulator/unpause").status_code == 200

    def test_transfer_from_a_wallet_the_service_does_not_hold_is_422(self, api: Api) -> None:
        alice = api.new_wallet()
        stranger = "0x" + "cd" * 20
        assert_problem(
            api.post("operator", "/v1/transfers", {"from": stranger, "to": alice, "amount_fen": 1}),
            422,
            "not-custodial",
        )

    def test_bad_amounts_are_422(self, api: Api) -> None:
        alice = api.new_wallet()
        for amount in (0, -5, 2**255, 2**300, 1.5, "100", None):
            assert_problem(
                api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": amount}),
                422,
                "invalid-request",
            )

    def test_malformed_json_and_unknown_fields_are_4xx(self, api: Api) -> None:
        r = api.operator.post(
            "/v1/issuance",
            content=b"{not json",
            headers={"Idempotency-Key": "m1", "Content-Type": "application/json"},
        )
        assert_problem(r, 422, "invalid-request")
        alice = api.new_wallet()
        assert_problem(
            api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 1, "memo": "x"}),
            422,
            "invalid-request",
        )


class TestIdempotency:
    def test_missing_key_is_400(self, api: Api) -> None:
        alice = api.new_wallet()
        r = api.operator.post("/v1/issuance", json={"to": alice, "amount_fen": 1})
        assert_problem(r, 400, "missing-idempotency-key")
        assert api.operator.get(f"/v1/wallets/{alice}").json()["balance_fen"] == 0

    def test_same_key_same_body_returns_the_first_response_and_moves_nothing(self, api: Api) -> None:
        alice = api.new_wallet()
        first = api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 700}, key="same-1")
        again = api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 700}, key="same-1")
        assert first.status_code == again.status_code == 200
        assert again.json()["id"] == first.json()["id"] and again.json()["tx_hash"] == first.json()["tx_hash"]
        assert api.operator.get(f"/v1/wallets/{alice}").json()["balance_fen"] == 700

    def test_same_key_other_body_is_409(self, api: Api) -> None:
        alice = api.new_wallet()
        api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 1}, key="same-2")
        assert_problem(
            api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 2}, key="same-2"),
            409,
            "idempotency-key-reused",
        )
        assert api.operator.get(f"/v1/wallets/{alice}").json()["balance_fen"] == 1

    def test_a_failed_operation_replays_its_problem(self, api: Api) -> None:
        stranger = "0x" + "ef" * 20
        first = api.post("operator", "/v1/issuance", {"to": stranger, "amount_fen": 1}, key="fail-1")
        again = api.post("operator", "/v1/issuance", {"to": stranger, "amount_fen": 1}, key="fail-1")
        assert first.status_code == again.status_code == 422
        assert first.json()["operation_id"] == again.json()["operation_id"]

    def test_concurrent_duplicates_move_money_once(self, api: Api) -> None:
        alice = api.new_wallet()
        key = f"conc-{uuid.uuid4()}"
        with ThreadPoolExecutor(max_workers=8) as pool:
            responses = list(
                pool.map(
                    lambda _: api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 11}, key=key),
                    range(8),
                )
            )
        assert {r.status_code for r in responses} == {200}, [r.text for r in responses]
        assert len({r.json()["id"] for r in responses}) == 1
        assert api.operator.get(f"/v1/wallets/{alice}").json()["balance_fen"] == 11

    def test_distinct_concurrent_requests_all_land(self, api: Api) -> None:
        alice = api.new_wallet(tier=2)
        with ThreadPoolExecutor(max_workers=8) as pool:
            responses = list(
                pool.map(
                    lambda _: api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 3}), range(16)
                )
            )
        assert all(r.status_code == 200 for r in responses), [
            r.text for r in responses if r.status_code != 200
        ]
        assert api.operator.get(f"/v1/wallets/{alice}").json()["balance_fen"] == 48


class TestAudit:
    def test_events_are_indexed_once_filterable_and_paginated(self, api: Api) -> None:
        alice = api.new_wallet()
        op = api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 42}).json()
        r = api.auditor.get("/v1/audit/events", params={"tx_hash": op["tx_hash"]})
        assert r.status_code == 200
        names = [e["name"] for e in r.json()["items"]]
        assert names == ["Transfer", "Issued", "InstitutionIssued"]  # the two tiers' book too
        api.app.state.indexer.run_once()  # a second pass must not duplicate anything
        again = api.auditor.get("/v1/audit/events", params={"tx_hash": op["tx_hash"]}).json()
        assert again["total"] == 3
        page = api.auditor.get("/v1/audit/events", params={"name": "Issued", "limit": 1, "offset": 0}).json()
        assert page["limit"] == 1 and len(page["items"]) == 1 and page["total"] >= 1
        assert_problem(api.auditor.get("/v1/audit/events", params={"limit": 0}), 422, "invalid-request")

    def test_every_state_change_writes_an_audit_row(self, api: Api) -> None:
        from sqlalchemy import select

        from services.common.models import AuditEntry

        alice = api.new_wallet()
        op = api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 9}).json()
        with api.app.state.ctx.db.session() as s:
            row = s.scalar(select(AuditEntry).where(AuditEntry.operation_id == op["id"]))
        assert row is not None
        assert (row.role, row.action, row.target, row.outcome) == (
            "operator",
            "cash.issue",
            alice,
            "confirmed",
        )


class TestRecovery:
    def test_a_stored_unsent_transaction_is_sent_before_any_newer_one(self, api: Api) -> None:
        """A transaction signed and stored, then not sent (the node went away), keeps its nonce:
        the next request sends it first, so it is not orphaned by a newer one with its nonce."""
        from services.common.models import Operation
        from services.operator.families.cash.builders import BUILDERS

        alice = api.new_wallet(tier=2)
        ops = api.app.state.ops
        ctx = api.app.state.ctx
        op, new = ops.begin(
            "cash.issue", _operator_key(api), f"stored-{uuid.uuid4()}", {"to": alice, "amount_fen": 40}
        )
        assert new
        call = BUILDERS["cash.issue"](ctx, op.request)
        params = call.fn.build_transaction(
            {
                "from": call.signer.address,
                "gas": 200_000,
                "nonce": 0,
                **ctx.tx.fees(),
                "chainId": ctx.tx.chain_id,
            }
        )
        with ctx.tx.nonces.reserve(call.signer.address) as nonce:
            signed = call.signer.sign_transaction({**params, "nonce": nonce})
            with ctx.db.session() as s:
                row = s.get(Operation, op.id)
                row.sender, row.nonce = call.signer.address, nonce
                row.tx_hash, row.raw_tx = "0x" + signed.hash.hex(), "0x" + signed.raw_transaction.hex()
                s.commit()
            # not sent: as if the node had refused the connection

        newer = api.post("operator", "/v1/issuance", {"to": alice, "amount_fen": 2})
        assert newer.status_code == 200, newer.text
        assert ops.reconcile()["pending"] == 0
        assert ops.get(op.id).status == "confirmed"
        assert api.operator.get(f"/v1/wallets/{alice}").json()["balance_fen"] == 42


def _operator_key(api: Api):  # type: ignore[no-untyped-def]
    from services.common.keys import authenticate

    with api.app.state.ctx.db.session() as s:
        return authenticate(s, api.operator.headers["X-API-Key"])


def test_a_call_whose_argument_does_not_fit_its_abi_type_fails_its_operation_with_a_422(
    api: Api,
) -> None:
    """Whatever schema lets a value through, a call that cannot be encoded (here 2**200 for a
    uint128) is a 422 ``value-out-of-range`` naming the argument, and its operation is failed, not
    left pending for the reconciler to retry forever."""
    from services.common.operations import Call, perform
    from services.common.problems import Problem

    ctx = api.app.state.ctx
    ops = api.app.state.ops

    def _unencodable(ctx, req):  # type: ignore[no-untyped-def]
        fn = ctx.prepaid.prepay_call(req["merchant"], 1, int(req["price"]), 2**40, 0)
        return Call(ctx.operator, fn)

    ops.builders["test.unencodable"] = _unencodable  # the app's table was merged at start-up

    idem = f"unencodable-{uuid.uuid4()}"
    request = {"merchant": ctx.operator.address, "price": str(2**200)}
    try:
        perform(ops, "test.unencodable", _operator_key(api), idem, request, target="x")
    except Problem as exc:
        problem = exc
    else:
        raise AssertionError("an unencodable call was accepted")
    assert (problem.status, problem.slug) == (422, "value-out-of-range")
    assert "argument 3" in problem.detail and "uint128" in problem.detail
    op = ops.get(problem.extra["operation_id"])
    assert op.status == "failed"
